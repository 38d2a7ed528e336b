//! Owns the Gemini provider: Google AI Studio (`/v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`) and Vertex AI (`/v1/projects/{p}/locations/{l}/publishers/
//! google/models/{model}:…` when `model.options.gemini` names them), OpenAI requests to
//! `contents`/`systemInstruction`/`generationConfig`/tools, responses and SSE chunks back to
//! OpenAI (finish reasons and `usageMetadata` mapped), and Google's error bodies.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::bedrock::escape;
use super::common::{
    ImageSource, Tuning, bad_upstream, call_arguments, encode, image_source, is_system, messages,
    text_of, tool_names, tuning,
};
use crate::ai::AiError;
use crate::ai::chunks::{Chunks, Completion, new_id};
use crate::ai::config::ModelOptions;
use crate::ai::sse::SseEvent;
use crate::ai::types::{ErrorEnvelope, FunctionCall, ToolCall, Usage};

pub const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";
const AI_STUDIO_PREFIX: &str = "/v1beta/models";

/// The Vertex path prefix when `gemini.{api_endpoint,project_id,location_id}` are all set.
fn vertex(o: &ModelOptions) -> Option<(String, String)> {
    let g = o.gemini.as_ref()?;
    let (endpoint, project, location) = (
        g.api_endpoint.as_ref()?,
        g.project_id.as_ref()?,
        g.location_id.as_ref()?,
    );
    Some((
        format!("https://{}", endpoint.trim_start_matches("https://")),
        format!(
            "/v1/projects/{}/locations/{}/publishers/google/models",
            escape(project),
            escape(location)
        ),
    ))
}

/// The models collection URL (`…/models`); the model and operation are added per request.
/// `upstream_url` (or an override base) replaces scheme, host and port; a path containing
/// `/models` is kept as the collection.
pub fn endpoint(o: &ModelOptions, base: Option<&str>) -> Result<url::Url, String> {
    let (default_base, prefix) = match vertex(o) {
        Some((b, p)) => (b, p),
        None => (DEFAULT_BASE.to_owned(), AI_STUDIO_PREFIX.to_owned()),
    };
    let mut url = match (&o.upstream_url, base) {
        // An explicit URL at Google's own hosts follows an override too (the simulator of
        // `quickstart --mock-llm`); any other URL is kept.
        (Some(u), Some(b)) if is_google(u) => super::reorigin(u, b)?,
        (Some(u), _) => url::Url::parse(u).map_err(|e| format!("invalid upstream URL: {e}"))?,
        (None, b) => url::Url::parse(b.unwrap_or(&default_base))
            .map_err(|e| format!("invalid upstream URL: {e}"))?,
    };
    if !url.path().contains("/models") {
        let path = format!("{}{prefix}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// True for URLs at Google's API hosts (`*.googleapis.com`).
fn is_google(u: &str) -> bool {
    url::Url::parse(u)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"))
        })
        .unwrap_or(false)
}

/// `…/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`.
pub fn request_url(endpoint: &url::Url, model: &str, stream: bool) -> url::Url {
    let mut url = endpoint.clone();
    let collection = match endpoint.path().find("/models") {
        Some(p) => &endpoint.path()[..p + "/models".len()],
        None => endpoint.path(),
    };
    let op = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    // `models/gemini-…` (the API's resource name) and `gemini-…` name the same model.
    let model = model.strip_prefix("models/").unwrap_or(model);
    let path = format!("{collection}/{}:{op}", escape(model));
    url.set_path(&path);
    if stream {
        url.query_pairs_mut().append_pair("alt", "sse");
    }
    url
}

/// OpenAI chat request → `generateContent` body.
pub fn build_request(
    req: Map<String, Value>,
    _model: &str,
    options: &ModelOptions,
    _stream: bool,
) -> Result<Vec<u8>, AiError> {
    let msgs = messages(&req);
    let names = tool_names(&msgs);
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for m in &msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, parts) = match role {
            r if is_system(r) => {
                system.push(json!({"text": text_of(content)}));
                continue;
            }
            "assistant" => ("model", assistant_parts(m, content)),
            "tool" | "function" => ("user", vec![function_response(m, content, &names)]),
            _ => ("user", content_parts(content)),
        };
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(p) = last.get_mut("parts").and_then(Value::as_array_mut) {
                    p.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let config = generation_config(&req, options);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = tools(&req) {
        body.insert("tools".into(), tools);
    }
    if let Some(tc) = tool_config(&req) {
        body.insert("toolConfig".into(), tc);
    }
    // Gemini-only fields a client may add to its OpenAI body pass through.
    for key in ["safetySettings", "cachedContent", "labels"] {
        if let Some(v) = tuning(&req, key) {
            body.insert(key.into(), v.clone());
        }
    }
    encode(&Value::Object(body), "gemini")
}

fn generation_config(req: &Map<String, Value>, options: &ModelOptions) -> Map<String, Value> {
    let t = Tuning::of(req, options);
    let mut c = Map::new();
    for (key, value) in [
        ("temperature", t.temperature),
        ("topK", t.top_k),
        ("topP", t.top_p),
        ("maxOutputTokens", t.max_tokens),
        ("stopSequences", t.stop.map(Value::Array)),
        ("candidateCount", tuning(req, "n").cloned()),
        ("seed", tuning(req, "seed").cloned()),
        ("presencePenalty", tuning(req, "presence_penalty").cloned()),
        (
            "frequencyPenalty",
            tuning(req, "frequency_penalty").cloned(),
        ),
    ] {
        if let Some(v) = value {
            c.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(f)) = tuning(req, "response_format") {
        match f.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                c.insert("responseMimeType".into(), "application/json".into());
            }
            Some("json_schema") => {
                c.insert("responseMimeType".into(), "application/json".into());
                if let Some(s) = f.get("json_schema").and_then(|j| j.get("schema")) {
                    c.insert("responseSchema".into(), clean_schema(s));
                }
            }
            _ => {}
        }
    }
    c
}

fn content_parts(content: &Value) -> Vec<Value> {
    let Value::Array(parts) = content else {
        return vec![json!({"text": text_of(content)})];
    };
    parts
        .iter()
        .filter_map(|p| match p.get("type").and_then(Value::as_str)? {
            "text" => Some(json!({"text": p.get("text")?})),
            "image_url" => Some(match image_source(p)? {
                ImageSource::Data { media_type, data } => {
                    json!({"inlineData": {"mimeType": media_type, "data": data}})
                }
                ImageSource::Url(url) => {
                    json!({"fileData": {"mimeType": mime_of(url), "fileUri": url}})
                }
            }),
            _ => None,
        })
        .collect()
}

/// An image MIME type from a URL's extension.
fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        _ => "image/jpeg",
    }
}

fn assistant_parts(m: &Value, content: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    let text = text_of(content);
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for c in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.push(json!({"functionCall": {
            "name": c.pointer("/function/name").cloned().unwrap_or_default(),
            "args": call_arguments(c),
        }}));
    }
    parts
}

/// A tool result as a `functionResponse` under the real function name (from the matching
/// assistant tool call, else the message's `name`).
fn function_response(
    m: &Value,
    content: &Value,
    names: &std::collections::HashMap<String, String>,
) -> Value {
    let name = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .and_then(|id| names.get(id))
        .map(String::as_str)
        .or_else(|| m.get("name").and_then(Value::as_str))
        .unwrap_or("tool");
    let text = text_of(content);
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    };
    json!({"functionResponse": {"name": name, "response": response}})
}

/// JSON Schema keywords Gemini's OpenAPI subset rejects, removed recursively.
fn clean_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "additionalProperties" | "$schema" | "strict")
                })
                .map(|(k, v)| (k.clone(), clean_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn tools(req: &Map<String, Value>) -> Option<Value> {
    let decls: Vec<Value> = tuning(req, "tools")?
        .as_array()?
        .iter()
        .filter_map(|t| {
            let f = t.get("function")?;
            let mut d = json!({"name": f.get("name")?});
            if let Some(desc) = f.get("description") {
                d["description"] = desc.clone();
            }
            if let Some(Value::Object(p)) = f.get("parameters")
                && !p.is_empty()
            {
                d["parameters"] = clean_schema(&Value::Object(p.clone()));
            }
            Some(d)
        })
        .collect();
    Some(json!([{"functionDeclarations": decls}]))
}

fn tool_config(req: &Map<String, Value>) -> Option<Value> {
    let mode = match tuning(req, "tool_choice")? {
        Value::String(s) => match s.as_str() {
            "required" => json!({"mode": "ANY"}),
            "none" => json!({"mode": "NONE"}),
            _ => json!({"mode": "AUTO"}),
        },
        Value::Object(o) => {
            let name = o.get("function")?.get("name")?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return None,
    };
    Some(json!({"functionCallingConfig": mode}))
}

/// Gemini `finishReason` → OpenAI `finish_reason`.
pub fn map_finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        "MALFORMED_FUNCTION_CALL" => "tool_calls",
        _ => "stop",
    }
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usageMetadata")?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut usage = Usage::new(
        n("promptTokenCount"),
        n("candidatesTokenCount") + n("thoughtsTokenCount"),
    );
    usage.total_tokens = usage.total_tokens.max(n("totalTokenCount"));
    Some(usage)
}

/// Text and function calls of the first candidate.
fn parts_of(v: &Value) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let parts = v
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array);
    for p in parts.into_iter().flatten() {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            calls.push(ToolCall {
                id: f
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| new_id("call_")),
                kind: "function".into(),
                function: FunctionCall {
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arguments: f
                        .get("args")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
            });
        }
    }
    (text, calls)
}

fn finish_of(v: &Value, has_calls: bool) -> Option<String> {
    if v.pointer("/promptFeedback/blockReason").is_some() {
        return Some("content_filter".into());
    }
    let reason = v
        .pointer("/candidates/0/finishReason")
        .and_then(Value::as_str)?;
    Some(match map_finish_reason(reason) {
        "stop" if has_calls => "tool_calls".into(),
        other => other.into(),
    })
}

/// `generateContent` response → `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad_upstream("gemini", "response is not JSON"))?;
    if v.get("candidates").is_none() && v.get("promptFeedback").is_none() {
        return Err(bad_upstream(
            "gemini",
            "'candidates' not in gemini://llm/v1/chat response",
        ));
    }
    let (text, calls) = parts_of(&v);
    let finish_reason = finish_of(&v, !calls.is_empty());
    Ok(Completion {
        id: v
            .get("responseId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        model: model.to_owned(),
        text,
        calls,
        finish_reason,
        usage: usage_of(&v),
    }
    .into_bytes())
}

/// `{"error":{"code","message","status"}}` (also inside a one-element array) → OpenAI envelope.
pub fn map_error(body: &[u8]) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let v = match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    };
    let e = v.get("error")?;
    let message = e.get("message")?.as_str()?;
    let status = e.get("status").and_then(Value::as_str);
    let kind = match status {
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("PERMISSION_DENIED") => "permission_error",
        Some("NOT_FOUND") => "not_found_error",
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            "invalid_request_error"
        }
        _ => "api_error",
    };
    Some(ErrorEnvelope::new(message, kind, status))
}

/// Splits a streamed JSON array (`[{…},\n{…}]`, Gemini without `alt=sse`) into one event
/// per top-level object, whatever the read boundaries, and `[DONE]` at the array's end; a
/// bare object stream works too.
#[derive(Debug, Default)]
pub struct JsonArrayDecoder {
    object: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonArrayDecoder {
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        for &b in chunk {
            if self.depth == 0 {
                if b == b'{' {
                    self.depth = 1;
                    self.object.clear();
                    self.object.push(b);
                } else if b == b']' {
                    // The array's end, reported like SSE's terminator (as Kong does).
                    out.push(SseEvent {
                        event: None,
                        data: "[DONE]".into(),
                    });
                }
                // `[`, `,` and whitespace between objects.
                continue;
            }
            self.object.push(b);
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        out.push(SseEvent {
                            event: None,
                            data: String::from_utf8_lossy(&self.object).into_owned(),
                        });
                        self.object.clear();
                    }
                }
                _ => {}
            }
        }
    }
}

/// Per-response state for `streamGenerateContent` translation.
#[derive(Debug)]
pub struct StreamState {
    pub chunks: Chunks,
    /// Every chunk uses the first `responseId` seen.
    id_seen: bool,
}

impl StreamState {
    pub fn new(chunks: Chunks) -> Self {
        Self {
            chunks,
            id_seen: false,
        }
    }

    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.chunks.done {
            return;
        }
        if ev.data == "[DONE]" {
            self.on_close(out);
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if v.get("error").is_some() {
            let env = map_error(ev.data.as_bytes()).unwrap_or_else(|| {
                ErrorEnvelope::new(
                    "the gemini provider reported a stream error",
                    "api_error",
                    None,
                )
            });
            self.chunks.error(&env, out);
            return;
        }
        if let Some(id) = v.get("responseId").and_then(Value::as_str)
            && !self.id_seen
        {
            self.chunks.id = id.to_owned();
            self.id_seen = true;
        }
        self.chunks.start(out);
        let (text, calls) = parts_of(&v);
        self.chunks.text(&text, out);
        for c in &calls {
            let i = self.chunks.tool_start(&c.id, &c.function.name, out);
            self.chunks.tool_args(i, &c.function.arguments, out);
        }
        // Each chunk carries the running totals: replace, never add.
        if let Some(u) = usage_of(&v) {
            self.chunks.usage = u;
        }
        // The stream ends when the upstream closes it (see `StreamTranslator::on_close`).
        if let Some(f) = finish_of(&v, self.chunks.tool_calls > 0) {
            self.chunks.finish_reason = Some(f);
        }
    }

    /// The end of the stream: finishes once a finish reason was seen (else the caller
    /// reports a truncated stream).
    pub fn on_close(&mut self, out: &mut Vec<Bytes>) {
        if !self.chunks.done && self.chunks.finish_reason.is_some() {
            self.chunks.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::config::GeminiOptions;
    use crate::ai::providers::test_support::{object, parse};
    use crate::ai::sse::SseDecoder;

    #[test]
    fn request_matches_kongs_expected_gemini_request() {
        let req = object(parse(include_bytes!("../fixtures/unit_requests_chat.json")));
        let o = ModelOptions {
            max_tokens: Some(8192),
            temperature: Some(0.8),
            top_p: Some(0.6),
            top_k: Some(1),
            ..Default::default()
        };
        let got = parse(&build_request(req, "gemini-pro", &o, false).unwrap());
        assert_eq!(
            got,
            parse(include_bytes!(
                "../fixtures/unit_expected-requests_gemini_chat.json"
            ))
        );
    }

    #[test]
    fn tools_calls_results_and_images_translate_with_the_real_function_name() {
        let req = object(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp?s=1"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                "parameters": {"type": "object", "additionalProperties": false,
                    "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required", "response_format": {"type": "json_object"}}));
        let b = parse(&build_request(req, "g", &ModelOptions::default(), false).unwrap());
        assert_eq!(
            b["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBO"}})
        );
        assert_eq!(
            b["contents"][0]["parts"][2]["fileData"]["mimeType"],
            "image/webp"
        );
        assert_eq!(
            b["contents"][1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]})
        );
        assert_eq!(
            b["contents"][2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"content": "sunny"}})
        );
        let decl = &b["tools"][0]["functionDeclarations"][0];
        assert_eq!(decl["name"], "get_weather");
        assert!(decl["parameters"].get("additionalProperties").is_none());
        assert_eq!(
            b["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
        assert_eq!(
            b["generationConfig"]["responseMimeType"],
            "application/json"
        );
        let req = object(json!({"messages": [{"role": "user", "content": "hi"}],
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}));
        let b = parse(&build_request(req, "g", &ModelOptions::default(), false).unwrap());
        assert_eq!(b["safetySettings"][0]["threshold"], "BLOCK_NONE");
    }

    #[test]
    fn ai_studio_and_vertex_urls_carry_model_and_operation() {
        let o = ModelOptions::default();
        let e = endpoint(&o, None).unwrap();
        assert_eq!(
            request_url(&e, "gemini-2.0-flash", false).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            request_url(&e, "gemini-2.0-flash", true).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        let v = ModelOptions {
            gemini: Some(GeminiOptions {
                api_endpoint: Some("us-central1-aiplatform.googleapis.com".into()),
                project_id: Some("my-proj".into()),
                location_id: Some("us-central1".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            request_url(&endpoint(&v, None).unwrap(), "gemini-1.5-pro", false).as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent"
        );
        assert_eq!(
            request_url(&e, "models/gemini-2.0-flash", false).path(),
            "/v1beta/models/gemini-2.0-flash:generateContent"
        );
        let over = endpoint(&o, Some("http://127.0.0.1:9/")).unwrap();
        assert_eq!(
            request_url(&over, "../x", false).path(),
            "/v1beta/models/..%2Fx:generateContent"
        );
    }

    #[test]
    fn responses_map_like_kongs_expected_response_and_finish_reasons_are_openai_values() {
        let out = parse(
            &convert_response(
                include_bytes!("../fixtures/unit_real-responses_gemini_chat.json"),
                "gemini-pro",
            )
            .unwrap(),
        );
        let expected = parse(include_bytes!(
            "../fixtures/unit_expected-responses_gemini_chat.json"
        ));
        assert_eq!(
            out["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
        assert_eq!(out["model"], expected["model"]);
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 14, "completion_tokens": 128, "total_tokens": 142})
        );
        let good = parse(
            &convert_response(
                include_bytes!("../fixtures/gemini_responses_good.json"),
                "g",
            )
            .unwrap(),
        );
        assert_eq!(
            good["choices"][0]["message"]["content"],
            "Everything is okay."
        );
        assert_eq!(good["usage"]["total_tokens"], 13);
        let blocked = parse(
            &convert_response(
                include_bytes!("../fixtures/gemini_responses_fails_safety.json"),
                "g",
            )
            .unwrap(),
        );
        assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
        for (g, o) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
        ] {
            assert_eq!(map_finish_reason(g), o);
        }
        let call = br#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},"finishReason":"STOP"}]}"#;
        let out = parse(&convert_response(call, "g").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert!(convert_response(b"{\"x\":1}", "g").is_err());
    }

    #[test]
    fn google_errors_map_to_the_openai_envelope() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        let env = map_error(body).unwrap();
        assert_eq!(env.error.kind, "rate_limit_error");
        assert_eq!(env.error.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        let env = map_error(br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#).unwrap();
        assert_eq!(env.error.kind, "invalid_request_error");
    }

    #[test]
    fn an_sse_stream_becomes_chunks_with_running_usage_not_summed() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"The capital\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":2,\"totalTokenCount\":9}}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" is Paris.\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":5,\"totalTokenCount\":12}}\r\n\r\n",
        );
        let mut dec = SseDecoder::default();
        let mut events = Vec::new();
        dec.feed(stream.as_bytes(), &mut events);
        let mut st =
            super::super::StreamTranslator::Gemini(StreamState::new(Chunks::new("gemini", true)));
        let mut out = Vec::new();
        for e in &events {
            st.on_event(e, &mut out);
        }
        assert!(
            !st.is_done(),
            "a Gemini stream ends when the upstream closes it"
        );
        st.on_close(&mut out);
        assert!(st.is_done());
        let frames: Vec<Value> = out[..out.len() - 1]
            .iter()
            .map(|b| parse(b.strip_prefix(b"data: ").unwrap().trim_ascii_end()))
            .collect();
        let text: String = frames
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "The capital is Paris.");
        assert_eq!(
            frames[frames.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(
            frames.last().unwrap()["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12})
        );
    }

    fn split_decode(parts: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = JsonArrayDecoder::default();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut out);
        }
        out
    }

    fn expected_events(text: &[u8]) -> Vec<String> {
        serde_json::from_slice::<Vec<Value>>(text)
            .unwrap()
            .into_iter()
            .map(|e| e["data"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn kongs_partial_json_array_vectors_split_into_their_expected_objects() {
        for (input, expected) in [
            (
                &include_bytes!("../fixtures/chunks_partial-json-beginning_input.bin")[..],
                &include_bytes!("../fixtures/chunks_partial-json-beginning_expected-output.json")[..],
            ),
            (
                include_bytes!("../fixtures/chunks_partial-json-end_input.bin"),
                include_bytes!("../fixtures/chunks_partial-json-end_expected-output.json"),
            ),
        ] {
            let want = expected_events(expected);
            let got: Vec<String> = split_decode(&[input]).into_iter().map(|e| e.data).collect();
            assert_eq!(got, want);
            for cut in (0..input.len()).step_by(7) {
                let (a, b) = input.split_at(cut);
                let got: Vec<String> = split_decode(&[a, b]).into_iter().map(|e| e.data).collect();
                assert_eq!(got, want, "split at {cut}");
            }
        }
    }

    #[test]
    fn kongs_split_json_array_streams_translate_to_the_full_text() {
        let cases: [(&[&[u8]], &[u8]); 2] = [
            (
                &[
                    include_bytes!("../fixtures/chunks_partial-json-split_input-1.bin"),
                    include_bytes!("../fixtures/chunks_partial-json-split_input-2.bin"),
                ],
                include_bytes!("../fixtures/chunks_partial-json-split_expected-output.bin"),
            ),
            (
                &[
                    include_bytes!("../fixtures/chunks_partial-json-split-three-parts_input-1.bin"),
                    include_bytes!("../fixtures/chunks_partial-json-split-three-parts_input-2.bin"),
                    include_bytes!("../fixtures/chunks_partial-json-split-three-parts_input-3.bin"),
                ],
                include_bytes!(
                    "../fixtures/chunks_partial-json-split-three-parts_expected-output.bin"
                ),
            ),
        ];
        for (parts, expected) in cases {
            let events = split_decode(parts);
            let mut st =
                super::super::StreamTranslator::Gemini(StreamState::new(Chunks::new("g", false)));
            let mut out = Vec::new();
            for e in &events {
                st.on_event(e, &mut out);
            }
            st.on_close(&mut out);
            assert!(st.is_done());
            let text: String = out
                .iter()
                .filter_map(|b| {
                    serde_json::from_slice::<Value>(b.strip_prefix(b"data: ")?.trim_ascii_end())
                        .ok()
                })
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            // Every chunk says STOP (older Gemini); none of the text may be lost.
            assert_eq!(text.as_bytes(), expected);
        }
    }
}
