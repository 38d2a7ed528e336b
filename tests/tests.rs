//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod battery;
mod namespaces;
mod quickstart;
mod reconcile;
mod render;
mod sdk;
mod seed_flow;
mod serve;
mod serve_hardening;
mod template;
mod validate;
