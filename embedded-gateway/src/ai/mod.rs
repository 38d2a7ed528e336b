//! Owns the LLM side of the gateway: canonical OpenAI types, SSE framing, the per-provider
//! translators, and the compiled `ai-proxy-advanced` plugin that runs a request upstream.

pub mod chat_body;
pub mod h1;
pub mod plugin;
pub mod providers;
pub mod scrub;
pub mod sse;
pub mod types;
pub mod upstream;

use http::StatusCode;

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

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope::new(self.message.clone(), self.kind, self.code)
    }
}
