//! The `gantry` integration tests: each module spawns the real binary against real files.

mod admin_state;
mod attribution;
mod battery;
mod config_file;
mod deck_flags;
mod file_tools;
mod help;
mod layers;
mod live_refs;
mod masked;
mod namespaces;
mod outcome;
mod quickstart;
mod reconcile;
mod render;
mod scale_out;
mod sdk;
mod seed_flow;
mod serve;
mod serve_hardening;
mod shell_tools;
mod tags;
mod template;
mod tls;
mod util;
mod validate;
