//! Owns a provider stream's two stages: [`FrameDecoder`] splits the upstream bytes into events
//! (SSE, AWS event-stream, JSON lines, a streamed JSON array) and [`StreamTranslator`] turns
//! each provider's events into OpenAI chunks.

use bytes::Bytes;

use super::kind::{ProviderKind, Wire};
use super::{anthropic, bedrock, cohere, gemini, huggingface, llama2, ollama, openai};
use crate::ai::chunks::Chunks;
use crate::ai::sse::{SseDecoder, SseEvent};
use crate::ai::types::Usage;

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

    /// The token usage the provider reported, once it did.
    pub fn usage(&self) -> Option<Usage> {
        let from_chunks = |c: &Chunks| {
            let u = c.usage;
            (u.prompt_tokens + u.completion_tokens + u.total_tokens > 0).then(|| Usage {
                total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
                ..u
            })
        };
        match self {
            Self::OpenAi(s) => s.usage,
            Self::Normalized(s) => s.usage,
            Self::Anthropic(s) => s.usage(),
            Self::Gemini(s) => from_chunks(&s.chunks),
            Self::Bedrock(s) => from_chunks(&s.chunks),
            Self::Cohere(s) => from_chunks(&s.chunks),
            Self::Ollama(s) => from_chunks(&s.chunks),
            Self::Tgi(s) => from_chunks(&s.chunks),
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
