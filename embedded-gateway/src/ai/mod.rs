//! Owns the LLM side of the gateway: canonical OpenAI types, SSE framing, the per-provider
//! translators, and the compiled `ai-proxy-advanced` plugin that runs a request upstream.

pub mod aws;
mod balancer;
pub mod chat_body;
pub mod chunks;
pub mod config;
pub mod credentials;
pub mod facts;
pub mod plugin;
pub mod providers;
mod respond;
pub mod scrub;
pub mod sse;
mod targets;
pub mod types;

use axum::body::Body;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use types::ErrorEnvelope;

/// A failure the AI proxy answers itself, in the OpenAI error envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl AiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code: Some(code),
        }
    }

    /// A 400 for a request Gantry cannot proxy.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// The 400 for a body that is not a JSON object.
    pub fn bad_json() -> Self {
        Self::bad_request(
            "invalid_json",
            "content-type header does not match request body, or bad JSON formatting: the body must be a JSON object",
        )
    }

    /// The 413 for a body over `max_request_body_size`.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!(
                "request body is larger than the allowed {limit} bytes (max_request_body_size)"
            ),
        )
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope::new(self.message.clone(), self.kind, self.code)
    }

    /// This error as an OpenAI-envelope JSON response.
    pub fn response(&self) -> Response<Body> {
        let mut r = Response::new(Body::from(self.envelope().to_bytes()));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}
