//! Owns the Anthropic provider: OpenAI chat requests to the Messages API (all system messages
//! kept, default `max_tokens`, stop/temperature/top_p/top_k, tools both ways), Messages
//! responses and stream events back to `chat.completion`(`.chunk`), and error mapping.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use super::common::tuning;
use crate::ai::AiError;
use crate::ai::chunks::new_id;
use crate::ai::config::ModelOptions;
use crate::ai::sse::{DONE, SseEvent, encode_data};
use crate::ai::types::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, DeltaFunction, DeltaToolCall,
    ErrorEnvelope, FunctionCall, ResponseMessage, ToolCall, Usage, unix_now,
};

pub const DEFAULT_BASE: &str = "https://api.anthropic.com:443";
pub const CHAT_PATH: &str = "/v1/messages";
/// Anthropic requires `max_tokens`; this is used when neither client nor plugin sets one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub fn add_headers(options: &ModelOptions, headers: &mut HeaderMap) {
    if let Some(v) = options
        .anthropic_version
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("anthropic-version", v);
    }
}

/// OpenAI chat request → Messages API request.
pub fn build_request(
    req: Map<String, Value>,
    model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (system, messages) = convert_messages(&msgs)?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    let max_tokens = tuning(&req, "max_tokens")
        .or_else(|| tuning(&req, "max_completion_tokens"))
        .cloned()
        .or_else(|| options.max_tokens.map(Value::from))
        .unwrap_or_else(|| DEFAULT_MAX_TOKENS.into());
    out.insert("max_tokens".into(), max_tokens);
    let defaults = [
        ("temperature", options.temperature.map(Value::from)),
        ("top_p", options.top_p.map(Value::from)),
        ("top_k", options.top_k.map(Value::from)),
    ];
    for (key, default) in defaults {
        if let Some(v) = tuning(&req, key).cloned().or(default) {
            out.insert(key.into(), v);
        }
    }
    out.insert("stream".into(), Value::Bool(stream));
    match tuning(&req, "stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(Value::Array(tools)) = tuning(&req, "tools") {
        out.insert(
            "tools".into(),
            Value::Array(tools.iter().filter_map(convert_tool).collect()),
        );
    }
    if let Some(choice) = tuning(&req, "tool_choice").and_then(convert_tool_choice) {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(Value::String(user)) = tuning(&req, "user") {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    serde_json::to_vec(&out).map_err(|_| transform_error())
}

fn transform_error() -> AiError {
    AiError::bad_request(
        "invalid_request",
        "error transforming to anthropic://llm/v1/chat",
    )
}

/// Splits out system messages (all of them, in order) and converts the rest.
fn convert_messages(msgs: &[Value]) -> Result<(Vec<String>, Vec<Value>), AiError> {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "user" => out.push(json!({"role": "user", "content": convert_content(content)})),
            "assistant" => out.push(convert_assistant(m, content)),
            "tool" | "function" => push_tool_result(&mut out, m, content),
            _ => system.push(text_of(content)),
        }
    }
    Ok((system, out))
}

/// Plain text of a string or an array of `text` parts.
fn text_of(content: &Value) -> String {
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

fn convert_content(content: &Value) -> Value {
    match content {
        Value::Array(parts) => Value::Array(parts.iter().filter_map(convert_part).collect()),
        Value::Null => Value::String(String::new()),
        other => Value::String(text_of(other)),
    }
}

fn convert_part(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => Some(json!({"type": "text", "text": part.get("text")?})),
        "image_url" => {
            let url = part.get("image_url")?.get("url")?.as_str()?;
            let source = match url
                .strip_prefix("data:")
                .and_then(|r| r.split_once(";base64,"))
            {
                Some((media_type, data)) => {
                    json!({"type": "base64", "media_type": media_type, "data": data})
                }
                None => json!({"type": "url", "url": url}),
            };
            Some(json!({"type": "image", "source": source}))
        }
        _ => None,
    }
}

fn convert_assistant(m: &Value, content: &Value) -> Value {
    let Some(calls) = m.get("tool_calls").and_then(Value::as_array) else {
        return json!({"role": "assistant", "content": convert_content(content)});
    };
    let mut blocks = Vec::new();
    let text = text_of(content);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for c in calls {
        let f = c.get("function").unwrap_or(&Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        blocks.push(json!({
            "type": "tool_use",
            "id": c.get("id").cloned().unwrap_or_default(),
            "name": f.get("name").cloned().unwrap_or_default(),
            "input": input,
        }));
    }
    json!({"role": "assistant", "content": blocks})
}

/// A `role: tool` message becomes a `tool_result` block in a user turn; consecutive results
/// share one turn, as Anthropic requires alternating roles.
fn push_tool_result(out: &mut Vec<Value>, m: &Value, content: &Value) {
    let block = json!({
        "type": "tool_result",
        "tool_use_id": m.get("tool_call_id").cloned().unwrap_or_default(),
        "content": text_of(content),
    });
    if let Some(last) = out.last_mut()
        && last["role"] == "user"
        && let Some(blocks) = last.get_mut("content").and_then(Value::as_array_mut)
        && blocks.iter().all(|b| b["type"] == "tool_result")
    {
        blocks.push(block);
        return;
    }
    out.push(json!({"role": "user", "content": [block]}));
}

fn convert_tool(tool: &Value) -> Option<Value> {
    let f = tool.get("function")?;
    let mut t = Map::new();
    t.insert("name".into(), f.get("name")?.clone());
    if let Some(d) = f.get("description") {
        t.insert("description".into(), d.clone());
    }
    let schema = match f.get("parameters") {
        Some(Value::Object(p)) if !p.is_empty() => Value::Object(p.clone()),
        _ => json!({"type": "object", "properties": {}}),
    };
    t.insert("input_schema".into(), schema);
    Some(Value::Object(t))
}

fn convert_tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) => match s.as_str() {
            "required" => Some(json!({"type": "any"})),
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        Value::Object(o) => {
            let name = o.get("function")?.get("name")?;
            Some(json!({"type": "tool", "name": name}))
        }
        _ => None,
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn map_finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn usage_of(u: &Value) -> Option<Usage> {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let input = n("input_tokens")?
        + n("cache_creation_input_tokens").unwrap_or(0)
        + n("cache_read_input_tokens").unwrap_or(0);
    Some(Usage::new(input, n("output_tokens")?))
}

/// Messages API response → `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let failed = |why: &str| {
        AiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "bad_upstream_response",
            format!("transformation failed from type anthropic://llm/v1/chat: {why}"),
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| failed("response is not JSON"))?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| failed("'content' not in anthropic://llm/v1/chat response"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arguments: b
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
            }),
            _ => {}
        }
    }
    let completion = ChatCompletion {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| new_id("chatcmpl-")),
        object: "chat.completion".into(),
        created: unix_now(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(model)
            .to_owned(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(text),
                tool_calls: (!calls.is_empty()).then_some(calls),
            },
            logprobs: None,
            finish_reason: v
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(|r| map_finish_reason(r).to_owned()),
        }],
        usage: v.get("usage").and_then(usage_of),
        system_fingerprint: None,
    };
    Ok(serde_json::to_vec(&completion)
        .map_err(|_| failed("encoding"))?
        .into())
}

/// `{"type":"error","error":{"type","message"}}` (or without the outer `type`) → OpenAI envelope.
pub fn map_error(body: &[u8]) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let message = e.get("message")?.as_str()?;
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    Some(ErrorEnvelope::new(message, openai_type(kind), Some(kind)))
}

/// Anthropic error types → the nearest OpenAI error `type`.
fn openai_type(kind: &str) -> &'static str {
    match kind {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "rate_limit_error" => "rate_limit_error",
        "overloaded_error" => "server_error",
        _ => "api_error",
    }
}

/// Per-response state for Anthropic stream translation.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    finish_reason: Option<&'static str>,
    /// Anthropic content-block index → OpenAI tool-call index.
    tool_blocks: Vec<(u64, u32)>,
    pub done: bool,
}

impl StreamState {
    /// The tokens counted so far (Anthropic reports input at start, output at the end).
    pub fn usage(&self) -> Option<crate::ai::types::Usage> {
        (self.prompt_tokens + self.completion_tokens > 0)
            .then(|| crate::ai::types::Usage::new(self.prompt_tokens, self.completion_tokens))
    }

    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: new_id("chatcmpl-"),
            model: model.to_owned(),
            created: unix_now(),
            include_usage,
            prompt_tokens: 0,
            completion_tokens: 0,
            finish_reason: None,
            tool_blocks: Vec::new(),
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> Bytes {
        let c = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish_reason.map(str::to_owned),
            }],
            usage: None,
        };
        encode_data(&serde_json::to_vec(&c).unwrap_or_default())
    }

    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => self.message_start(&v, out),
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(map_finish_reason(r));
                }
                if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.completion_tokens = n;
                }
            }
            "message_stop" => self.finish(out),
            "error" => {
                let env = map_error(ev.data.as_bytes()).unwrap_or_else(|| {
                    ErrorEnvelope::new(
                        "the anthropic provider reported a stream error",
                        "api_error",
                        None,
                    )
                });
                out.push(encode_data(&serde_json::to_vec(&env).unwrap_or_default()));
                self.done = true;
            }
            _ => {}
        }
    }

    fn message_start(&mut self, v: &Value, out: &mut Vec<Bytes>) {
        if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
            self.id = id.to_owned();
        }
        if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
            self.model = m.to_owned();
        }
        if let Some(u) = v.pointer("/message/usage").and_then(usage_of) {
            self.prompt_tokens = u.prompt_tokens;
            self.completion_tokens = u.completion_tokens;
        }
        let delta = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        };
        out.push(self.chunk(delta, None));
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<Bytes>) {
        let block = v.get("content_block").unwrap_or(&Value::Null);
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            return;
        }
        let index = self.tool_blocks.len() as u32;
        let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        self.tool_blocks.push((block_index, index));
        let call = DeltaToolCall {
            index,
            id: block.get("id").and_then(Value::as_str).map(str::to_owned),
            kind: Some("function".into()),
            function: DeltaFunction {
                name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                arguments: Some(String::new()),
            },
        };
        out.push(self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            None,
        ));
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<Bytes>) {
        let d = v.get("delta").unwrap_or(&Value::Null);
        match d.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = d
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                out.push(self.chunk(
                    Delta {
                        content: Some(text),
                        ..Default::default()
                    },
                    None,
                ));
            }
            Some("input_json_delta") => {
                let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block_index)
                else {
                    return;
                };
                let call = DeltaToolCall {
                    index,
                    id: None,
                    kind: None,
                    function: DeltaFunction {
                        name: None,
                        arguments: d
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    },
                };
                out.push(self.chunk(
                    Delta {
                        tool_calls: Some(vec![call]),
                        ..Default::default()
                    },
                    None,
                ));
            }
            _ => {}
        }
    }

    /// The final chunk carries `finish_reason`; a usage chunk follows when asked; then `[DONE]`.
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        out.push(self.chunk(Delta::default(), Some(self.finish_reason.unwrap_or("stop"))));
        if self.include_usage {
            let c = ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                system_fingerprint: None,
                choices: Vec::new(),
                usage: Some(Usage::new(self.prompt_tokens, self.completion_tokens)),
            };
            out.push(encode_data(&serde_json::to_vec(&c).unwrap_or_default()));
        }
        out.push(Bytes::from_static(DONE));
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseDecoder;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn object(text: &str) -> Map<String, Value> {
        match parse(text) {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn options() -> ModelOptions {
        ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            anthropic_version: Some("2023-06-01".into()),
            ..Default::default()
        }
    }

    #[test]
    fn request_matches_kongs_expected_anthropic_request() {
        let req = object(include_str!("../fixtures/unit_requests_chat.json"));
        let body = build_request(req, "claude-2.1", &options(), false).unwrap();
        let expected = parse(include_str!(
            "../fixtures/unit_expected-requests_anthropic_chat.json"
        ));
        assert_eq!(parse(std::str::from_utf8(&body).unwrap()), expected);
    }

    #[test]
    fn every_system_message_is_kept_and_max_tokens_defaults() {
        let req = object(
            r#"{"messages":[{"role":"system","content":"A"},{"role":"developer","content":"B"},
            {"role":"user","content":"hi"}],"stop":"END","top_p":0.9,"top_k":5}"#,
        );
        let body: Value = serde_json::from_slice(
            &build_request(req, "claude", &ModelOptions::default(), true).unwrap(),
        )
        .unwrap();
        assert_eq!(body["system"], "A\n\nB");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["top_k"], 5);
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"], json!([{"role":"user","content":"hi"}]));
    }

    #[test]
    fn tool_choice_variants_map_to_anthropic() {
        let cases = [
            (json!("required"), json!({"type":"any"})),
            (json!("auto"), json!({"type":"auto"})),
            (json!("none"), json!({"type":"none"})),
            (
                parse(include_str!(
                    "../fixtures/openai_requests_tool_choice_object_function.json"
                ))["tool_choice"]
                    .clone(),
                json!({"type":"tool","name":"my_function"}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(convert_tool_choice(&input), Some(expected));
        }
    }

    #[test]
    fn tools_tool_calls_and_tool_results_translate_to_anthropic_blocks() {
        let req = object(
            r#"{"messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"d",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#,
        );
        let body: Value =
            serde_json::from_slice(&build_request(req, "c", &options(), false).unwrap()).unwrap();
        assert_eq!(
            body["messages"][1]["content"][0],
            json!({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"sunny"}]})
        );
        assert_eq!(body["tools"][0]["name"], "get_weather");
        assert_eq!(
            body["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
    }

    #[test]
    fn responses_map_to_chat_completion_with_mapped_finish_reason() {
        let cases = [
            (
                include_str!("../fixtures/unit_real-responses_anthropic_chat.json"),
                "stop",
            ),
            (
                include_str!("../fixtures/anthropic_responses_good.json"),
                "stop",
            ),
        ];
        for (text, finish) in cases {
            let out: Value = parse(
                std::str::from_utf8(&convert_response(text.as_bytes(), "claude-2.1").unwrap())
                    .unwrap(),
            );
            assert_eq!(out["object"], "chat.completion");
            assert_eq!(out["model"], "claude-2.1");
            assert_eq!(out["choices"][0]["finish_reason"], finish);
            assert_eq!(out["choices"][0]["message"]["role"], "assistant");
            assert!(out["id"].as_str().unwrap().len() > 8);
            assert!(out["created"].as_u64().unwrap() > 0);
            assert_eq!(out["usage"]["total_tokens"], 0);
        }
        let expected = parse(include_str!(
            "../fixtures/unit_expected-responses_anthropic_chat.json"
        ));
        let got = parse(
            std::str::from_utf8(
                &convert_response(
                    include_str!("../fixtures/unit_real-responses_anthropic_chat.json").as_bytes(),
                    "x",
                )
                .unwrap(),
            )
            .unwrap(),
        );
        assert_eq!(
            got["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
    }

    #[test]
    fn finish_reasons_map_to_openai_values() {
        for (a, o) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
        ] {
            assert_eq!(map_finish_reason(a), o);
        }
    }

    #[test]
    fn tool_use_responses_become_tool_calls() {
        let body = br#"{"id":"msg_1","model":"c","stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4},
            "content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]}"#;
        let out = parse(std::str::from_utf8(&convert_response(body, "c").unwrap()).unwrap());
        let call = &out["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_1");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(
            parse(call["function"]["arguments"].as_str().unwrap()),
            json!({"city":"Paris"})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})
        );
    }

    #[test]
    fn a_response_without_content_is_a_transformation_failure() {
        let err = convert_response(
            include_bytes!("../fixtures/anthropic_responses_bad_upstream_response.json"),
            "c",
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("'content' not in anthropic://llm/v1/chat response")
        );
        assert!(
            convert_response(
                include_bytes!("../fixtures/anthropic_responses_no_usage_response.json"),
                "c"
            )
            .is_ok()
        );
    }

    #[test]
    fn anthropic_errors_map_to_the_openai_envelope() {
        let env = map_error(include_bytes!(
            "../fixtures/anthropic_responses_unauthorized.json"
        ))
        .unwrap();
        assert_eq!(env.error.message, "Invalid API Key");
        assert_eq!(env.error.kind, "authentication_error");
        let env = map_error(include_bytes!(
            "../fixtures/anthropic_responses_bad_request.json"
        ))
        .unwrap();
        assert_eq!(env.error.kind, "invalid_request_error");
    }

    #[test]
    fn a_recorded_stream_becomes_openai_chunks_with_finish_reason_and_done() {
        let mut dec = SseDecoder::default();
        let mut events = Vec::new();
        dec.feed(
            include_bytes!("../fixtures/anthropic-stream.txt"),
            &mut events,
        );
        dec.finish(&mut events);
        let mut st = StreamState::new("claude", true);
        let mut out = Vec::new();
        for e in &events {
            st.on_event(e, &mut out);
        }
        assert!(st.done);
        let frames: Vec<String> = out
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| parse(f.strip_prefix("data: ").unwrap().trim_end()))
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello!");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(parse(&args), json!({"location":"Paris"}));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 15);
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
    }
}
