//! The gateway crate's integration tests: one binary, one module per concern. The store and
//! admin API suites run twice, once per store backend (`sqlite::…` and `postgres::…`).

// The admin suites are compiled once per backend on purpose (see `sqlite.rs`, `postgres.rs`).
#![allow(clippy::duplicate_mod)]

/// Starts a test gateway, or returns from the test when its backend is unavailable here
/// (PostgreSQL not reachable outside CI; see `pg`).
macro_rules! gateway {
    ($start:expr) => {
        match $start.await {
            Some(gw) => gw,
            None => return,
        }
    };
}

mod pg;

mod postgres;
mod sqlite;

/// Which store a suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// What `GET /` reports as `configuration.database`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub use sqlite::admin;

mod admin_dbless;
mod admin_swap;
mod ai_proxy;
mod ai_rate_limiting;
mod failover;
mod hardening;
mod http_log;
mod metrics;
mod mock_llm_wire;
mod pipeline;
mod providers;
mod providers_wire;
mod proxy_harness;
mod proxy_key_auth;
mod proxy_plugins;
mod proxy_routing;
mod rate_limiting;
mod schemas;
mod secret_canary;
mod server;
