//! The admin API suites on PostgreSQL (skipped, loudly, when it is not reachable outside CI).

pub const BACKEND: crate::Backend = crate::Backend::Postgres;

#[path = "admin.rs"]
pub mod admin;
#[path = "admin_batch.rs"]
mod admin_batch;
#[path = "admin_control_planes.rs"]
mod admin_control_planes;
