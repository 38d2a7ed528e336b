//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod config_file;
mod deck_flags;
mod file_tools;
mod namespaces;
mod quickstart;
mod reconcile;
mod render;
mod sdk;
mod seed_flow;
mod serve;
mod shell_tools;
mod template;
mod tls;
mod validate;
