//! Gantry's gateway runtime: the entity model, the SQLite store, the Kong-shaped admin API and
//! the proxy (key-auth and ai-proxy-advanced). The CLI depends on this crate, never the reverse.

pub mod admin;
pub mod ai;
pub mod analytics;
pub mod body;
pub mod context;
pub mod errors;
pub mod gateway;
pub mod headers;
pub mod metrics;
pub mod mock_llm;
pub mod model;
pub mod plugins;
pub mod proxy;
pub mod schema;
pub mod served;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod upstream;

pub use admin::{AdminSettings, AdminState, router};
pub use gateway::{Gateway, GatewayConfig, GatewayError, bind, serve};
