//! The gateway crate's integration tests: one binary, one module per concern.

mod admin;
mod admin_batch;
mod admin_control_planes;
mod admin_dbless;
mod admin_swap;
mod ai_proxy;
mod ai_rate_limiting;
mod failover;
mod hardening;
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
