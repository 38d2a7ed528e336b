//! Owns the admin API: a Kong Admin API-shaped axum router over the store (entities, schemas,
//! `GET /`, `/status`), Konnect-shaped control planes, the atomic batch endpoint, the admin
//! token check and DB-less read-only mode.

pub mod analytics;
mod batch;
mod control_planes;
mod entities;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::proxy::Proxy;
use crate::served::Served;
use crate::store::{self, Store, StoreError};

/// The Kong version the admin API reports (the schema generation Gantry follows).
pub const KONG_VERSION: &str = "3.14.0";

/// The header that carries the admin token.
pub const TOKEN_HEADER: &str = "Kong-Admin-Token";

/// The body of every write refused in DB-less mode.
pub const DBLESS_MESSAGE: &str = "cannot change configuration in DB-less mode; edit the declarative \
     config files and restart `gantry serve --config`";

/// How long `/status` waits for the store before calling it unreachable.
const STATUS_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Default admin request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Everything the admin handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    served: Served,
    served_id: String,
    served_name: String,
    dbless: bool,
    token: Option<String>,
    admin_base: String,
    proxy_base: String,
}

/// What the admin API needs to know about the running gateway.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The control plane the root paths (and the proxy) serve.
    pub served_id: String,
    pub served_name: String,
    /// DB-less: every write is refused.
    pub dbless: bool,
    /// When set, every call must carry it in `Kong-Admin-Token`.
    pub token: Option<String>,
    /// `http://127.0.0.1:8001`: used in control planes' `config`.
    pub admin_base: String,
    pub proxy_base: String,
}

impl AdminState {
    pub fn new(store: Store, proxy: Proxy, settings: AdminSettings) -> Self {
        Self::with_served(store, Served::new(proxy, None), settings)
    }

    /// Like [`AdminState::new`], sharing the gateway's [`Served`] (revision order, config
    /// hash, last known good copy, store reachability).
    pub fn with_served(store: Store, served: Served, settings: AdminSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                served,
                served_id: settings.served_id,
                served_name: settings.served_name,
                dbless: settings.dbless,
                token: settings.token,
                admin_base: settings.admin_base,
                proxy_base: settings.proxy_base,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs `f` in one write transaction on `cp_id` (revision checked and bumped), then, when
    /// `cp_id` is the served control plane, rebuilds its snapshot and swaps it into the proxy
    /// before returning; [`Served`] never lets an older snapshot replace a newer one.
    pub async fn write<T, F>(
        &self,
        cp_id: String,
        expected_revision: Option<u64>,
        f: F,
    ) -> Result<(T, u64), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn store::Db) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.dbless {
            return Err(StoreError::BadRequest(DBLESS_MESSAGE.to_owned()));
        }
        let served = self.inner.served_id == cp_id;
        let target = self.inner.served.clone();
        let out = self
            .inner
            .store
            .call(move |conn| {
                let out = store::write_tx(conn, &cp_id, expected_revision, f)?;
                if served {
                    target.apply(&store::snapshot(conn, &cp_id)?);
                }
                Ok(out)
            })
            .await;
        self.note_reachability(&out);
        out
    }

    /// Remembers whether the last store call reached the database.
    fn note_reachability<T>(&self, result: &Result<T, StoreError>) {
        let reachable = !matches!(result, Err(StoreError::Unavailable(_)));
        if self.inner.served.set_reachable(reachable) != reachable {
            if reachable {
                tracing::warn!("the configuration database is reachable again");
            } else {
                tracing::warn!(
                    "the configuration database is unreachable; serving the last known good configuration"
                );
            }
        }
    }
}

/// Builds the admin router. `body_limit` caps request bodies (413 beyond it).
pub fn router(state: AdminState, body_limit: usize) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/status", get(status))
        .merge(control_planes::routes())
        .merge(metrics::routes())
        .merge(analytics::api(
            state.inner.served.proxy().analytics().cloned(),
        ))
        .fallback(entities::dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .merge(analytics::page())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Checks the admin token and refuses writes in DB-less mode.
async fn guard(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.inner.token {
        let given = req
            .headers()
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(token.as_bytes())) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({"message": "Invalid credentials. Token or User credentials required"}),
            );
        }
    }
    let read_only = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) || req.uri().path().ends_with("/validate");
    if state.inner.dbless && !read_only {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": DBLESS_MESSAGE}),
        );
    }
    next.run(req).await
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        if let StoreError::Sqlite(_)
        | StoreError::Io(_)
        | StoreError::Task(_)
        | StoreError::Corrupt(_) = &self
        {
            tracing::error!(error = %self, "admin request failed");
        }
        let (status, body) = self.to_kong();
        json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }
}

/// Parses a JSON request body; an empty body is `{}`.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, StoreError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|_| StoreError::BadRequest("Cannot parse JSON body".to_owned()))
}

async fn root(State(state): State<AdminState>) -> Response {
    let s = &state.inner;
    let served = s.served_id.clone();
    let enabled = s
        .store
        .call(move |conn| {
            let mut names: Vec<String> = store::snapshot(conn, &served)?
                .plugins
                .into_iter()
                .map(|p| p.name)
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await;
    let enabled = match enabled {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let available: serde_json::Map<String, Value> = crate::plugins::SUPPORTED
        .iter()
        .map(|(name, priority)| {
            (
                (*name).to_owned(),
                json!({"version": KONG_VERSION, "priority": priority}),
            )
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "tagline": "Welcome to kong",
            "version": KONG_VERSION,
            "edition": "community",
            "hostname": hostname(),
            "node_id": s.served_id,
            "plugins": {"available_on_server": available, "enabled_in_cluster": enabled},
            "configuration": {
                "database": if s.dbless { "off" } else { s.store.backend() },
                "role": "traditional",
                "admin_listen": [s.admin_base],
                "proxy_listen": [s.proxy_base],
            },
            "gantry": {
                "version": env!("CARGO_PKG_VERSION"),
                "control_plane": {"id": s.served_id, "name": s.served_name},
            },
        }),
    )
}

async fn status(State(state): State<AdminState>) -> Response {
    let s = &state.inner;
    let served = s.served_id.clone();
    // A down database must not hold the answer for the pool's whole acquire timeout.
    let stored = tokio::time::timeout(
        STATUS_STORE_TIMEOUT,
        s.store
            .call(move |conn| Ok(store::find_control_plane(conn, &served)?.map(|cp| cp.revision))),
    )
    .await
    .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer in time".to_owned())));
    let (reachable, stored) = match stored {
        Ok(r) => (true, r),
        Err(_) => (false, None),
    };
    if s.store.backend() == "postgres" {
        state.note_reachability(&if reachable {
            Ok(())
        } else {
            Err(StoreError::Unavailable(String::new()))
        });
    }
    json_response(
        StatusCode::OK,
        json!({
            "database": {"reachable": reachable, "backend": if s.dbless { "off" } else { s.store.backend() }},
            "server": {"healthy": reachable},
            "config_revision": s.served.proxy().revision(),
            "config_hash": s.served.hash(),
            "serving_last_known_good": !reachable && s.store.backend() == "postgres",
            "store_revision": stored,
            "control_plane": {"id": s.served_id, "name": s.served_name},
        }),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}
