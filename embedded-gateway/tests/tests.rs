//! The gateway crate's integration tests: one binary, one module per concern.

mod admin;
mod admin_batch;
mod admin_control_planes;
mod admin_dbless;
mod schemas;
mod server;
