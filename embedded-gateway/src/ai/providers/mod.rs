//! Owns provider dispatch. Each provider lives in one file and is one arm of [`ProviderKind`]:
//! adding a provider means adding its file and its arm here, nothing else. Providers that
//! speak another provider's wire format (Azure, vLLM and Hugging Face speak OpenAI; Mistral
//! and Llama2 speak OpenAI or Ollama) share that format's translator through [`Wire`].

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod common;
pub mod gemini;
pub mod huggingface;
pub mod kind;
pub mod llama2;
pub mod mistral;
pub mod ollama;
pub mod openai;
pub mod stream;
pub mod vertex;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::AiError;
use super::chat_body::ChatBody;
use super::chunks::Chunks;
use super::sse::SseDecoder;
use super::types::ErrorEnvelope;
use crate::ai::config::{Llama2Format, ModelOptions};
use common::encode;

pub use common::error_type_for;
pub use kind::{ProviderKind, Wire};
pub use stream::{FrameDecoder, StreamTranslator};

impl ProviderKind {
    /// The provider's endpoint for this target, resolved once per config: `upstream_url` (a
    /// full URL) wins; else `base` (`serve --upstream-override`) or the public API plus the
    /// provider's path. Gemini and Bedrock put the model in the path, added per request by
    /// [`Self::request_url`]; for them `upstream_url` is the base.
    pub fn endpoint(self, o: &ModelOptions, base: Option<&str>) -> Result<url::Url, String> {
        let parse = |s: &str| url::Url::parse(s).map_err(|e| format!("invalid upstream URL: {e}"));
        match self {
            Self::Azure => azure::endpoint(o, base),
            Self::Gemini => gemini::endpoint(o, base),
            Self::Bedrock => bedrock::endpoint(o, base),
            _ => {
                let (default, path) = self.default_endpoint();
                if let Some(u) = &o.upstream_url {
                    // An explicit URL at the provider's own public host follows an override
                    // too (the simulator of `quickstart --mock-llm`); any other URL (a proxy,
                    // a self-hosted model) is kept.
                    return match (base, default) {
                        (Some(b), Some(d)) if same_host(u, d) => reorigin(u, b),
                        _ => parse(u),
                    };
                }
                let base = base.or(default).ok_or_else(|| {
                    format!(
                        "the {} provider needs 'model.options.upstream_url' (self-hosted model)",
                        self.label()
                    )
                })?;
                parse(&format!("{}{path}", base.trim_end_matches('/')))
            }
        }
    }

    /// Public base URL (None for self-hosted) and chat path.
    fn default_endpoint(self) -> (Option<&'static str>, &'static str) {
        match self.wire() {
            Wire::Ollama => (None, ollama::CHAT_PATH),
            Wire::Tgi => (None, llama2::GENERATE_PATH),
            _ => match self {
                Self::OpenAi => (Some(openai::DEFAULT_BASE), openai::CHAT_PATH),
                Self::Anthropic => (Some(anthropic::DEFAULT_BASE), anthropic::CHAT_PATH),
                Self::Mistral(_) => (Some(mistral::DEFAULT_BASE), openai::CHAT_PATH),
                Self::Cohere => (Some(cohere::DEFAULT_BASE), cohere::CHAT_PATH),
                Self::HuggingFace => (Some(huggingface::DEFAULT_BASE), openai::CHAT_PATH),
                _ => (None, openai::CHAT_PATH),
            },
        }
    }

    /// The URL for one request: the model and the streaming operation where a provider puts
    /// them in the path.
    pub fn request_url(self, endpoint: &url::Url, model: &str, stream: bool) -> url::Url {
        match self {
            Self::Gemini => gemini::request_url(endpoint, model, stream),
            Self::Bedrock => bedrock::request_url(endpoint, model, stream),
            Self::Llama2(Llama2Format::Raw) => llama2::request_url(endpoint, stream),
            _ => endpoint.clone(),
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
        match self.wire() {
            Wire::OpenAi => openai::build_request(req, model, options, stream),
            Wire::Anthropic => anthropic::build_request(req, model, options, stream),
            Wire::Gemini => gemini::build_request(req, model, options, stream),
            Wire::Bedrock => bedrock::build_request(req, model, options, stream),
            Wire::Cohere => cohere::build_request(req, model, options, stream),
            Wire::Ollama => ollama::build_request(self, req, model, options, stream),
            Wire::Tgi => llama2::build_request(req, model, options, stream),
        }
    }

    /// [`Self::build_request`] as an in-place edit of the client's body, where the wire format
    /// allows one (OpenAI-format upstreams); `None` means build it in full.
    pub fn rewrite_request(
        self,
        body: &ChatBody,
        model: &str,
        options: &ModelOptions,
        stream: bool,
    ) -> Option<Vec<u8>> {
        match self.wire() {
            Wire::OpenAi => openai::rewrite_request(body, model, options, stream),
            _ => None,
        }
    }

    /// Headers the provider needs besides credentials.
    pub fn add_headers(self, options: &ModelOptions, headers: &mut HeaderMap) {
        match self {
            Self::Anthropic => anthropic::add_headers(options, headers),
            Self::HuggingFace => huggingface::add_headers(options, headers),
            _ => {}
        }
    }

    /// Turns a successful native response body into an OpenAI `chat.completion` body.
    pub fn convert_response(self, body: Bytes, model: &str) -> Result<Bytes, AiError> {
        match self.wire() {
            Wire::OpenAi if self.normalizes_finish() => huggingface::convert_response(body),
            Wire::OpenAi => openai::convert_response(body),
            Wire::Anthropic => anthropic::convert_response(&body, model),
            Wire::Gemini => gemini::convert_response(&body, model),
            Wire::Bedrock => bedrock::convert_response(&body, model),
            Wire::Cohere => cohere::convert_response(&body, model),
            Wire::Ollama => ollama::convert_response(&body, model),
            Wire::Tgi => llama2::convert_response(&body, model),
        }
    }

    /// Maps a provider error body to the OpenAI envelope.
    pub fn map_error(self, status: StatusCode, body: &[u8]) -> ErrorEnvelope {
        let mapped = match self.wire() {
            Wire::OpenAi if self == Self::Azure => azure::map_error(body, status),
            Wire::OpenAi if matches!(self, Self::Mistral(_)) => mistral::map_error(body, status),
            Wire::OpenAi => {
                openai::map_error(body).or_else(|| huggingface::map_error(body, status))
            }
            Wire::Anthropic => anthropic::map_error(body),
            Wire::Gemini => gemini::map_error(body),
            Wire::Bedrock => bedrock::map_error(body, status),
            Wire::Cohere => cohere::map_error(body, status),
            Wire::Ollama | Wire::Tgi => ollama::map_error(body, status),
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

    /// How the provider frames its stream when the response does not say.
    pub fn frame_decoder(self) -> FrameDecoder {
        match self.wire() {
            Wire::Bedrock => FrameDecoder::EventStream(bedrock::EventStreamDecoder::default()),
            Wire::Ollama => FrameDecoder::JsonLines(ollama::JsonLinesDecoder::default()),
            _ => FrameDecoder::Sse(SseDecoder::default()),
        }
    }

    /// A fresh stream translator for one response.
    pub fn stream_translator(self, model: &str, include_usage: bool) -> StreamTranslator {
        let chunks = || Chunks::new(model, include_usage);
        match self.wire() {
            Wire::OpenAi if self.normalizes_finish() => {
                StreamTranslator::Normalized(huggingface::StreamState::default())
            }
            Wire::OpenAi => StreamTranslator::OpenAi(openai::StreamState {
                strip_usage: !include_usage,
                ..openai::StreamState::default()
            }),
            Wire::Anthropic => {
                StreamTranslator::Anthropic(anthropic::StreamState::new(model, include_usage))
            }
            Wire::Gemini => StreamTranslator::Gemini(gemini::StreamState::new(chunks())),
            Wire::Bedrock => StreamTranslator::Bedrock(bedrock::StreamState::new(chunks())),
            Wire::Cohere => StreamTranslator::Cohere(cohere::StreamState::new(chunks())),
            Wire::Ollama => StreamTranslator::Ollama(ollama::StreamState::new(chunks())),
            Wire::Tgi => StreamTranslator::Tgi(llama2::StreamState::new(chunks())),
        }
    }
}

/// A native-format (`llm_format`) request body: passed through untranslated, with only the
/// model pinned (in the body for providers that carry it there; Gemini and Bedrock carry it
/// in the URL) and `stream` made explicit.
pub fn native_request(
    kind: ProviderKind,
    mut body: Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    match kind.wire() {
        Wire::Gemini | Wire::Bedrock => {
            body.remove("model");
            body.remove("stream");
        }
        _ => {
            body.insert("model".into(), model.into());
            body.insert("stream".into(), stream.into());
        }
    }
    encode(&Value::Object(body), kind.name())
}

/// True when both URLs name the same host.
fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    host(a).is_some_and(|h| Some(h) == host(b))
}

/// `url` with its scheme, host and port taken from `base` (path and query kept).
pub fn reorigin(url: &str, base: &str) -> Result<url::Url, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("invalid upstream URL: {e}"))?;
    let b = url::Url::parse(base).map_err(|e| format!("invalid upstream URL: {e}"))?;
    u.set_scheme(b.scheme())
        .and_then(|()| u.set_host(b.host_str()).map_err(|_| ()))
        .and_then(|()| u.set_port(b.port()))
        .map_err(|()| format!("cannot point '{url}' at '{base}'"))?;
    Ok(u)
}

/// The override key that sends Google's service-account token exchange elsewhere (to the
/// simulator's `POST /token`), as `serve --upstream-override gcp_oauth=URL`.
pub const GCP_OAUTH_OVERRIDE: &str = "gcp_oauth";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::config::MistralFormat;
    use http::HeaderValue;

    #[test]
    fn an_override_moves_a_hosted_providers_explicit_url_but_not_a_self_hosted_one() {
        let options = |url: &str| -> ModelOptions {
            serde_json::from_value(serde_json::json!({ "upstream_url": url })).unwrap()
        };
        let mistral = options("https://api.mistral.ai/v1/chat/completions");
        let kind = ProviderKind::Mistral(MistralFormat::Openai);
        let url = kind
            .endpoint(&mistral, Some("http://127.0.0.1:9090"))
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/v1/chat/completions");
        assert_eq!(
            kind.endpoint(&mistral, None).unwrap().as_str(),
            "https://api.mistral.ai/v1/chat/completions"
        );
        // An explicit URL elsewhere (a company proxy) stays where it is.
        let proxy = options("https://llm-proxy.internal/v1/chat/completions");
        assert_eq!(
            kind.endpoint(&proxy, Some("http://127.0.0.1:9090"))
                .unwrap()
                .as_str(),
            "https://llm-proxy.internal/v1/chat/completions"
        );
        let ollama = options("http://gpu-box:11434/api/chat");
        let kind = ProviderKind::Mistral(MistralFormat::Ollama);
        let url = kind
            .endpoint(&ollama, Some("http://127.0.0.1:9090"))
            .unwrap();
        assert_eq!(url.as_str(), "http://gpu-box:11434/api/chat");
    }

    fn decoder(kind: ProviderKind, ct: Option<&'static str>) -> &'static str {
        let ct = ct.map(HeaderValue::from_static);
        match FrameDecoder::for_response(kind, ct.as_ref()) {
            FrameDecoder::Sse(_) => "sse",
            FrameDecoder::EventStream(_) => "eventstream",
            FrameDecoder::JsonLines(_) => "jsonlines",
            FrameDecoder::JsonArray(_) => "jsonarray",
        }
    }

    #[test]
    fn the_stream_decoder_follows_the_response_content_type_then_the_provider() {
        let g = ProviderKind::Gemini;
        assert_eq!(decoder(g, Some("text/event-stream; charset=utf-8")), "sse");
        assert_eq!(
            decoder(g, Some("application/json; charset=UTF-8")),
            "jsonarray"
        );
        assert_eq!(
            decoder(
                ProviderKind::Bedrock,
                Some("application/vnd.amazon.eventstream")
            ),
            "eventstream"
        );
        assert_eq!(decoder(ProviderKind::Bedrock, None), "eventstream");
        assert_eq!(
            decoder(ProviderKind::Ollama, Some("application/x-ndjson")),
            "jsonlines"
        );
        // Ollama labels its NDJSON stream application/json in some versions.
        assert_eq!(
            decoder(ProviderKind::Ollama, Some("application/json")),
            "jsonlines"
        );
        assert_eq!(decoder(ProviderKind::Cohere, None), "sse");
    }

    #[test]
    fn every_configured_provider_has_a_translator_and_a_name() {
        use crate::ai::config::Provider::*;
        for p in [
            Openai,
            Azure,
            Anthropic,
            Bedrock,
            Gemini,
            Mistral,
            Cohere,
            Llama2,
            Huggingface,
            Ollama,
            Vllm,
        ] {
            let kind = ProviderKind::for_target(p, &ModelOptions::default());
            assert_eq!(kind.name(), p.as_str());
        }
    }
}

/// Helpers the providers' table tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::{Map, Value};

    pub fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    pub fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("expected a JSON object, got {other}"),
        }
    }
}
