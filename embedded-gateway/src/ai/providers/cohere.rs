//! Owns the Cohere provider: Chat v2 (`POST https://api.cohere.com/v2/chat`): OpenAI requests
//! to v2 bodies (`p`/`k`, `stop_sequences`, tools, image parts), v2 responses (and v1's
//! `text`/`generation_id` form) and v2 SSE events back to OpenAI, and Cohere's errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::common::{Tuning, bad_upstream, encode, error_type_for, messages, text_of, tuning};
use crate::ai::AiError;
use crate::ai::chunks::{Chunks, Completion};
use crate::ai::config::ModelOptions;
use crate::ai::sse::SseEvent;
use crate::ai::types::{ErrorEnvelope, FunctionCall, ToolCall, Usage};

pub const DEFAULT_BASE: &str = "https://api.cohere.com:443";
pub const CHAT_PATH: &str = "/v2/chat";

/// OpenAI chat request → Chat v2 body.
pub fn build_request(
    req: Map<String, Value>,
    model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    let msgs: Vec<Value> = messages(&req).iter().map(convert_message).collect();
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), Value::Array(msgs));
    body.insert("stream".into(), stream.into());
    let t = Tuning::of(&req, options);
    for (key, value) in [
        ("max_tokens", t.max_tokens),
        ("temperature", t.temperature),
        ("p", t.top_p),
        ("k", t.top_k),
        ("stop_sequences", t.stop.map(Value::Array)),
        ("seed", tuning(&req, "seed").cloned()),
        (
            "frequency_penalty",
            tuning(&req, "frequency_penalty").cloned(),
        ),
        (
            "presence_penalty",
            tuning(&req, "presence_penalty").cloned(),
        ),
        ("tools", tuning(&req, "tools").cloned()),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    }
    match tuning(&req, "tool_choice") {
        Some(Value::String(s)) if s == "required" => {
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
        Some(Value::String(s)) if s == "none" => {
            body.insert("tool_choice".into(), "NONE".into());
        }
        _ => {}
    }
    if let Some(Value::Object(f)) = tuning(&req, "response_format")
        && f.get("type").and_then(Value::as_str) == Some("json_object")
    {
        body.insert("response_format".into(), json!({"type": "json_object"}));
    }
    encode(&Value::Object(body), "cohere")
}

/// One OpenAI message in v2 form: `developer` is `system`; text and `image_url` parts keep
/// their OpenAI shape, which v2 shares; tool calls and results carry over.
fn convert_message(m: &Value) -> Value {
    let role = match m.get("role").and_then(Value::as_str).unwrap_or("user") {
        "developer" => "system",
        "function" => "tool",
        r => r,
    };
    let content = m.get("content").unwrap_or(&Value::Null);
    let content = match content {
        Value::Array(parts) if role == "user" => Value::Array(
            parts
                .iter()
                .filter(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("text" | "image_url")
                    )
                })
                .cloned()
                .collect(),
        ),
        other => Value::String(text_of(other)),
    };
    let mut out = json!({"role": role, "content": content});
    if let Some(calls) = m.get("tool_calls") {
        out["tool_calls"] = calls.clone();
        if out["content"] == "" {
            out.as_object_mut().map(|o| o.remove("content"));
        }
    }
    if let Some(id) = m.get("tool_call_id") {
        out["tool_call_id"] = id.clone();
    }
    out
}

/// v2 `finish_reason` → OpenAI.
pub fn map_finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        _ => "stop",
    }
}

fn usage_of(u: &Value) -> Option<Usage> {
    let src = u.get("tokens").or_else(|| u.get("billed_units"))?;
    let n = |k: &str| src.get(k).and_then(Value::as_f64).map(|f| f as u64);
    Some(Usage::new(
        n("input_tokens")?,
        n("output_tokens").unwrap_or(0),
    ))
}

fn calls_of(message: &Value) -> Vec<ToolCall> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
            kind: "function".into(),
            function: FunctionCall {
                name: c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: c
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_owned(),
            },
        })
        .collect()
}

/// Chat v2 response (or v1's `text` form) → `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad_upstream("cohere", "response is not JSON"))?;
    let (text, calls, usage, id) = if let Some(message) = v.get("message") {
        let text = message.get("content").map(text_of).unwrap_or_default();
        (
            text,
            calls_of(message),
            v.get("usage").and_then(usage_of),
            v.get("id"),
        )
    } else if let Some(t) = v.get("text").and_then(Value::as_str) {
        let usage = v
            .get("token_count")
            .and_then(|c| {
                Some(Usage::new(
                    c.get("prompt_tokens")?.as_u64()?,
                    c.get("response_tokens")?.as_u64()?,
                ))
            })
            .or_else(|| v.get("meta").and_then(usage_of));
        (t.to_owned(), Vec::new(), usage, v.get("generation_id"))
    } else {
        return Err(bad_upstream(
            "cohere",
            "'message' not in cohere://llm/v1/chat response",
        ));
    };
    let finish_reason = v
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(map_finish_reason)
        .unwrap_or(if calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        });
    Ok(Completion {
        id: id.and_then(Value::as_str).map(str::to_owned),
        model: model.to_owned(),
        text,
        calls,
        finish_reason: Some(finish_reason.to_owned()),
        usage,
    }
    .into_bytes())
}

/// `{"message": "…"}` (also `{"error": "…"}`) → OpenAI envelope.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v.get("message").or_else(|| v.get("error"))?.as_str()?;
    Some(ErrorEnvelope::new(message, error_type_for(status), None))
}

/// Per-response state for Chat v2 stream translation.
#[derive(Debug)]
pub struct StreamState {
    pub chunks: Chunks,
    /// v2 tool-call index → OpenAI tool-call index.
    tool_index: Vec<(u64, u32)>,
}

impl StreamState {
    pub fn new(chunks: Chunks) -> Self {
        Self {
            chunks,
            tool_index: Vec::new(),
        }
    }

    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.chunks.done {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        let kind = v
            .get("type")
            .or_else(|| v.get("event_type"))
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let msg = v.pointer("/delta/message").unwrap_or(&Value::Null);
        match kind {
            "message-start" | "stream-start" => {
                if let Some(id) = v
                    .get("id")
                    .or_else(|| v.get("generation_id"))
                    .and_then(Value::as_str)
                {
                    self.chunks.id = id.to_owned();
                }
                self.chunks.start(out);
            }
            "content-delta" => {
                let t = msg
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                self.chunks.text(t, out);
            }
            "text-generation" => {
                let t = v.get("text").and_then(Value::as_str).unwrap_or("");
                self.chunks.text(t, out);
            }
            "tool-call-start" => {
                let c = msg.get("tool_calls").unwrap_or(&Value::Null);
                let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let i = self.chunks.tool_start(id, name, out);
                self.tool_index.push((index, i));
                if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str)
                    && !a.is_empty()
                {
                    self.chunks.tool_args(i, a, out);
                }
            }
            "tool-call-delta" => {
                if let Some(a) = msg
                    .pointer("/tool_calls/function/arguments")
                    .and_then(Value::as_str)
                    && let Some(&(_, i)) = self.tool_index.iter().find(|(k, _)| *k == index)
                {
                    self.chunks.tool_args(i, a, out);
                }
            }
            "message-end" | "stream-end" => {
                let d = v.get("delta").unwrap_or(&v);
                if let Some(r) = d.get("finish_reason").and_then(Value::as_str) {
                    if r == "ERROR" {
                        let message = d
                            .get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("the cohere provider reported a stream error");
                        let env = ErrorEnvelope::new(message, "api_error", Some("upstream_error"));
                        self.chunks.error(&env, out);
                        return;
                    }
                    self.chunks.finish_reason = Some(map_finish_reason(r).to_owned());
                }
                let usage = d
                    .get("usage")
                    .or_else(|| v.pointer("/response/meta"))
                    .and_then(usage_of);
                if let Some(u) = usage {
                    self.chunks.usage = u;
                }
                self.chunks.finish(out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::providers::test_support::{object, parse};
    use crate::ai::sse::SseDecoder;

    #[test]
    fn request_carries_kongs_tuning_fields_in_chat_v2_form() {
        let req = object(parse(include_bytes!("../fixtures/unit_requests_chat.json")));
        let o = ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            top_p: Some(1.0),
            ..Default::default()
        };
        let got = parse(&build_request(req.clone(), "command", &o, false).unwrap());
        let kong_v1 = parse(include_bytes!(
            "../fixtures/unit_expected-requests_cohere_chat.json"
        ));
        for key in ["model", "max_tokens", "temperature", "p", "stream"] {
            assert_eq!(got[key], kong_v1[key], "{key}");
        }
        // v2 keeps the conversation as messages (v1's chat_history + message), system included.
        let sent = got["messages"].as_array().unwrap();
        assert_eq!(sent.len(), 6);
        assert_eq!(
            sent[0],
            json!({"role": "system", "content": "You are a mathematician."})
        );
        assert_eq!(sent[5]["content"], kong_v1["message"]);
        assert_eq!(sent[2]["content"], kong_v1["chat_history"][2]["message"]);
    }

    #[test]
    fn tools_tool_calls_and_images_keep_their_v2_shapes() {
        let req = object(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "stop": "X", "top_k": 3}));
        let b = parse(&build_request(req, "command-r", &ModelOptions::default(), true).unwrap());
        assert_eq!(
            b["messages"][0]["content"][1]["image_url"]["url"],
            "https://x.test/a.png"
        );
        assert_eq!(b["messages"][1]["tool_calls"][0]["function"]["name"], "f");
        assert!(b["messages"][1].get("content").is_none());
        assert_eq!(
            b["messages"][2],
            json!({"role": "tool", "content": "ok", "tool_call_id": "c1"})
        );
        assert_eq!(b["tool_choice"], "REQUIRED");
        assert_eq!(b["stop_sequences"], json!(["X"]));
        assert_eq!(b["k"], 3);
        assert_eq!(b["stream"], true);
    }

    #[test]
    fn v1_and_v2_responses_map_to_chat_completions() {
        let out = parse(
            &convert_response(
                include_bytes!("../fixtures/unit_real-responses_cohere_chat.json"),
                "command",
            )
            .unwrap(),
        );
        let expected = parse(include_bytes!(
            "../fixtures/unit_expected-responses_cohere_chat.json"
        ));
        assert_eq!(
            out["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
        assert_eq!(out["id"], expected["id"]);
        assert_eq!(out["usage"], expected["usage"]);
        let v2 = br#"{"id":"r1","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"call f",
            "tool_calls":[{"id":"f_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            "usage":{"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":11,"output_tokens":4}}}"#;
        let out = parse(&convert_response(v2, "command-r").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["id"], "f_1");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15})
        );
        let good = parse(
            &convert_response(
                include_bytes!("../fixtures/cohere_responses_good.json"),
                "command",
            )
            .unwrap(),
        );
        assert_eq!(
            good["choices"][0]["message"]["content"],
            "The sum of 1 + 1 is 2."
        );
        assert_eq!(good["id"], "3fa85f64-5717-4562-b3fc-2c963f66afa6");
        let err = convert_response(
            include_bytes!("../fixtures/cohere_responses_bad_upstream_response.json"),
            "c",
        )
        .unwrap_err();
        assert_eq!(err.status, 502);
        for (c, o) in [
            ("COMPLETE", "stop"),
            ("MAX_TOKENS", "length"),
            ("TOOL_CALL", "tool_calls"),
            ("STOP_SEQUENCE", "stop"),
        ] {
            assert_eq!(map_finish_reason(c), o);
        }
    }

    #[test]
    fn cohere_errors_map_to_the_openai_envelope() {
        let env = map_error(
            include_bytes!("../fixtures/cohere_responses_unauthorized.json"),
            StatusCode::UNAUTHORIZED,
        )
        .unwrap();
        assert_eq!(env.error.message, "invalid api token");
        assert_eq!(env.error.kind, "authentication_error");
        let env = map_error(
            include_bytes!("../fixtures/cohere_responses_bad_request.json"),
            StatusCode::BAD_REQUEST,
        )
        .unwrap();
        assert_eq!(env.error.kind, "invalid_request_error");
    }

    #[test]
    fn a_v2_stream_with_a_tool_call_becomes_openai_chunks() {
        let stream = concat!(
            "event: message-start\ndata: {\"id\":\"m1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
            "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n",
            "event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"f_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}}}}\n\n",
            "event: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}}}}\n\n",
            "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"tokens\":{\"input_tokens\":3,\"output_tokens\":2}}}}\n\n",
        );
        let mut dec = SseDecoder::default();
        let mut events = Vec::new();
        dec.feed(stream.as_bytes(), &mut events);
        let mut st = StreamState::new(Chunks::new("command-r", true));
        let mut out = Vec::new();
        for e in &events {
            st.on_event(e, &mut out);
        }
        assert!(st.chunks.done);
        let frames: Vec<Value> = out[..out.len() - 1]
            .iter()
            .map(|b| parse(b.strip_prefix(b"data: ").unwrap().trim_ascii_end()))
            .collect();
        assert_eq!(frames[0]["id"], "m1");
        assert_eq!(frames[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            frames[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "f_1"
        );
        assert_eq!(
            frames[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(frames[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(frames[5]["usage"]["total_tokens"], 5);
        let mut st = StreamState::new(Chunks::new("c", false));
        let mut out = Vec::new();
        st.on_event(
            &SseEvent {
                event: None,
                data: include_str!("../fixtures/cohere_stream_frame.txt")
                    .trim()
                    .into(),
            },
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out[1]).contains("the answer"));
    }
}
