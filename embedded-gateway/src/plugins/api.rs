//! Owns the contract every plugin implements: its name, Kong priority, config type and
//! committed JSON Schema, how it compiles once per config revision, and its phase handlers
//! (`access`, which may answer early; `response`, headers and body; `log`, after the response
//! ended, off the request path). Every handler has a no-op default, so a plugin writes only
//! the phases it uses.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::Response;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body::BodyTimeouts;
use crate::context::{Ctx, LogRecord};
use crate::schema::FieldError;
use crate::snapshot::ConfigSnapshot;
use crate::upstream::UpstreamClient;

/// What an `access` handler decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin.
    Continue,
    /// Answer with this response; no later `access` handler runs and nothing is proxied.
    Respond(Response<Body>),
}

/// Settings that do not come from the store.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Provider name → base URL that replaces the provider's default endpoint
    /// (`serve --upstream-override openai=http://127.0.0.1:9090`).
    pub upstream_overrides: HashMap<String, String>,
    /// How slowly a client may send a request body (hardening: 408 past it).
    pub client_body: BodyTimeouts,
    /// The local analytics store the log phase feeds (off when `None`).
    pub analytics: Option<Arc<crate::analytics::Recorder>>,
}

/// What a plugin may use while it compiles: the whole snapshot, the proxy's options, and
/// values that several instances share (built by the first that asks).
pub struct CompileEnv<'a> {
    pub snapshot: &'a ConfigSnapshot,
    pub options: &'a ProxyOptions,
    shared: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

impl<'a> CompileEnv<'a> {
    pub fn new(snapshot: &'a ConfigSnapshot, options: &'a ProxyOptions) -> Self {
        Self {
            snapshot,
            options,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The value stored under `key`, built by `make` the first time (once per snapshot).
    pub fn shared<T: Any + Send + Sync>(
        &self,
        key: &'static str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut map = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(key).and_then(|v| v.clone().downcast::<T>().ok()) {
            return v;
        }
        let v = Arc::new(make());
        map.insert(key, v.clone());
        v
    }
}

/// What the proxy worker lends a request's phases.
pub struct Env<'a> {
    /// The worker's pooled upstream client.
    pub client: &'a UpstreamClient,
}

/// A plugin Gantry runs. One type per plugin, in `plugins/<name>.rs`, listed once in the
/// registry (`plugins/mod.rs`).
pub trait Plugin: Sized + Send + Sync + 'static {
    /// The name in decK files and the admin API.
    const NAME: &'static str;
    /// Kong's priority: higher runs first in every phase.
    const PRIORITY: u32;
    /// The committed JSON Schema of `config` (`schemas/plugins/<name>.schema.json`).
    const SCHEMA: &'static str;
    /// The `config` type, with Kong's field names and defaults.
    type Config: DeserializeOwned + Serialize + JsonSchema;

    /// Kong's entity rules beyond what the JSON Schema says, on a config with defaults filled.
    fn entity_errors(_config: &Self::Config) -> Vec<FieldError> {
        Vec::new()
    }

    /// Builds the runtime form of one plugin entity. `Err` says why it cannot run; the routes
    /// it applies to then answer 500 rather than run without it.
    fn compile(config: Self::Config, env: &CompileEnv<'_>) -> Result<Self, String>;

    /// True when `access` reads the request body, so it must be buffered first.
    fn reads_body(&self) -> bool {
        false
    }

    /// The largest body this plugin accepts (0 = no limit of its own).
    fn body_limit(&self) -> u64 {
        0
    }

    /// The `access` phase: may edit the request, set the consumer, or answer early.
    fn access(&self, _ctx: &mut Ctx, _env: &Env<'_>) -> impl Future<Output = Flow> + Send {
        async { Flow::Continue }
    }

    /// True when the plugin has a `response` phase.
    fn has_response(&self) -> bool {
        false
    }

    /// The `response` phase: edits the response head, or wraps its body to see it chunk by
    /// chunk.
    fn response(&self, _ctx: &Ctx, _res: &mut Response<Body>) {}

    /// True when the plugin has a `log` phase.
    fn has_log(&self) -> bool {
        false
    }

    /// The `log` phase: runs after the response's last byte; must not block (hand work to a
    /// queue).
    fn log(&self, _record: &Arc<LogRecord>) {}
}
