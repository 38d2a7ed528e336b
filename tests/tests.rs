//! The CLI's integration tests: one binary, one module per concern.

mod quickstart;
mod serve;
