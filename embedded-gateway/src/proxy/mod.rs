//! Owns the proxy: compiles a [`ConfigSnapshot`] into route tables, swaps them in atomically,
//! and runs each request through route matching and the plugin chain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::snapshot::ConfigSnapshot;

/// Settings that do not come from the store.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Provider name → base URL that replaces the provider's default endpoint
    /// (`serve --upstream-override openai=http://127.0.0.1:9090`).
    pub upstream_overrides: HashMap<String, String>,
}

/// The compiled, immutable form of one snapshot.
#[derive(Debug, Default)]
struct Compiled {
    revision: u64,
}

/// The proxy. Cheap to clone; all clones share the current route table.
#[derive(Clone)]
pub struct Proxy {
    current: Arc<ArcSwap<Compiled>>,
    #[allow(dead_code)]
    options: Arc<ProxyOptions>,
}

impl Proxy {
    pub fn new(options: ProxyOptions) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Compiled::default())),
            options: Arc::new(options),
        }
    }

    /// Compiles `snapshot` and makes it the table new requests use.
    pub fn apply(&self, snapshot: &ConfigSnapshot) {
        self.current.store(Arc::new(Compiled {
            revision: snapshot.revision,
        }));
    }

    /// The revision of the snapshot new requests are served from.
    pub fn revision(&self) -> u64 {
        self.current.load().revision
    }

    /// Handles one proxied request.
    pub async fn handle(&self, _req: Request<Incoming>, _remote: SocketAddr) -> Response<Body> {
        let mut res = Response::new(Body::from(
            r#"{"message":"no Route matched with those values"}"#,
        ));
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        res
    }
}
