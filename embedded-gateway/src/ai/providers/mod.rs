//! Owns provider dispatch. Each provider lives in one file and is one arm of [`ProviderKind`]:
//! adding a provider means adding its file and its arm here, nothing else. Providers that
//! speak another provider's wire format (Azure, vLLM and Hugging Face speak OpenAI; Mistral
//! and Llama2 speak OpenAI or Ollama) share that format's translator through [`Wire`].

pub mod anthropic;
pub mod aws_sts;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod huggingface;
pub mod llama2;
pub mod mistral;
pub mod ollama;
pub mod openai;
pub mod vertex;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::AiError;
use super::chat_body::ChatBody;
use super::sse::{DONE, SseDecoder, SseEvent, encode_data};
use super::types::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, DeltaFunction, DeltaToolCall,
    ErrorEnvelope, ResponseMessage, ToolCall, Usage, unix_now,
};
use crate::plugins::ai_proxy::{Llama2Format, MistralFormat, ModelOptions, Provider};

/// The providers this build translates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Azure,
    Bedrock,
    Gemini,
    Mistral(MistralFormat),
    Cohere,
    HuggingFace,
    Llama2(Llama2Format),
    Ollama,
    Vllm,
}

/// The wire format a provider speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Cohere,
    Ollama,
    /// Hugging Face Text Generation Inference (`inputs`/`parameters`), Kong's `llama2_format: raw`.
    Tgi,
}

impl ProviderKind {
    /// The translator for a configured provider; `mistral_format`/`llama2_format` choose the
    /// wire format of the two self-describing providers (OpenAI when unset).
    pub fn for_target(p: Provider, options: &ModelOptions) -> Self {
        match p {
            Provider::Openai => Self::OpenAi,
            Provider::Anthropic => Self::Anthropic,
            Provider::Azure => Self::Azure,
            Provider::Bedrock => Self::Bedrock,
            Provider::Gemini => Self::Gemini,
            Provider::Mistral => {
                Self::Mistral(options.mistral_format.unwrap_or(MistralFormat::Openai))
            }
            Provider::Cohere => Self::Cohere,
            Provider::Huggingface => Self::HuggingFace,
            Provider::Llama2 => Self::Llama2(options.llama2_format.unwrap_or(Llama2Format::Openai)),
            Provider::Ollama => Self::Ollama,
            Provider::Vllm => Self::Vllm,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::Mistral(_) => "mistral",
            Self::Cohere => "cohere",
            Self::HuggingFace => "huggingface",
            Self::Llama2(_) => "llama2",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
        }
    }

    pub fn wire(self) -> Wire {
        match self {
            Self::OpenAi
            | Self::Azure
            | Self::HuggingFace
            | Self::Vllm
            | Self::Mistral(MistralFormat::Openai)
            | Self::Llama2(Llama2Format::Openai) => Wire::OpenAi,
            Self::Anthropic => Wire::Anthropic,
            Self::Bedrock => Wire::Bedrock,
            Self::Gemini => Wire::Gemini,
            Self::Cohere => Wire::Cohere,
            Self::Ollama
            | Self::Mistral(MistralFormat::Ollama)
            | Self::Llama2(Llama2Format::Ollama) => Wire::Ollama,
            Self::Llama2(Llama2Format::Raw) => Wire::Tgi,
        }
    }

    /// OpenAI-compatible servers that may be TGI underneath (Hugging Face, vLLM, llama2's
    /// `openai` format): their finish reasons are normalised to OpenAI's.
    fn normalizes_finish(self) -> bool {
        matches!(
            self,
            Self::HuggingFace | Self::Vllm | Self::Llama2(Llama2Format::Openai)
        )
    }

    /// `provider (format)` for messages about self-describing providers.
    pub fn label(self) -> String {
        match self {
            Self::Mistral(f) => format!(
                "mistral (mistral_format {})",
                match f {
                    MistralFormat::Openai => "openai",
                    MistralFormat::Ollama => "ollama",
                }
            ),
            Self::Llama2(f) => format!(
                "llama2 (llama2_format {})",
                match f {
                    Llama2Format::Openai => "openai",
                    Llama2Format::Ollama => "ollama",
                    Llama2Format::Raw => "raw",
                }
            ),
            other => other.name().to_owned(),
        }
    }

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
            Wire::OpenAi => StreamTranslator::OpenAi(openai::StreamState::default()),
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

/// Splits a provider's byte stream into events: SSE, AWS event-stream, JSON lines or a
/// streamed JSON array. Each event arrives as an [`SseEvent`] (`event` = the event type where
/// the framing has one).
#[derive(Debug)]
pub enum FrameDecoder {
    Sse(SseDecoder),
    EventStream(bedrock::EventStreamDecoder),
    JsonLines(ollama::JsonLinesDecoder),
    JsonArray(gemini::JsonArrayDecoder),
}

impl FrameDecoder {
    /// The decoder for a streamed response's `Content-Type` (as Kong's `frame_to_events`
    /// does), else the provider's usual framing.
    pub fn for_response(kind: ProviderKind, content_type: Option<&http::HeaderValue>) -> Self {
        let essence = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("text/event-stream") => Self::Sse(SseDecoder::default()),
            Some("application/vnd.amazon.eventstream") => {
                Self::EventStream(bedrock::EventStreamDecoder::default())
            }
            Some("application/x-ndjson" | "application/stream+json" | "application/jsonl") => {
                Self::JsonLines(ollama::JsonLinesDecoder::default())
            }
            Some("application/json") if kind.wire() != Wire::Ollama => {
                Self::JsonArray(gemini::JsonArrayDecoder::default())
            }
            _ => kind.frame_decoder(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        match self {
            Self::Sse(d) => d.feed(chunk, out),
            Self::EventStream(d) => d.feed(chunk, out),
            Self::JsonLines(d) => d.feed(chunk, out),
            Self::JsonArray(d) => d.feed(chunk, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        match self {
            Self::Sse(d) => d.finish(out),
            Self::EventStream(d) => d.finish(out),
            Self::JsonLines(d) => d.finish(out),
            Self::JsonArray(_) => {}
        }
    }
}

/// Converts a provider's stream events into OpenAI `chat.completion.chunk` frames.
#[derive(Debug)]
pub enum StreamTranslator {
    OpenAi(openai::StreamState),
    /// OpenAI passthrough with TGI finish reasons normalised.
    Normalized(huggingface::StreamState),
    Anthropic(anthropic::StreamState),
    Gemini(gemini::StreamState),
    Bedrock(bedrock::StreamState),
    Cohere(cohere::StreamState),
    Ollama(ollama::StreamState),
    Tgi(llama2::StreamState),
}

impl StreamTranslator {
    /// Translates one upstream event; downstream frames are appended to `out`.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        match self {
            Self::OpenAi(s) => s.on_event(ev, out),
            Self::Normalized(s) => s.on_event(ev, out),
            Self::Anthropic(s) => s.on_event(ev, out),
            Self::Gemini(s) => s.on_event(ev, out),
            Self::Bedrock(s) => s.on_event(ev, out),
            Self::Cohere(s) => s.on_event(ev, out),
            Self::Ollama(s) => s.on_event(ev, out),
            Self::Tgi(s) => s.on_event(ev, out),
        }
    }

    /// True once the provider signalled the end of the stream (or an error event was sent).
    pub fn is_done(&self) -> bool {
        match self {
            Self::OpenAi(s) => s.done,
            Self::Normalized(s) => s.done,
            Self::Anthropic(s) => s.done,
            Self::Gemini(s) => s.chunks.done,
            Self::Bedrock(s) => s.chunks.done,
            Self::Cohere(s) => s.chunks.done,
            Self::Ollama(s) => s.chunks.done,
            Self::Tgi(s) => s.chunks.done,
        }
    }

    /// Called when the upstream closed the stream. Gemini's stream has no terminator (and
    /// older models mark every chunk `STOP`), so it finishes on close once a finish reason was
    /// seen; Bedrock finishes once `messageStop` was seen even if `metadata` never came.
    pub fn on_close(&mut self, out: &mut Vec<Bytes>) {
        let chunks = match self {
            Self::Gemini(s) => &mut s.chunks,
            Self::Bedrock(s) => &mut s.chunks,
            _ => return,
        };
        if !chunks.done && chunks.finish_reason.is_some() {
            chunks.finish(out);
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

/// The tuning values every translator reads: client value, else plugin default.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tuning {
    pub max_tokens: Option<Value>,
    pub temperature: Option<Value>,
    pub top_p: Option<Value>,
    pub top_k: Option<Value>,
    /// `stop` as a list.
    pub stop: Option<Vec<Value>>,
}

impl Tuning {
    pub fn of(req: &Map<String, Value>, o: &ModelOptions) -> Self {
        let pick = |key: &str, default: Option<Value>| tuning(req, key).cloned().or(default);
        Self {
            max_tokens: tuning(req, "max_tokens")
                .or_else(|| tuning(req, "max_completion_tokens"))
                .cloned()
                .or_else(|| o.max_tokens.map(Value::from)),
            temperature: pick("temperature", o.temperature.map(Value::from)),
            top_p: pick("top_p", o.top_p.map(Value::from)),
            top_k: pick("top_k", o.top_k.map(Value::from)),
            stop: match tuning(req, "stop") {
                Some(Value::String(s)) => Some(vec![Value::String(s.clone())]),
                Some(Value::Array(a)) => Some(a.clone()),
                _ => None,
            },
        }
    }
}

/// The request's `messages` array.
pub(crate) fn messages(req: &Map<String, Value>) -> Vec<Value> {
    req.get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// True for roles every translator folds into the system prompt.
pub(crate) fn is_system(role: &str) -> bool {
    matches!(role, "system" | "developer")
}

/// Plain text of a string or an array of `text` parts.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An `image_url` part's URL split into media type and base64 data when it is a data URL.
pub(crate) enum ImageSource<'a> {
    Data { media_type: &'a str, data: &'a str },
    Url(&'a str),
}

pub(crate) fn image_source(part: &Value) -> Option<ImageSource<'_>> {
    let url = part.get("image_url")?.get("url")?.as_str()?;
    Some(
        match url
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((media_type, data)) => ImageSource::Data { media_type, data },
            None => ImageSource::Url(url),
        },
    )
}

/// The 400 for a feature a provider cannot take.
pub(crate) fn unsupported(kind: ProviderKind, feature: &str) -> AiError {
    AiError::bad_request(
        "unsupported_feature",
        format!("the {} provider does not support {feature}", kind.label()),
    )
}

/// The 400 for a request the translator could not encode.
pub(crate) fn encode(v: &Value, kind: &str) -> Result<Vec<u8>, AiError> {
    serde_json::to_vec(v).map_err(|_| {
        AiError::bad_request(
            "invalid_request",
            format!("error transforming to {kind}://llm/v1/chat"),
        )
    })
}

/// The 502 for a provider body the translator cannot read.
pub(crate) fn bad_upstream(kind: &str, why: &str) -> AiError {
    AiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "bad_upstream_response",
        format!("transformation failed from type {kind}://llm/v1/chat: {why}"),
    )
}

/// Arguments of an OpenAI tool call parsed to JSON (`{}` when empty or invalid).
pub(crate) fn call_arguments(call: &Value) -> Value {
    let args = call
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}");
    serde_json::from_str(args).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Tool call id → function name, for providers whose tool results carry the name.
pub(crate) fn tool_names(msgs: &[Value]) -> std::collections::HashMap<String, String> {
    msgs.iter()
        .filter_map(|m| m.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("id")?.as_str()?.to_owned(),
                c.pointer("/function/name")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// A finished `chat.completion` from translated parts.
pub(crate) struct Completion {
    pub id: Option<String>,
    pub model: String,
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

impl Completion {
    pub fn into_bytes(self) -> Bytes {
        let c = ChatCompletion {
            id: self.id.unwrap_or_else(|| new_id("chatcmpl-")),
            object: "chat.completion".into(),
            created: unix_now(),
            model: self.model,
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: (!self.text.is_empty() || self.calls.is_empty()).then_some(self.text),
                    tool_calls: (!self.calls.is_empty()).then_some(self.calls),
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.usage,
            system_fingerprint: None,
        };
        serde_json::to_vec(&c).unwrap_or_default().into()
    }
}

/// Writes OpenAI chunks for one translated stream: role first, text and tool-call deltas,
/// then a final chunk with `finish_reason`, a usage chunk when asked, and `[DONE]`.
#[derive(Debug)]
pub struct Chunks {
    pub id: String,
    pub model: String,
    created: u64,
    include_usage: bool,
    started: bool,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub tool_calls: u32,
    pub done: bool,
}

impl Chunks {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: new_id("chatcmpl-"),
            model: model.to_owned(),
            created: unix_now(),
            include_usage,
            started: false,
            usage: Usage::default(),
            finish_reason: None,
            tool_calls: 0,
            done: false,
        }
    }

    fn frame(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> Bytes {
        let c = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: None,
            choices,
            usage,
        };
        encode_data(&serde_json::to_vec(&c).unwrap_or_default())
    }

    fn delta(&mut self, delta: Delta, finish: Option<String>, out: &mut Vec<Bytes>) {
        self.start(out);
        out.push(self.frame(
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            None,
        ));
    }

    /// The role chunk, once.
    pub fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let delta = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        };
        out.push(self.frame(
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: None,
            }],
            None,
        ));
    }

    pub fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if text.is_empty() {
            return;
        }
        let delta = Delta {
            content: Some(text.to_owned()),
            ..Default::default()
        };
        self.delta(delta, None, out);
    }

    /// A new tool call (id and name); returns its OpenAI index.
    pub fn tool_start(&mut self, id: &str, name: &str, out: &mut Vec<Bytes>) -> u32 {
        let index = self.tool_calls;
        self.tool_calls += 1;
        let call = DeltaToolCall {
            index,
            id: Some(id.to_owned()),
            kind: Some("function".into()),
            function: DeltaFunction {
                name: Some(name.to_owned()),
                arguments: Some(String::new()),
            },
        };
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Default::default()
        };
        self.delta(delta, None, out);
        index
    }

    pub fn tool_args(&mut self, index: u32, args: &str, out: &mut Vec<Bytes>) {
        let call = DeltaToolCall {
            index,
            id: None,
            kind: None,
            function: DeltaFunction {
                name: None,
                arguments: Some(args.to_owned()),
            },
        };
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Default::default()
        };
        self.delta(delta, None, out);
    }

    /// The finish chunk (reason from `finish_reason`, `tool_calls` when calls were made,
    /// else `stop`), the usage chunk when asked, and `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        let reason = self.finish_reason.clone().unwrap_or_else(|| {
            if self.tool_calls > 0 {
                "tool_calls"
            } else {
                "stop"
            }
            .to_owned()
        });
        self.delta(Delta::default(), Some(reason), out);
        if self.include_usage {
            let mut u = self.usage;
            u.total_tokens = u.total_tokens.max(u.prompt_tokens + u.completion_tokens);
            out.push(self.frame(Vec::new(), Some(u)));
        }
        out.push(Bytes::from_static(DONE));
        self.done = true;
    }

    /// Ends the stream with an OpenAI error event.
    pub fn error(&mut self, env: &ErrorEnvelope, out: &mut Vec<Bytes>) {
        out.push(encode_data(&serde_json::to_vec(env).unwrap_or_default()));
        self.done = true;
    }

    /// The JSON of one upstream event of a JSON-lines stream (Ollama, TGI). `None` when the
    /// stream already ended, the data is not JSON, or it is an upstream `{"error": "…"}`, which
    /// ends the stream with an error event.
    pub fn json_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Option<Value> {
        if self.done {
            return None;
        }
        let v = serde_json::from_str::<Value>(&ev.data).ok()?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            let env = ErrorEnvelope::new(e, "api_error", Some("upstream_error"));
            self.error(&env, out);
            return None;
        }
        Some(v)
    }
}

/// A fresh, unique-enough id with the given prefix (`chatcmpl-…`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
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

/// Where a minted `Authorization: Bearer` comes from, for providers that need one.
#[derive(Debug)]
pub enum BearerSource {
    /// Vertex AI with a Google service account.
    Gcp(vertex::TokenSource),
    /// Azure OpenAI with Microsoft Entra ID.
    Azure(azure::EntraToken),
}

impl BearerSource {
    /// The source a target's `auth` asks for: `Some(Err)` says why it cannot be built.
    pub fn from_auth(auth: &crate::plugins::ai_proxy::Auth) -> Option<Result<Self, String>> {
        if let Some(g) = vertex::TokenSource::from_auth(auth) {
            return Some(g.map(Self::Gcp));
        }
        azure::EntraToken::from_auth(auth).map(|a| Ok(Self::Azure(a)))
    }

    pub async fn bearer(&self, client: &reqwest::Client) -> Result<http::HeaderValue, AiError> {
        match self {
            Self::Gcp(g) => g.bearer(client).await,
            Self::Azure(a) => a.bearer(client).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        use crate::plugins::ai_proxy::Provider::*;
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
