//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod namespaces;
mod quickstart;
mod reconcile;
mod render;
mod scale_out;
mod sdk;
mod seed_flow;
mod serve;
mod template;
mod validate;
