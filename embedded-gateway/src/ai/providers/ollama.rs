//! Owns the Ollama wire format (`POST /api/chat`), spoken by the `ollama` provider and by
//! `mistral`/`llama2` with `…_format: ollama`: OpenAI requests to Ollama bodies (options,
//! tools, base64 images), responses and JSON-lines streams back to OpenAI, and errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::common::{
    ImageSource, Tuning, bad_upstream, call_arguments, encode, error_type_for, image_source,
    messages, text_of, tool_names, tuning, unsupported,
};
use super::kind::ProviderKind;
use crate::ai::AiError;
use crate::ai::chunks::{Chunks, Completion, new_id};
use crate::ai::config::ModelOptions;
use crate::ai::sse::SseEvent;
use crate::ai::types::{ErrorEnvelope, FunctionCall, ToolCall, Usage};

pub const CHAT_PATH: &str = "/api/chat";

/// OpenAI chat request → Ollama `/api/chat` body.
pub fn build_request(
    kind: ProviderKind,
    req: Map<String, Value>,
    model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    let msgs = messages(&req);
    let names = tool_names(&msgs);
    let converted = msgs
        .iter()
        .map(|m| convert_message(kind, m, &names))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(converted));
    out.insert("stream".into(), stream.into());
    let t = Tuning::of(&req, options);
    let mut opts = Map::new();
    for (key, value) in [
        ("num_predict", t.max_tokens),
        ("temperature", t.temperature),
        ("top_p", t.top_p),
        ("top_k", t.top_k),
        ("stop", t.stop.map(Value::Array)),
        ("seed", tuning(&req, "seed").cloned()),
    ] {
        if let Some(v) = value {
            opts.insert(key.into(), v);
        }
    }
    if !opts.is_empty() {
        out.insert("options".into(), Value::Object(opts));
    }
    if let Some(tools) = tuning(&req, "tools") {
        out.insert("tools".into(), tools.clone());
    }
    if let Some(Value::Object(f)) = tuning(&req, "response_format")
        && f.get("type").and_then(Value::as_str) == Some("json_object")
    {
        out.insert("format".into(), "json".into());
    }
    encode(&Value::Object(out), "ollama")
}

fn convert_message(
    kind: ProviderKind,
    m: &Value,
    names: &std::collections::HashMap<String, String>,
) -> Result<Value, AiError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    let role = if role == "developer" { "system" } else { role };
    let content = m.get("content").unwrap_or(&Value::Null);
    let mut out = json!({"role": role, "content": text_of(content)});
    if let Value::Array(parts) = content {
        let mut images = Vec::new();
        for p in parts {
            match image_source(p) {
                Some(ImageSource::Data { data, .. }) => images.push(Value::from(data)),
                Some(ImageSource::Url(_)) => {
                    return Err(unsupported(
                        kind,
                        "image URLs (send images as base64 data URLs)",
                    ));
                }
                None => {}
            }
        }
        if !images.is_empty() {
            out["images"] = Value::Array(images);
        }
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| {
                json!({"function": {"name": c.pointer("/function/name").cloned().unwrap_or_default(),
                                   "arguments": call_arguments(c)}})
            })
            .collect();
        out["tool_calls"] = Value::Array(calls);
    }
    if role == "tool"
        && let Some(name) = m
            .get("tool_call_id")
            .and_then(Value::as_str)
            .and_then(|id| names.get(id))
    {
        out["tool_name"] = Value::from(name.as_str());
    }
    Ok(out)
}

fn finish_reason(v: &Value) -> String {
    match v.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length".into(),
        _ if has_calls(v) => "tool_calls".into(),
        _ => "stop".into(),
    }
}

fn has_calls(v: &Value) -> bool {
    v.pointer("/message/tool_calls")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn usage_of(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    match (n("prompt_eval_count"), n("eval_count")) {
        (None, None) => None,
        (p, c) => Some(Usage::new(p.unwrap_or(0), c.unwrap_or(0))),
    }
}

fn calls_of(v: &Value) -> Vec<ToolCall> {
    v.pointer("/message/tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: new_id("call_"),
            kind: "function".into(),
            function: FunctionCall {
                name: c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: c
                    .pointer("/function/arguments")
                    .map(|a| match a {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| "{}".into()),
            },
        })
        .collect()
}

/// Ollama `/api/chat` response → `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad_upstream("ollama", "response is not JSON"))?;
    let message = v
        .get("message")
        .ok_or_else(|| bad_upstream("ollama", "'message' not in ollama://llm/v1/chat response"))?;
    Ok(Completion {
        id: None,
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(model)
            .to_owned(),
        text: text_of(message.get("content").unwrap_or(&Value::Null)),
        calls: calls_of(&v),
        finish_reason: Some(finish_reason(&v)),
        usage: usage_of(&v),
    }
    .into_bytes())
}

/// `{"error": "…"}` → OpenAI envelope.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v.get("error")?.as_str()?;
    Some(ErrorEnvelope::new(message, error_type_for(status), None))
}

/// Splits newline-delimited JSON (Ollama, `application/x-ndjson`) into one event per line.
#[derive(Debug, Default)]
pub struct JsonLinesDecoder {
    buf: Vec<u8>,
}

impl JsonLinesDecoder {
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        while let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=p).collect();
            push_line(&line, out);
        }
    }

    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.buf);
        push_line(&line, out);
    }
}

fn push_line(line: &[u8], out: &mut Vec<SseEvent>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if !text.is_empty() {
        out.push(SseEvent {
            event: None,
            data: text.to_owned(),
        });
    }
}

/// Per-response state for Ollama stream translation.
#[derive(Debug)]
pub struct StreamState {
    pub chunks: Chunks,
}

impl StreamState {
    pub fn new(chunks: Chunks) -> Self {
        Self { chunks }
    }

    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        let Some(v) = self.chunks.json_event(ev, out) else {
            return;
        };
        self.chunks.start(out);
        if let Some(t) = v.pointer("/message/content").and_then(Value::as_str) {
            self.chunks.text(t, out);
        }
        for call in calls_of(&v) {
            let i = self.chunks.tool_start(&call.id, &call.function.name, out);
            self.chunks.tool_args(i, &call.function.arguments, out);
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            if let Some(u) = usage_of(&v) {
                self.chunks.usage = u;
            }
            if v.get("done_reason").and_then(Value::as_str) == Some("length") {
                self.chunks.finish_reason = Some("length".into());
            }
            self.chunks.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::config::{Llama2Format, Provider};
    use crate::ai::providers::test_support::{object, parse};

    fn kind() -> ProviderKind {
        ProviderKind::Ollama
    }

    #[test]
    fn request_matches_kongs_expected_llama2_ollama_request() {
        let req = object(parse(include_bytes!("../fixtures/unit_requests_chat.json")));
        let o = ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            llama2_format: Some(Llama2Format::Ollama),
            ..Default::default()
        };
        let k = ProviderKind::for_target(Provider::Llama2, &o);
        let body = k.build_request(req, "llama2", &o, false).unwrap();
        assert_eq!(
            parse(&body),
            parse(include_bytes!(
                "../fixtures/unit_expected-requests_llama2_ollama_chat.json"
            ))
        );
    }

    #[test]
    fn tools_images_and_tool_results_translate_to_ollama() {
        let req = object(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"q\":\"png\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "an image"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "stop": "END"}));
        let body =
            parse(&build_request(kind(), req, "llava", &ModelOptions::default(), true).unwrap());
        assert_eq!(body["messages"][0]["images"], json!(["iVBORw0K"]));
        assert_eq!(body["messages"][0]["content"], "what is this?");
        assert_eq!(
            body["messages"][1]["tool_calls"][0],
            json!({"function": {"name": "lookup", "arguments": {"q": "png"}}})
        );
        assert_eq!(body["messages"][2]["tool_name"], "lookup");
        assert_eq!(body["tools"][0]["function"]["name"], "lookup");
        assert_eq!(body["options"]["stop"], json!(["END"]));
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn an_image_url_that_is_not_data_is_a_clear_400() {
        let req = object(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}));
        let err = build_request(kind(), req, "llava", &ModelOptions::default(), false).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message
                .contains("ollama provider does not support image URLs"),
            "{}",
            err.message
        );
    }

    #[test]
    fn responses_map_content_usage_and_finish_reason() {
        let out = parse(
            &convert_response(
                include_bytes!("../fixtures/unit_real-responses_llama2_ollama_chat.json"),
                "llama2",
            )
            .unwrap(),
        );
        let expected = parse(include_bytes!(
            "../fixtures/unit_expected-responses_llama2_ollama_chat.json"
        ));
        assert_eq!(
            out["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
        assert_eq!(out["model"], "llama2");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 26, "completion_tokens": 100, "total_tokens": 126})
        );
        let calls = br#"{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":true}"#;
        let out = parse(&convert_response(calls, "m").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert!(
            convert_response(b"{\"x\":1}", "m")
                .unwrap_err()
                .message
                .contains("'message' not in")
        );
    }

    #[test]
    fn a_json_lines_stream_split_anywhere_becomes_openai_chunks() {
        let stream = concat!(
            "{\"model\":\"llama2\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
            "{\"model\":\"llama2\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n",
            "{\"model\":\"llama2\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":3,\"eval_count\":2}\n"
        )
        .as_bytes();
        for cut in 0..stream.len() {
            let mut dec = JsonLinesDecoder::default();
            let mut events = Vec::new();
            dec.feed(&stream[..cut], &mut events);
            dec.feed(&stream[cut..], &mut events);
            dec.finish(&mut events);
            let mut st = StreamState::new(Chunks::new("llama2", true));
            let mut out = Vec::new();
            for e in &events {
                st.on_event(e, &mut out);
            }
            assert!(st.chunks.done);
            let frames: Vec<Value> = out[..out.len() - 1]
                .iter()
                .map(|b| parse(b.strip_prefix(b"data: ").unwrap().trim_ascii_end()))
                .collect();
            let text: String = frames
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Hello");
            assert_eq!(
                frames[frames.len() - 2]["choices"][0]["finish_reason"],
                "length"
            );
            assert_eq!(frames.last().unwrap()["usage"]["total_tokens"], 5);
            assert_eq!(out.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        }
    }

    #[test]
    fn ollama_errors_map_to_the_openai_envelope() {
        let env = map_error(br#"{"error":"model 'x' not found"}"#, StatusCode::NOT_FOUND).unwrap();
        assert_eq!(env.error.message, "model 'x' not found");
        assert_eq!(env.error.kind, "not_found_error");
    }

    #[test]
    fn kongs_complete_json_lines_vector_splits_into_its_expected_events() {
        let input = include_bytes!("../fixtures/chunks_complete-json_input.bin");
        let expected: Vec<String> = serde_json::from_slice::<Vec<Value>>(include_bytes!(
            "../fixtures/chunks_complete-json_expected-output.json"
        ))
        .unwrap()
        .into_iter()
        .map(|e| e["data"].as_str().unwrap().to_owned())
        .collect();
        for cut in 0..input.len() {
            let mut d = JsonLinesDecoder::default();
            let mut out = Vec::new();
            d.feed(&input[..cut], &mut out);
            d.feed(&input[cut..], &mut out);
            d.finish(&mut out);
            let got: Vec<String> = out.into_iter().map(|e| e.data).collect();
            assert_eq!(got, expected, "split at {cut}");
        }
    }
}
