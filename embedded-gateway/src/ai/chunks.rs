//! Owns the OpenAI output builders the translators share: [`Completion`] for a whole answer and
//! [`Chunks`] for a stream (role first, deltas, the finish chunk, usage when asked, `[DONE]`).

use bytes::Bytes;
use serde_json::Value;

use super::sse::{DONE, SseEvent, encode_data};
use super::types::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, DeltaFunction, DeltaToolCall,
    ErrorEnvelope, ResponseMessage, ToolCall, Usage, unix_now,
};

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
