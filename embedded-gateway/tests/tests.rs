//! The gateway crate's integration tests: one binary, one module per concern.

mod schemas;
