//! Owns the proxy: compiles a [`ConfigSnapshot`] into route tables, swaps them in atomically,
//! and runs each request through route matching and the plugin chain (key-auth 1250, then
//! ai-proxy-advanced 770), or proxies it to the route's service.

mod body;
mod compile;
pub mod key_auth;
mod plain;
mod response;
pub mod router;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::ai::plugin::{AiRequest, bad_json, error_response, too_large};
use crate::ai::upstream::UpstreamClient;
use crate::snapshot::ConfigSnapshot;
pub use body::BodyTimeouts;
use body::{BodyError, BodyTimedOut, RequestBody, TimedBody};
use compile::Compiled;
use key_auth::{Authenticated, Rejection};
pub use response::{
    RequestId, X_KONG_LLM_MODEL, X_KONG_PROXY_LATENCY, X_KONG_REQUEST_ID, X_KONG_RESPONSE_LATENCY,
    X_KONG_UPSTREAM_LATENCY, millis,
};

/// Settings that do not come from the store.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Provider name → base URL that replaces the provider's default endpoint
    /// (`serve --upstream-override openai=http://127.0.0.1:9090`).
    pub upstream_overrides: HashMap<String, String>,
    /// How slowly a client may send a request body (hardening: 408 past it).
    pub client_body: BodyTimeouts,
}

/// The proxy. Cheap to clone; all clones share the current route table and one pooled
/// upstream HTTP client.
#[derive(Clone)]
pub struct Proxy {
    current: Arc<ArcSwap<Compiled>>,
    options: Arc<ProxyOptions>,
    client: UpstreamClient,
}

const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
const X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
const X_CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
const X_CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
const X_ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");

/// Headers that describe the consumer to the upstream; client-sent copies are always cleared.
static CONSUMER_HEADERS: [HeaderName; 5] = [
    X_CONSUMER_ID,
    X_CONSUMER_USERNAME,
    X_CONSUMER_CUSTOM_ID,
    X_CREDENTIAL_IDENTIFIER,
    X_ANONYMOUS_CONSUMER,
];

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
        if let Some(reason) = &route.invalid {
            tracing::error!(route = %route.id, %reason, "route has an invalid plugin configuration");
            return response::gateway(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
                started,
            );
        }
        remove_headers(&mut parts.headers, |k| CONSUMER_HEADERS.contains(k));
        let needs_body = route.ai.is_some()
            || !route.consumer_ai.is_empty()
            || route.key_auth.as_ref().is_some_and(|k| k.reads_body());
        let mut payload = if needs_body {
            let limit = route.ai.as_ref().map_or(0, |a| a.max_body());
            let timeouts = self.options.client_body;
            match read_body(&parts.headers, incoming, limit, timeouts, started).await {
                Ok(b) => Payload::Buffered(b),
                Err(res) => return res,
            }
        } else {
            Payload::Streaming(incoming)
        };
        let mut query = parts.uri.query().map(str::to_owned);
        let mut who: Option<Authenticated> = None;
        if let Some(ka) = &route.key_auth
            && ka.applies_to(&parts.method)
        {
            let mut scratch = RequestBody::new(bytes::Bytes::new());
            let b = match &mut payload {
                Payload::Buffered(b) => b,
                Payload::Streaming(_) => &mut scratch,
            };
            match ka.run(&table.keys, &mut parts.headers, &mut query, b) {
                Ok(a) => who = Some(a),
                Err(r) => return reject(&r, ka.www_authenticate.clone(), started),
            }
        }
        if let Some(a) = &who {
            set_consumer_headers(&mut parts.headers, a);
        }
        let client_host = parts.headers.get(http::header::HOST).cloned();
        strip_hop_headers(&mut parts.headers);
        parts.headers.insert(X_KONG_REQUEST_ID, id.clone());
        let ai = who
            .as_ref()
            .and_then(|a| route.consumer_ai.get(&a.consumer.id))
            .or(route.ai.as_ref());
        if let Some(ai) = ai {
            let Payload::Buffered(body) = payload else {
                return response::with_latency(error_response(&bad_json()), started);
            };
            let req = AiRequest {
                client: &self.client,
                headers: parts.headers,
                body: body.into_bytes(),
                started,
            };
            // Boxed: the plugin's future is large, and hyper moves the handler's future.
            return Box::pin(ai.run(req)).await;
        }
        let upstream_body = match payload {
            Payload::Buffered(b) => reqwest::Body::from(b.into_bytes()),
            // hardening: a streamed body is timed too, unless there is none.
            Payload::Streaming(inc) if http_body::Body::is_end_stream(&inc) => {
                reqwest::Body::wrap_stream(http_body_util::BodyDataStream::new(inc))
            }
            Payload::Streaming(inc) => reqwest::Body::wrap_stream(
                http_body_util::BodyDataStream::new(TimedBody::new(inc, self.options.client_body)),
            ),
        };
        let fwd = plain::Forward {
            route,
            matched: &m,
            query: query.as_deref(),
            client_host,
            remote,
            started,
        };
        Box::pin(plain::forward(
            self.client.reqwest(),
            fwd,
            parts,
            upstream_body,
        ))
        .await
    }
}

/// The request body: buffered when a plugin needs to read it, else streamed through.
enum Payload {
    Buffered(RequestBody),
    Streaming(Incoming),
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
                response::with_latency(error_response(&too_large(n)), started)
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

fn reject(r: &Rejection, www: HeaderValue, started: Instant) -> Response<Body> {
    if matches!(r, Rejection::AnonymousMissing(_)) {
        tracing::error!(message = %r.message(), "key-auth misconfiguration");
        return response::gateway(StatusCode::INTERNAL_SERVER_ERROR, &r.message(), started);
    }
    let mut res = response::gateway(StatusCode::UNAUTHORIZED, &r.message(), started);
    res.headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, www);
    res
}

fn set_consumer_headers(h: &mut HeaderMap, a: &Authenticated) {
    let c = &a.consumer;
    if let Some(v) = &c.id_header {
        h.insert(X_CONSUMER_ID, v.clone());
    }
    if let Some(v) = &c.username {
        h.insert(X_CONSUMER_USERNAME, v.clone());
    }
    if let Some(v) = &c.custom_id {
        h.insert(X_CONSUMER_CUSTOM_ID, v.clone());
    }
    if let Some(v) = &a.credential_id {
        h.insert(X_CREDENTIAL_IDENTIFIER, v.clone());
    }
    if a.anonymous {
        h.insert(X_ANONYMOUS_CONSUMER, HeaderValue::from_static("true"));
    }
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

/// Removes the headers `drop` selects. Walks the few headers a request has once, instead of
/// looking up every name on a fixed list.
pub(crate) fn remove_headers(h: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let doomed: Vec<HeaderName> = h.keys().filter(|k| drop(k)).cloned().collect();
    for name in doomed {
        h.remove(name);
    }
}
