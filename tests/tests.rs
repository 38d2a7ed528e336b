//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod quickstart;
mod render;
mod serve;
mod template;
mod validate;
