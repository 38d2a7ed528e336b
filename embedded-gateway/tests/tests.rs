//! The gateway crate's integration tests: one binary, one module per concern.

mod admin;
mod admin_batch;
mod admin_control_planes;
mod admin_dbless;
mod admin_swap;
mod ai_proxy;
mod failover;
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
mod schemas;
mod server;
