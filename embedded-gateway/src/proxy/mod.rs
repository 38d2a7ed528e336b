//! Owns the proxy: compiles a [`ConfigSnapshot`] into route tables, swaps them in atomically,
//! and runs each request through route matching and the route's plugin chain, phase by phase
//! (`access` in priority order until one answers; `response`; `log` once the response ended),
//! proxying it to the route's service when no plugin answered.

mod chain;
mod compile;
mod log;
mod plain;
pub mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::ai::AiError;
pub use crate::body::BodyTimeouts;
use crate::body::{BodyError, BodyTimedOut, RequestBody, TimedBody};
use crate::context::{Ctx, Payload};
use crate::errors as response;
use crate::headers::{CONSUMER_HEADERS, RequestId, X_KONG_REQUEST_ID, remove_headers};
pub use crate::plugins::ProxyOptions;
use crate::plugins::{Env, Flow};
use crate::snapshot::ConfigSnapshot;
use crate::upstream::UpstreamClient;
use compile::Compiled;

/// The proxy. Cheap to clone; all clones share the current route table and one pooled
/// upstream HTTP client.
#[derive(Clone)]
pub struct Proxy {
    current: Arc<ArcSwap<Compiled>>,
    options: Arc<ProxyOptions>,
    client: UpstreamClient,
}

/// Hop-by-hop and framing headers never forwarded upstream.
static HOP_HEADERS: [HeaderName; 9] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::HOST,
    http::header::CONTENT_LENGTH,
];

impl Proxy {
    pub fn new(options: ProxyOptions) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Compiled::default())),
            options: Arc::new(options),
            client: UpstreamClient::new(),
        }
    }

    /// The local analytics store this proxy feeds, when on.
    pub fn analytics(&self) -> Option<&Arc<crate::analytics::Recorder>> {
        self.options.analytics.as_ref()
    }

    /// A handle that shares this proxy's route table (and balancer state) but owns a new
    /// upstream connection pool: for a proxy worker on its own current-thread runtime, whose
    /// pooled connections must not be driven by another runtime.
    pub fn with_separate_client(&self) -> Self {
        Self {
            current: self.current.clone(),
            options: self.options.clone(),
            client: UpstreamClient::new(),
        }
    }

    /// Compiles `snapshot` and makes it the table new requests use. In-flight requests keep
    /// the table they started with.
    pub fn apply(&self, snapshot: &ConfigSnapshot) {
        let compiled = Compiled::build(snapshot, &self.options);
        self.current.store(Arc::new(compiled));
    }

    /// The revision of the snapshot new requests are served from.
    pub fn revision(&self) -> u64 {
        self.current.load().revision
    }

    /// Handles one proxied request.
    pub async fn handle(&self, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let id = RequestId::new().header_value();
        let table = self.current.load_full();
        let mut res = self.dispatch(&table, req, remote, started, &id).await;
        res.headers_mut().insert(X_KONG_REQUEST_ID, id);
        res
    }

    async fn dispatch(
        &self,
        table: &Compiled,
        req: Request<Incoming>,
        remote: SocketAddr,
        started: Instant,
        id: &HeaderValue,
    ) -> Response<Body> {
        let (mut parts, incoming) = req.into_parts();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let Some(m) = table
            .router
            .find(&parts.method, host, parts.uri.path(), &parts.headers)
        else {
            return response::gateway(
                StatusCode::NOT_FOUND,
                "no Route matched with those values",
                started,
            );
        };
        let route = &table.routes[m.route];
        let chain = &route.chain;
        if let Some(reason) = &chain.invalid {
            tracing::error!(route = %route.id, %reason, "route has an invalid plugin configuration");
            return response::gateway(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
                started,
            );
        }
        remove_headers(&mut parts.headers, |k| CONSUMER_HEADERS.contains(k));
        let request_headers = chain.has_log.then(|| parts.headers.clone());
        let body = if chain.reads_body {
            let timeouts = self.options.client_body;
            match read_body(
                &parts.headers,
                incoming,
                chain.body_limit,
                timeouts,
                started,
            )
            .await
            {
                Ok(b) => Payload::Buffered(b),
                Err(res) => return res,
            }
        } else {
            Payload::Streaming(incoming)
        };
        let request_size = match &body {
            Payload::Buffered(b) => Some(b.len()),
            _ => None,
        };
        let client_host = parts.headers.get(http::header::HOST).cloned();
        strip_hop_headers(&mut parts.headers);
        parts.headers.insert(X_KONG_REQUEST_ID, id.clone());
        let mut ctx = Ctx {
            started,
            // Only the log phase reads the wall clock.
            started_at: if chain.has_log {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            request_id: id.clone(),
            remote,
            query: parts.uri.query().map(str::to_owned),
            parts,
            body,
            client_host,
            route: route.names.clone(),
            auth: None,
            ai: None,
            logging: chain.has_log,
            request_headers,
            request_size,
            credential_headers: Vec::new(),
            response_headers: HeaderMap::new(),
            ai_budget_keys: Vec::new(),
            log_secrets: Vec::new(),
        };
        let env = Env {
            client: &self.client,
        };
        let mut answer = None;
        for slot in &chain.slots {
            if let Some(p) = slot.pick(ctx.consumer_id())
                && let Flow::Respond(r) = p.access(&mut ctx, &env).await
            {
                answer = Some(r);
                break;
            }
        }
        let mut res = match answer {
            Some(r) => r,
            None => Box::pin(self.forward(route, &m, &mut ctx)).await,
        };
        if !ctx.response_headers.is_empty() {
            let h = res.headers_mut();
            for (k, v) in ctx.response_headers.drain() {
                if let Some(k) = k {
                    h.insert(k, v);
                }
            }
        }
        if chain.has_response {
            for slot in &chain.slots {
                if let Some(p) = slot.pick(ctx.consumer_id())
                    && p.has_response()
                {
                    p.response(&ctx, &mut res);
                }
            }
        }
        if chain.has_log {
            let loggers: Vec<_> = chain
                .slots
                .iter()
                .filter_map(|s| s.pick(ctx.consumer_id()))
                .filter(|p| p.has_log())
                .cloned()
                .collect();
            res = log::on_end(res, ctx, loggers, self.options.analytics.clone());
        }
        res
    }

    /// No plugin answered: the request goes to the route's service.
    async fn forward(
        &self,
        route: &compile::CompiledRoute,
        m: &router::RouteMatch,
        ctx: &mut Ctx,
    ) -> Response<Body> {
        let upstream_body = match std::mem::replace(&mut ctx.body, Payload::Taken) {
            Payload::Buffered(b) => reqwest::Body::from(b.into_bytes()),
            // hardening: a streamed body is timed too, unless there is none.
            Payload::Streaming(inc) if http_body::Body::is_end_stream(&inc) => {
                reqwest::Body::wrap_stream(http_body_util::BodyDataStream::new(inc))
            }
            Payload::Streaming(inc) => reqwest::Body::wrap_stream(
                http_body_util::BodyDataStream::new(TimedBody::new(inc, self.options.client_body)),
            ),
            Payload::Taken => reqwest::Body::from(bytes::Bytes::new()),
        };
        let head = plain::Head {
            method: ctx.parts.method.clone(),
            uri: &ctx.parts.uri,
            headers: std::mem::take(&mut ctx.parts.headers),
        };
        let fwd = plain::Forward {
            route,
            matched: m,
            query: ctx.query.as_deref(),
            client_host: ctx.client_host.clone(),
            remote: ctx.remote,
            started: ctx.started,
        };
        plain::forward(self.client.reqwest(), fwd, head, upstream_body).await
    }
}

/// Reads the body under `limit` (0 = unlimited): 413 in the OpenAI envelope when over it.
async fn read_body(
    headers: &HeaderMap,
    incoming: Incoming,
    limit: u64,
    timeouts: BodyTimeouts,
    started: Instant,
) -> Result<RequestBody, Response<Body>> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    RequestBody::read(incoming, declared, limit, timeouts)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(n) => {
                response::with_latency(AiError::too_large(n).response(), started)
            }
            BodyError::Read => response::gateway(
                StatusCode::BAD_REQUEST,
                "request body could not be read",
                started,
            ),
            BodyError::TimedOut(_) => body_timed_out(started),
        })
}

/// hardening: the 408 for a body the client did not send in time (Kong's message); the
/// connection closes, since the rest of the body may still arrive.
pub(crate) fn body_timed_out(started: Instant) -> Response<Body> {
    let mut r = response::gateway(StatusCode::REQUEST_TIMEOUT, "Request timeout", started);
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// hardening: whether an upstream send failed because the client's streamed body timed out.
pub(crate) fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    BodyTimedOut::caused(e)
}

fn strip_hop_headers(h: &mut HeaderMap) {
    if h.contains_key(http::header::CONNECTION) {
        let listed: Vec<HeaderName> = h
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    remove_headers(h, |k| HOP_HEADERS.contains(k));
}
