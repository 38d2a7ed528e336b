//! Owns provider dispatch. Each provider lives in one file and is one arm of [`ProviderKind`]:
//! adding a provider means adding its file and its arm here, nothing else.

pub mod anthropic;
pub mod openai;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::AiError;
use super::sse::SseEvent;
use super::types::ErrorEnvelope;
use crate::plugins::ai_proxy::{ModelOptions, Provider};

/// The providers this build translates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
}

impl ProviderKind {
    /// The translator for a configured provider, or `None` when this build has none yet.
    pub fn for_provider(p: Provider) -> Option<Self> {
        match p {
            Provider::Openai => Some(Self::OpenAi),
            Provider::Anthropic => Some(Self::Anthropic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// Scheme, host and port of the provider's public API.
    pub fn default_base(self) -> &'static str {
        match self {
            Self::OpenAi => openai::DEFAULT_BASE,
            Self::Anthropic => anthropic::DEFAULT_BASE,
        }
    }

    /// The chat endpoint's path under the base URL.
    pub fn chat_path(self) -> &'static str {
        match self {
            Self::OpenAi => openai::CHAT_PATH,
            Self::Anthropic => anthropic::CHAT_PATH,
        }
    }

    /// Turns the client's OpenAI-format request into the provider's native body.
    pub fn build_request(
        self,
        req: Map<String, Value>,
        model: &str,
        options: &ModelOptions,
        stream: bool,
    ) -> Result<Vec<u8>, AiError> {
        match self {
            Self::OpenAi => openai::build_request(req, model, options, stream),
            Self::Anthropic => anthropic::build_request(req, model, options, stream),
        }
    }

    /// Headers the provider needs besides credentials.
    pub fn add_headers(self, options: &ModelOptions, headers: &mut HeaderMap) {
        if self == Self::Anthropic {
            anthropic::add_headers(options, headers);
        }
    }

    /// Turns a successful native response body into an OpenAI `chat.completion` body.
    pub fn convert_response(self, body: Bytes, model: &str) -> Result<Bytes, AiError> {
        match self {
            Self::OpenAi => openai::convert_response(body),
            Self::Anthropic => anthropic::convert_response(&body, model),
        }
    }

    /// Maps a provider error body to the OpenAI envelope.
    pub fn map_error(self, status: StatusCode, body: &[u8]) -> ErrorEnvelope {
        let mapped = match self {
            Self::OpenAi => openai::map_error(body),
            Self::Anthropic => anthropic::map_error(body),
        };
        mapped.unwrap_or_else(|| {
            let reason = status.canonical_reason().unwrap_or("error");
            ErrorEnvelope::new(
                format!(
                    "the {} provider answered HTTP {} ({reason})",
                    self.name(),
                    status.as_u16()
                ),
                error_type_for(status),
                Some("upstream_error"),
            )
        })
    }

    /// A fresh stream translator for one response.
    pub fn stream_translator(self, model: &str, include_usage: bool) -> StreamTranslator {
        match self {
            Self::OpenAi => StreamTranslator::OpenAi(openai::StreamState::default()),
            Self::Anthropic => {
                StreamTranslator::Anthropic(anthropic::StreamState::new(model, include_usage))
            }
        }
    }
}

/// The OpenAI error `type` that matches an HTTP status.
pub fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Converts a provider's SSE events into OpenAI `chat.completion.chunk` frames.
#[derive(Debug)]
pub enum StreamTranslator {
    OpenAi(openai::StreamState),
    Anthropic(anthropic::StreamState),
}

impl StreamTranslator {
    /// Translates one upstream event; downstream frames are appended to `out`.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        match self {
            Self::OpenAi(s) => s.on_event(ev, out),
            Self::Anthropic(s) => s.on_event(ev, out),
        }
    }

    /// True once the provider signalled the end of the stream (or an error event was sent).
    pub fn is_done(&self) -> bool {
        match self {
            Self::OpenAi(s) => s.done,
            Self::Anthropic(s) => s.done,
        }
    }
}

/// Request tuning: the request's own value, else the plugin's configured default.
pub(crate) fn tuning<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    req.get(key).filter(|v| !v.is_null())
}

/// Fills `temperature`, `top_p` and `max_tokens` from plugin options when the client sent none.
pub(crate) fn fill_option_defaults(req: &mut Map<String, Value>, options: &ModelOptions) {
    if let Some(t) = options.max_tokens
        && tuning(req, "max_tokens").is_none()
        && tuning(req, "max_completion_tokens").is_none()
    {
        req.insert("max_tokens".into(), t.into());
    }
    if let Some(t) = options.temperature
        && tuning(req, "temperature").is_none()
    {
        req.insert("temperature".into(), t.into());
    }
    if let Some(t) = options.top_p
        && tuning(req, "top_p").is_none()
    {
        req.insert("top_p".into(), t.into());
    }
}

/// A fresh, unique-enough id with the given prefix (`chatcmpl-…`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
