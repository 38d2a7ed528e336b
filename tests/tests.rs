//! The `gantry` integration tests: each module spawns the real binary against real files.

mod util;

mod render;
mod template;
mod validate;
