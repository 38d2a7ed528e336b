//! Owns the `llama2` provider's raw format (`llama2_format: raw`): OpenAI chat requests to
//! Hugging Face Text Generation Inference bodies (`inputs` in the Llama 2 chat template,
//! `parameters`), `/generate` responses and `/generate_stream` SSE tokens back to OpenAI.
//! `llama2_format: openai` is OpenAI passthrough and `ollama` is `ollama.rs`; all three need
//! `model.options.upstream_url`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::common::{Tuning, bad_upstream, encode, is_system, messages, text_of, unsupported};
use super::kind::ProviderKind;
use crate::ai::AiError;
use crate::ai::chunks::{Chunks, Completion};
use crate::ai::config::{Llama2Format, ModelOptions};
use crate::ai::sse::SseEvent;
use crate::ai::types::Usage;

pub const GENERATE_PATH: &str = "/generate";

const KIND: ProviderKind = ProviderKind::Llama2(Llama2Format::Raw);

/// Streaming uses TGI's `/generate_stream` when the endpoint is `/generate`.
pub fn request_url(endpoint: &url::Url, stream: bool) -> url::Url {
    let mut url = endpoint.clone();
    if stream && url.path().ends_with(GENERATE_PATH) {
        let path = format!("{}_stream", url.path());
        url.set_path(&path);
    }
    url
}

/// The Llama 2 chat template: `<s>[INST] <<SYS>> system <</SYS>> user [/INST] answer </s>…`.
pub fn prompt(msgs: &[Value]) -> Result<String, AiError> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Option<String>)> = Vec::new();
    for m in msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").unwrap_or(&Value::Null);
        if let Value::Array(parts) = content
            && parts
                .iter()
                .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
        {
            return Err(unsupported(KIND, "image content parts"));
        }
        if m.get("tool_calls").is_some() || role == "tool" {
            return Err(unsupported(KIND, "tool calls"));
        }
        let text = text_of(content);
        match role {
            r if is_system(r) => system.push(text),
            "assistant" => match turns.last_mut() {
                Some((_, answer @ None)) => *answer = Some(text),
                _ => turns.push((String::new(), Some(text))),
            },
            _ => turns.push((text, None)),
        }
    }
    let mut out = String::new();
    for (i, (user, answer)) in turns.iter().enumerate() {
        out.push_str("<s>[INST] ");
        if i == 0 && !system.is_empty() {
            out.push_str(&format!("<<SYS>> {} <</SYS>> ", system.join("\n")));
        }
        out.push_str(user);
        out.push_str(" [/INST]");
        if let Some(a) = answer {
            out.push_str(&format!(" {a} </s>"));
        }
    }
    Ok(out)
}

/// OpenAI chat request → TGI `{inputs, parameters}`.
pub fn build_request(
    req: Map<String, Value>,
    _model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    if req.get("tools").is_some_and(|t| !t.is_null()) {
        return Err(unsupported(KIND, "tools"));
    }
    let inputs = prompt(&messages(&req))?;
    let t = Tuning::of(&req, options);
    let mut params = Map::new();
    for (key, value) in [
        ("max_new_tokens", t.max_tokens),
        ("temperature", t.temperature),
        ("top_k", t.top_k),
        ("top_p", t.top_p),
        ("stop", t.stop.map(Value::Array)),
    ] {
        if let Some(v) = value {
            params.insert(key.into(), v);
        }
    }
    params.insert("stream".into(), stream.into());
    params.insert("details".into(), true.into());
    encode(&json!({"inputs": inputs, "parameters": params}), "llama2")
}

/// The generated text with an echoed prompt removed.
fn answer(generated: &str) -> String {
    match generated.rfind("[/INST]") {
        Some(p) => generated[p + "[/INST]".len()..].trim().to_owned(),
        None => generated.trim().to_owned(),
    }
}

fn finish_reason(details: Option<&Value>) -> String {
    match details
        .and_then(|d| d.get("finish_reason"))
        .and_then(Value::as_str)
    {
        Some("length") => "length".into(),
        _ => "stop".into(),
    }
}

/// TGI `{generated_text, details}` (also as a one-element array, or under `data`) →
/// `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad_upstream("llama2", "response is not JSON"))?;
    let item = match &v {
        Value::Array(a) => a.first(),
        Value::Object(o) => match o.get("data") {
            Some(Value::Array(a)) => a.first(),
            _ => Some(&v),
        },
        _ => None,
    };
    let item = item
        .filter(|i| i.get("generated_text").is_some())
        .ok_or_else(|| {
            bad_upstream(
                "llama2",
                "'generated_text' not in llama2://llm/v1/chat response",
            )
        })?;
    let text = answer(
        item.get("generated_text")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    let details = item.get("details");
    let usage = details
        .and_then(|d| d.get("generated_tokens"))
        .and_then(Value::as_u64)
        .map(|n| {
            let prompt = details
                .and_then(|d| d.get("prefill"))
                .and_then(Value::as_array)
                .map_or(0, |p| p.len() as u64);
            Usage::new(prompt, n)
        });
    Ok(Completion {
        id: None,
        model: model.to_owned(),
        text,
        calls: Vec::new(),
        finish_reason: Some(finish_reason(details)),
        usage,
    }
    .into_bytes())
}

/// Per-response state for TGI `/generate_stream` translation.
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
        let special = v.pointer("/token/special").and_then(Value::as_bool) == Some(true);
        if !special && let Some(t) = v.pointer("/token/text").and_then(Value::as_str) {
            self.chunks.text(t, out);
        }
        if v.get("generated_text").is_some_and(|g| !g.is_null()) {
            let details = v.get("details");
            if let Some(n) = details
                .and_then(|d| d.get("generated_tokens"))
                .and_then(Value::as_u64)
            {
                self.chunks.usage = Usage::new(0, n);
            }
            self.chunks.finish_reason = Some(finish_reason(details));
            self.chunks.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    fn request() -> Map<String, Value> {
        match parse(include_bytes!("../fixtures/unit_requests_chat.json")) {
            Value::Object(m) => m,
            _ => panic!(),
        }
    }

    #[test]
    fn request_parameters_match_kong_and_the_prompt_keeps_every_turn() {
        let o = ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            top_k: Some(40),
            top_p: Some(1.0),
            ..Default::default()
        };
        let body = parse(&build_request(request(), "llama2", &o, false).unwrap());
        let mut expected = parse(include_bytes!(
            "../fixtures/unit_expected-requests_llama2_raw_chat.json"
        ));
        // Kong's vector writes `top_p: 1`; Gantry sends the configured float, the same number.
        expected["parameters"]["top_p"] = json!(1.0);
        let mut params = body["parameters"].clone();
        params.as_object_mut().unwrap().remove("details");
        assert_eq!(params, expected["parameters"]);
        let inputs = body["inputs"].as_str().unwrap();
        assert!(inputs.starts_with(
            "<s>[INST] <<SYS>> You are a mathematician. <</SYS>> What is 1 + 2? [/INST] The sum of 1 + 2 is 3."
        ), "{inputs}");
        assert!(
            inputs.ends_with("<s>[INST] Why can't you divide by zero? [/INST]"),
            "{inputs}"
        );
        // Kong drops the assistant turns; Gantry keeps them.
        assert!(inputs.contains("If you multiply 3 by 2, the result is 6."));
    }

    #[test]
    fn tools_and_images_are_a_clear_400_naming_the_format() {
        let mut req = request();
        req.insert(
            "tools".into(),
            json!([{"type": "function", "function": {"name": "f"}}]),
        );
        let err = build_request(req, "m", &ModelOptions::default(), false).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(
            err.message,
            "the llama2 (llama2_format raw) provider does not support tools"
        );
        let req = match json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]})
        {
            Value::Object(m) => m,
            _ => panic!(),
        };
        let err = build_request(req, "m", &ModelOptions::default(), false).unwrap_err();
        assert!(err.message.contains("image content parts"));
    }

    #[test]
    fn responses_strip_the_echoed_prompt_like_kongs_expected_response() {
        let out = parse(
            &convert_response(
                include_bytes!("../fixtures/unit_real-responses_llama2_raw_chat.json"),
                "llama2",
            )
            .unwrap(),
        );
        let expected = parse(include_bytes!(
            "../fixtures/unit_expected-responses_llama2_raw_chat.json"
        ));
        assert_eq!(
            out["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        let kong_good = parse(
            &convert_response(
                include_bytes!("../fixtures/llama2_raw_responses_good.json"),
                "m",
            )
            .unwrap(),
        );
        assert_eq!(
            kong_good["choices"][0]["message"]["content"],
            "Is a well known font."
        );
        let tgi = br#"{"generated_text":"Paris.","details":{"finish_reason":"length","generated_tokens":2}}"#;
        let out = parse(&convert_response(tgi, "m").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["completion_tokens"], 2);
        assert!(convert_response(b"{\"error\":\"x\"}", "m").is_err());
    }

    #[test]
    fn tgi_errors_map_to_the_openai_envelope() {
        let kind = ProviderKind::Llama2(Llama2Format::Raw);
        let env = kind.map_error(
            http::StatusCode::UNAUTHORIZED,
            include_bytes!("../fixtures/llama2_raw_responses_unauthorized.json"),
        );
        assert_eq!(env.error.message, "Model requires a Pro subscription.");
        assert_eq!(env.error.kind, "authentication_error");
        let env = kind.map_error(
            http::StatusCode::BAD_REQUEST,
            include_bytes!("../fixtures/llama2_raw_responses_bad_request.json"),
        );
        assert_eq!(env.error.message, "some error");
        assert_eq!(env.error.kind, "invalid_request_error");
        let env = kind.map_error(http::StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(
            env.error.message,
            "the llama2 provider answered HTTP 502 (Bad Gateway)"
        );
    }

    #[test]
    fn streaming_switches_to_generate_stream_and_tokens_become_chunks() {
        let url = url::Url::parse("http://h:8080/generate").unwrap();
        assert_eq!(request_url(&url, true).path(), "/generate_stream");
        assert_eq!(request_url(&url, false).path(), "/generate");
        let mut st = StreamState::new(Chunks::new("m", false));
        let mut out = Vec::new();
        for data in [
            r#"{"token":{"id":1,"text":"Hi","special":false},"generated_text":null}"#,
            r#"{"token":{"id":2,"text":"</s>","special":true},"generated_text":"Hi","details":{"finish_reason":"eos_token","generated_tokens":2}}"#,
        ] {
            st.on_event(
                &SseEvent {
                    event: None,
                    data: data.into(),
                },
                &mut out,
            );
        }
        assert!(st.chunks.done);
        let text: String = out
            .iter()
            .filter_map(|b| {
                serde_json::from_slice::<Value>(b.strip_prefix(b"data: ")?.trim_ascii_end()).ok()
            })
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Hi");
    }
}
