//! The admin API suites on the embedded SQLite store.

pub const BACKEND: crate::Backend = crate::Backend::Sqlite;

#[path = "admin.rs"]
pub mod admin;
#[path = "admin_batch.rs"]
mod admin_batch;
#[path = "admin_control_planes.rs"]
mod admin_control_planes;
