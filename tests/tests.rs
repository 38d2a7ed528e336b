//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod admin_state;
mod attribution;
mod help;
mod layers;
mod live_refs;
mod masked;
mod namespaces;
mod outcome;
mod quickstart;
mod reconcile;
mod render;
mod sdk;
mod seed_flow;
mod serve;
mod tags;
mod template;
mod validate;
