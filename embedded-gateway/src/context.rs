//! Owns the request context every plugin phase reads and writes: the request as it travels
//! (head, query, body), the matched route and service, who the caller is (consumer,
//! credential), what the AI plugin did (alias, target, provider, model, token usage, upstream
//! latency), timings and the response status. The log phase receives it complete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use crate::ai::facts::{AiFacts, UsageCell};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::body::Incoming;

use crate::body::RequestBody;
use crate::headers::{
    X_ANONYMOUS_CONSUMER, X_CONSUMER_CUSTOM_ID, X_CONSUMER_ID, X_CONSUMER_USERNAME,
    X_CREDENTIAL_IDENTIFIER,
};
use crate::model::Consumer;

/// A consumer as the proxy needs it: its upstream headers, prebuilt.
#[derive(Debug)]
pub struct ConsumerInfo {
    pub id: String,
    pub id_header: Option<HeaderValue>,
    pub username: Option<HeaderValue>,
    pub custom_id: Option<HeaderValue>,
}

impl ConsumerInfo {
    pub fn new(c: &Consumer) -> Self {
        let hv = |s: &str| HeaderValue::from_str(s).ok();
        Self {
            id: c.id.clone(),
            id_header: hv(&c.id),
            username: c.username.as_deref().and_then(hv),
            custom_id: c.custom_id.as_deref().and_then(hv),
        }
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_ref().and_then(|v| v.to_str().ok())
    }
}

/// Who the request is, after authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub consumer: Arc<ConsumerInfo>,
    pub credential_id: Option<HeaderValue>,
    pub anonymous: bool,
}

impl Authenticated {
    /// Tells the upstream who the caller is (`X-Consumer-*`, `X-Credential-Identifier`,
    /// `X-Anonymous-Consumer`), as Kong's auth plugins do.
    pub fn set_headers(&self, h: &mut HeaderMap) {
        let c = &self.consumer;
        if let Some(v) = &c.id_header {
            h.insert(X_CONSUMER_ID, v.clone());
        }
        if let Some(v) = &c.username {
            h.insert(X_CONSUMER_USERNAME, v.clone());
        }
        if let Some(v) = &c.custom_id {
            h.insert(X_CONSUMER_CUSTOM_ID, v.clone());
        }
        if let Some(v) = &self.credential_id {
            h.insert(X_CREDENTIAL_IDENTIFIER, v.clone());
        }
        if self.anonymous {
            h.insert(X_ANONYMOUS_CONSUMER, HeaderValue::from_static("true"));
        }
    }
}

/// The request body: buffered when a plugin needs to read it, else streamed through.
#[derive(Debug)]
pub enum Payload {
    Buffered(RequestBody),
    Streaming(Incoming),
    /// Taken by the phase that sent it upstream.
    Taken,
}

/// The matched route and its service, as the log phase names them.
#[derive(Debug, Clone, Default)]
pub struct RouteRef {
    pub id: String,
    pub name: Option<String>,
    pub service_id: Option<String>,
    pub service_name: Option<String>,
}

/// One request on its way through the plugin chain.
#[derive(Debug)]
pub struct Ctx {
    pub started: Instant,
    pub started_at: SystemTime,
    pub request_id: HeaderValue,
    pub remote: SocketAddr,
    /// Method, URI and headers as the upstream will see them (plugins edit them in place).
    pub parts: Parts,
    /// The query string, separately editable (`hide_credentials`).
    pub query: Option<String>,
    pub body: Payload,
    /// The client's `Host`, before hop-by-hop headers are stripped.
    pub client_host: Option<HeaderValue>,
    pub route: Arc<RouteRef>,
    pub auth: Option<Authenticated>,
    pub ai: Option<AiFacts>,
    /// True when some plugin has a `log` phase: the context then keeps what the log needs.
    pub logging: bool,
    /// The request headers as the client sent them (kept only when `logging`).
    pub request_headers: Option<HeaderMap>,
    /// Bytes the client sent in the request body (known once it was buffered).
    pub request_size: Option<usize>,
    /// ai-rate-limiting-advanced: the counter key of each budget this request counts against,
    /// set in `access`, charged in `log`.
    pub ai_budget_keys: Vec<Option<String>>,
    /// Headers plugins add to the response the client gets (rate-limit headers and the like).
    pub response_headers: HeaderMap,
    /// Request headers that carried a credential (named by the auth plugin that read it):
    /// redacted in log entries.
    pub credential_headers: Vec<http::HeaderName>,
    /// Credential values this request carried (the caller's key, wherever it was sent), kept
    /// only when `logging`: scrubbed from every log entry, payloads included.
    pub log_secrets: Vec<String>,
}

impl Ctx {
    /// The authenticated consumer's id, if any.
    pub fn consumer_id(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.consumer.id.as_str())
    }

    /// The body as buffered bytes, or `None` when it streams through.
    pub fn body_mut(&mut self) -> Option<&mut RequestBody> {
        match &mut self.body {
            Payload::Buffered(b) => Some(b),
            _ => None,
        }
    }

    /// Takes the buffered body for sending upstream.
    pub fn take_body(&mut self) -> Option<Bytes> {
        match std::mem::replace(&mut self.body, Payload::Taken) {
            Payload::Buffered(b) => Some(b.into_bytes()),
            other => {
                self.body = other;
                None
            }
        }
    }
}

/// What the log phase receives: the context, closed, with the response's facts.
#[derive(Debug)]
pub struct LogRecord {
    pub ctx: Ctx,
    pub status: StatusCode,
    pub response_headers: http::HeaderMap,
    /// Bytes of response body sent to the client.
    pub response_size: u64,
    /// Time from the request's first byte to the response's last.
    pub total: Duration,
    /// The response body as sent to the client, kept (bounded) only for AI targets with
    /// `logging.log_payloads`.
    pub response_payload: Option<Bytes>,
}
