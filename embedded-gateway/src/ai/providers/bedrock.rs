//! Owns the AWS Bedrock provider: the Converse and ConverseStream APIs
//! (`/model/{model}/converse`, `/converse-stream` on `bedrock-runtime.{region}.amazonaws.com`),
//! SigV4 request signing (`aws-sigv4`) with configured or environment credentials, OpenAI
//! requests to Converse bodies (system, inferenceConfig, tools, toolUse/toolResult, images),
//! responses and AWS event-stream frames (`aws-smithy-eventstream`) back to OpenAI, and errors.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue as EsValue;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::common::{
    ImageSource, Tuning, bad_upstream, call_arguments, encode, error_type_for, image_source,
    is_system, messages, text_of, tuning, unsupported,
};
use super::kind::ProviderKind;
use crate::ai::AiError;
use crate::ai::aws::{AssumeRole, sign_request, signing_error};
use crate::ai::chunks::{Chunks, Completion};
use crate::ai::config::{Auth, ModelOptions};
use crate::ai::sse::SseEvent;
use crate::ai::types::{ErrorEnvelope, FunctionCall, ToolCall, Usage};

const KIND: ProviderKind = ProviderKind::Bedrock;

/// The configured region, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
fn region(o: &ModelOptions) -> Option<String> {
    o.bedrock
        .as_ref()
        .and_then(|b| b.aws_region.clone())
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
}

fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `upstream_url` or `base` (used as the base; the model path is added per request), else the
/// region's Bedrock runtime endpoint.
pub fn endpoint(o: &ModelOptions, base: Option<&str>) -> Result<url::Url, String> {
    let base = match o.upstream_url.as_deref().or(base) {
        Some(b) => b.to_owned(),
        None => {
            let r = region(o).ok_or(
                "the bedrock provider needs 'model.options.bedrock.aws_region' (or AWS_REGION)",
            )?;
            if !valid_region(&r) {
                return Err("'model.options.bedrock.aws_region' is not an AWS region name".into());
            }
            format!("https://bedrock-runtime.{r}.amazonaws.com")
        }
    };
    url::Url::parse(&base).map_err(|e| format!("invalid upstream URL: {e}"))
}

/// Every byte outside RFC 3986's unreserved set percent-encoded, so a model id (`…-v1:0`, an
/// ARN with `/`) is one path segment and cannot walk the path.
pub fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `…/model/{escaped model}/converse` or `/converse-stream`.
pub fn request_url(endpoint: &url::Url, model: &str, stream: bool) -> url::Url {
    let mut url = endpoint.clone();
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = format!(
        "{}/model/{}/{op}",
        endpoint.path().trim_end_matches('/'),
        escape(model)
    );
    url.set_path(&path);
    url
}

/// SigV4 for Bedrock: configured keys, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
/// `AWS_SESSION_TOKEN` read when the request is signed.
pub struct Signer {
    keys: Option<(String, String)>,
    region: Option<String>,
    /// `bedrock.aws_assume_role_arn`: sign with the role's temporary credentials.
    role: Option<AssumeRole>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("configured_keys", &self.keys.is_some())
            .field("region", &self.region)
            .field("role", &self.role)
            .finish()
    }
}

impl Signer {
    pub fn new(auth: &Auth, o: &ModelOptions) -> Self {
        let keys = match (&auth.aws_access_key_id, &auth.aws_secret_access_key) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone())),
            _ => None,
        };
        let region = region(o);
        let role = AssumeRole::from_options(o, region.as_deref());
        Self { keys, region, role }
    }

    /// The credentials to sign with: the assumed role's (cached), else the base ones.
    pub async fn resolve(&self, client: &reqwest::Client) -> Result<Credentials, AiError> {
        let base = self.credentials()?;
        match &self.role {
            Some(role) => role.credentials(client, &base).await,
            None => Ok(base),
        }
    }

    /// Configured keys, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`.
    pub fn credentials(&self) -> Result<Credentials, AiError> {
        if let Some((k, s)) = &self.keys {
            return Ok(Credentials::new(k, s, None, None, "gantry-config"));
        }
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) => Ok(Credentials::new(
                k,
                s,
                var("AWS_SESSION_TOKEN"),
                None,
                "env",
            )),
            _ => Err(signing_error(
                "no AWS credentials: set auth.aws_access_key_id and auth.aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )),
        }
    }

    /// Region for the signature: configured, else the one in the endpoint host, else us-east-1.
    fn region_for(&self, url: &url::Url) -> String {
        self.region.clone().unwrap_or_else(|| {
            url.host_str()
                .and_then(|h| h.strip_prefix("bedrock-runtime."))
                .and_then(|h| h.split('.').next())
                .unwrap_or("us-east-1")
                .to_owned()
        })
    }

    /// Adds `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token`) for `body` at now.
    pub fn sign(
        &self,
        req: &mut reqwest::Request,
        body: &[u8],
        creds: &Credentials,
    ) -> Result<(), AiError> {
        let region = self.region_for(req.url());
        sign_request(req, body, creds, &region, "bedrock", SystemTime::now())
    }
}

/// OpenAI chat request → Converse body.
pub fn build_request(
    req: Map<String, Value>,
    _model: &str,
    options: &ModelOptions,
    _stream: bool,
) -> Result<Vec<u8>, AiError> {
    let msgs = messages(&req);
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in &msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            r if is_system(r) => {
                system.push(json!({"text": text_of(content)}));
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(m, content)),
            "tool" | "function" => ("user", vec![tool_result(m, content)]),
            _ => ("user", content_blocks(content)?),
        };
        push_turn(&mut out, role, blocks);
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(out));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let t = Tuning::of(&req, options);
    let mut config = Map::new();
    for (key, value) in [
        ("maxTokens", t.max_tokens),
        ("temperature", t.temperature),
        ("topP", t.top_p),
        ("stopSequences", t.stop.map(Value::Array)),
    ] {
        if let Some(v) = value {
            config.insert(key.into(), v);
        }
    }
    if !config.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(config));
    }
    let mut extra = match tuning(&req, "additionalModelRequestFields") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    if let Some(k) = t.top_k {
        extra.entry("top_k").or_insert(k);
    }
    if !extra.is_empty() {
        body.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    // Bedrock-only fields a client may add to its OpenAI body pass through.
    for key in ["guardrailConfig", "promptVariables", "requestMetadata"] {
        if let Some(v) = tuning(&req, key) {
            body.insert(key.into(), v.clone());
        }
    }
    if let Some(tc) = tool_config(&req) {
        body.insert("toolConfig".into(), tc);
    }
    if let Some(latency) = options
        .bedrock
        .as_ref()
        .and_then(|b| b.performance_config_latency.clone())
    {
        body.insert("performanceConfig".into(), json!({"latency": latency}));
    }
    encode(&Value::Object(body), "bedrock")
}

/// Appends `blocks` to the last turn when it has the same role (Converse requires
/// alternating roles), else starts a new turn.
fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if let Some(last) = out.last_mut()
        && last["role"] == role
        && let Some(c) = last.get_mut("content").and_then(Value::as_array_mut)
    {
        c.extend(blocks);
        return;
    }
    out.push(json!({"role": role, "content": blocks}));
}

fn content_blocks(content: &Value) -> Result<Vec<Value>, AiError> {
    let Value::Array(parts) = content else {
        return Ok(vec![json!({"text": text_of(content)})]);
    };
    let mut out = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => out.push(json!({"text": p.get("text").cloned().unwrap_or_default()})),
            Some("image_url") => match image_source(p) {
                Some(ImageSource::Data { media_type, data }) => {
                    let format = media_type.strip_prefix("image/").unwrap_or(media_type);
                    let format = if format == "jpg" { "jpeg" } else { format };
                    out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
                }
                _ => {
                    return Err(unsupported(
                        KIND,
                        "image URLs (send images as base64 data URLs)",
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

fn assistant_blocks(m: &Value, content: &Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = text_of(content);
    if !text.is_empty() {
        blocks.push(json!({"text": text}));
    }
    for c in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        blocks.push(json!({"toolUse": {
            "toolUseId": c.get("id").cloned().unwrap_or_default(),
            "name": c.pointer("/function/name").cloned().unwrap_or_default(),
            "input": call_arguments(c),
        }}));
    }
    blocks
}

fn tool_result(m: &Value, content: &Value) -> Value {
    let text = text_of(content);
    let block = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => json!({"json": v}),
        _ => json!({"text": text}),
    };
    json!({"toolResult": {
        "toolUseId": m.get("tool_call_id").cloned().unwrap_or_default(),
        "content": [block],
        "status": "success",
    }})
}

fn tool_config(req: &Map<String, Value>) -> Option<Value> {
    let tools = tuning(req, "tools")?.as_array()?;
    let specs: Vec<Value> = tools
        .iter()
        .filter_map(|t| {
            let f = t.get("function")?;
            let schema = match f.get("parameters") {
                Some(Value::Object(p)) if !p.is_empty() => Value::Object(p.clone()),
                _ => json!({"type": "object", "properties": {}}),
            };
            let mut spec = json!({"name": f.get("name")?, "inputSchema": {"json": schema}});
            if let Some(d) = f.get("description") {
                spec["description"] = d.clone();
            }
            Some(json!({"toolSpec": spec}))
        })
        .collect();
    let mut tc = json!({"tools": specs});
    let choice = match tuning(req, "tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"tool": {"name": n}})),
        _ => None,
    };
    if let Some(c) = choice {
        tc["toolChoice"] = c;
    }
    Some(tc)
}

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn map_finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn usage_of(u: &Value) -> Option<Usage> {
    let n = |a: &str, b: &str| u.get(a).or_else(|| u.get(b)).and_then(Value::as_u64);
    let prompt = n("inputTokens", "prompt_tokens")?;
    let completion = n("outputTokens", "completion_tokens")?;
    let mut usage = Usage::new(prompt, completion);
    if let Some(t) = n("totalTokens", "total_tokens") {
        usage.total_tokens = t;
    }
    Some(usage)
}

/// Converse response → `chat.completion`.
pub fn convert_response(body: &[u8], model: &str) -> Result<Bytes, AiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| bad_upstream("bedrock", "response is not JSON"))?;
    let blocks = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad_upstream(
                "bedrock",
                "'output.message' not in bedrock://llm/v1/chat response",
            )
        })?;
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push(t);
        }
        if let Some(u) = b.get("toolUse") {
            calls.push(ToolCall {
                id: u
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: u
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arguments: u
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
            });
        }
    }
    Ok(Completion {
        id: None,
        model: model.to_owned(),
        text: text.join("\n"),
        calls,
        finish_reason: v
            .get("stopReason")
            .and_then(Value::as_str)
            .map(|r| map_finish_reason(r).to_owned()),
        usage: v.get("usage").and_then(usage_of),
    }
    .into_bytes())
}

/// `{"message": "…"}` (AWS JSON errors; also `Message`) → OpenAI envelope.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v.get("message").or_else(|| v.get("Message"))?.as_str()?;
    let code = match status.as_u16() {
        429 => "ThrottlingException",
        403 => "AccessDeniedException",
        400 => "ValidationException",
        404 => "ResourceNotFoundException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    Some(ErrorEnvelope::new(
        message,
        error_type_for(status),
        Some(code),
    ))
}

/// Decodes `application/vnd.amazon.eventstream` frames split anywhere across reads. Each
/// message becomes an event named by `:event-type` (or `exception:<type>` for exceptions)
/// with the payload as data.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    broken: bool,
}

impl EventStreamDecoder {
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.frames.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => {
                    let header = |name: &str| {
                        m.headers()
                            .iter()
                            .find(|h| h.name().as_str() == name)
                            .and_then(|h| match h.value() {
                                EsValue::String(s) => Some(s.as_str().to_owned()),
                                _ => None,
                            })
                    };
                    let event = match header(":message-type").as_deref() {
                        Some("exception") | Some("error") => format!(
                            "exception:{}",
                            header(":exception-type")
                                .or_else(|| header(":error-code"))
                                .unwrap_or_default()
                        ),
                        _ => header(":event-type").unwrap_or_default(),
                    };
                    out.push(SseEvent {
                        event: Some(event),
                        data: String::from_utf8_lossy(m.payload()).into_owned(),
                    });
                }
                Ok(DecodedFrame::Incomplete) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "invalid AWS event-stream frame");
                    self.broken = true;
                    out.push(SseEvent {
                        event: Some("exception:invalidFrame".into()),
                        data: "{\"message\":\"the bedrock provider sent an invalid event-stream frame\"}".into(),
                    });
                    return;
                }
            }
        }
    }

    pub fn finish(&mut self, _out: &mut Vec<SseEvent>) {}
}

/// Per-response state for ConverseStream translation.
#[derive(Debug)]
pub struct StreamState {
    pub chunks: Chunks,
    /// Converse content-block index → OpenAI tool-call index.
    tool_blocks: Vec<(u64, u32)>,
}

impl StreamState {
    pub fn new(chunks: Chunks) -> Self {
        Self {
            chunks,
            tool_blocks: Vec::new(),
        }
    }

    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.chunks.done {
            return;
        }
        let kind = ev.event.as_deref().unwrap_or("");
        let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        if let Some(exception) = kind.strip_prefix("exception:") {
            let message = v
                .get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("the bedrock provider reported a stream error");
            let env = ErrorEnvelope::new(message, "api_error", Some(exception));
            self.chunks.error(&env, out);
            return;
        }
        let block = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match kind {
            "messageStart" => self.chunks.start(out),
            "contentBlockStart" => {
                if let Some(u) = v.pointer("/start/toolUse") {
                    let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("");
                    let name = u.get("name").and_then(Value::as_str).unwrap_or("");
                    let index = self.chunks.tool_start(id, name, out);
                    self.tool_blocks.push((block, index));
                }
            }
            "contentBlockDelta" => {
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    self.chunks.text(t, out);
                } else if let Some(args) = v.pointer("/delta/toolUse/input").and_then(Value::as_str)
                    && let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block)
                    && !args.is_empty()
                {
                    self.chunks.tool_args(index, args, out);
                }
            }
            "messageStop" => {
                let reason = v
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                self.chunks.finish_reason = Some(map_finish_reason(reason).to_owned());
            }
            "metadata" => {
                if let Some(u) = v.get("usage").and_then(usage_of) {
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
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, Message};
    use base64::Engine;
    use http::HeaderValue;

    fn decode(parts: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = EventStreamDecoder::default();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut out);
        }
        out
    }

    fn translate(events: &[SseEvent], include_usage: bool) -> (Vec<Value>, bool) {
        let mut st = StreamState::new(Chunks::new("claude", include_usage));
        let mut out = Vec::new();
        for e in events {
            st.on_event(e, &mut out);
        }
        let frames = out
            .iter()
            .filter(|b| b.as_ref() != b"data: [DONE]\n\n")
            .map(|b| parse(b.strip_prefix(b"data: ").unwrap().trim_ascii_end()))
            .collect();
        (frames, st.chunks.done)
    }

    #[test]
    fn request_matches_kongs_expected_bedrock_request() {
        let req = object(parse(include_bytes!("../fixtures/unit_requests_chat.json")));
        let o = ModelOptions {
            max_tokens: Some(8192),
            temperature: Some(0.8),
            top_p: Some(0.6),
            ..Default::default()
        };
        let got = parse(&build_request(req, "m", &o, false).unwrap());
        let mut expected = parse(include_bytes!(
            "../fixtures/unit_expected-requests_bedrock_chat.json"
        ));
        // Kong also sends Anthropic's `anthropic_version`, which Converse does not take.
        expected
            .as_object_mut()
            .unwrap()
            .remove("anthropic_version");
        assert_eq!(got, expected);
    }

    #[test]
    fn tools_tool_use_tool_results_and_images_translate_to_converse() {
        let req = object(json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is 2+3?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "tooluse_1", "type": "function",
                "function": {"name": "add", "arguments": "{\"a\":2,\"b\":3}"}}]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "{\"sum\":5}"},
            {"role": "user", "content": "thanks"}],
            "tools": [{"type": "function", "function": {"name": "add", "description": "adds",
                "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "add"}}, "stop": ["END"], "top_k": 5}));
        let b = parse(&build_request(req, "m", &ModelOptions::default(), false).unwrap());
        assert_eq!(b["system"], json!([{"text": "be brief"}]));
        assert_eq!(
            b["messages"][0]["content"][1],
            json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}})
        );
        assert_eq!(
            b["messages"][1]["content"][0]["toolUse"],
            json!({"toolUseId": "tooluse_1", "name": "add", "input": {"a": 2, "b": 3}})
        );
        // The tool result and the next user text share one user turn.
        assert_eq!(b["messages"][2]["role"], "user");
        assert_eq!(
            b["messages"][2]["content"][0]["toolResult"]["content"],
            json!([{"json": {"sum": 5}}])
        );
        assert_eq!(b["messages"][2]["content"][1], json!({"text": "thanks"}));
        assert_eq!(b["messages"].as_array().unwrap().len(), 3);
        assert_eq!(
            b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]["a"]["type"],
            "number"
        );
        assert_eq!(
            b["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "add"}})
        );
        assert_eq!(b["inferenceConfig"]["stopSequences"], json!(["END"]));
        assert_eq!(b["additionalModelRequestFields"], json!({"top_k": 5}));
        let req = object(json!({"messages": [{"role": "user", "content": "hi"}],
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
            "additionalModelRequestFields": {"reasoning_config": {"type": "enabled"}}}));
        let b = parse(&build_request(req, "m", &ModelOptions::default(), false).unwrap());
        assert_eq!(b["guardrailConfig"]["guardrailIdentifier"], "g1");
        assert_eq!(
            b["additionalModelRequestFields"]["reasoning_config"]["type"],
            "enabled"
        );
    }

    #[test]
    fn an_image_url_is_a_clear_400_naming_bedrock() {
        let req = object(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}));
        let err = build_request(req, "m", &ModelOptions::default(), false).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message
                .starts_with("the bedrock provider does not support image URLs")
        );
    }

    #[test]
    fn model_ids_are_escaped_into_one_path_segment() {
        let base = url::Url::parse("https://bedrock-runtime.eu-west-1.amazonaws.com").unwrap();
        let url = request_url(&base, "anthropic.claude-3-haiku-20240307-v1:0", true);
        assert_eq!(
            url.as_str(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        let url = request_url(&base, "../../admin", false);
        assert_eq!(url.path(), "/model/..%2F..%2Fadmin/converse");
    }

    #[test]
    fn the_endpoint_comes_from_the_configured_region() {
        let o: ModelOptions =
            serde_json::from_value(json!({"bedrock": {"aws_region": "us-west-2"}})).unwrap();
        assert_eq!(
            endpoint(&o, None).unwrap().as_str(),
            "https://bedrock-runtime.us-west-2.amazonaws.com/"
        );
        let bad: ModelOptions =
            serde_json::from_value(json!({"bedrock": {"aws_region": "evil.com/x"}})).unwrap();
        assert!(endpoint(&bad, None).is_err());
    }

    #[test]
    fn requests_are_sigv4_signed_with_the_configured_keys() {
        let auth = Auth {
            aws_access_key_id: Some("AKIDEXAMPLE".into()),
            aws_secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            ..Default::default()
        };
        let o: ModelOptions =
            serde_json::from_value(json!({"bedrock": {"aws_region": "us-east-1"}})).unwrap();
        let signer = Signer::new(&auth, &o);
        let creds = signer.credentials().unwrap();
        let url = request_url(&endpoint(&o, None).unwrap(), "m:0", false);
        let region = signer.region_for(&url);
        let mut req = reqwest::Request::new(reqwest::Method::POST, url);
        req.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        sign_request(&mut req, b"{}", &creds, &region, "bedrock", time).unwrap();
        let authz = req.headers()["authorization"].to_str().unwrap();
        assert!(authz.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders="), "{authz}");
        assert!(authz.contains("content-type;host;x-amz-date"), "{authz}");
        assert_eq!(req.headers()["x-amz-date"], "20231114T221320Z");
        assert!(!format!("{signer:?}").contains("wJalr"));
        let mut again = reqwest::Request::new(reqwest::Method::POST, req.url().clone());
        again
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        sign_request(&mut again, b"{}", &creds, &region, "bedrock", time).unwrap();
        assert_eq!(
            again.headers()["authorization"],
            req.headers()["authorization"]
        );
    }

    #[test]
    fn responses_map_text_usage_and_stop_reason() {
        let out = parse(
            &convert_response(
                include_bytes!("../fixtures/unit_real-responses_bedrock_chat.json"),
                "bedrock",
            )
            .unwrap(),
        );
        let expected = parse(include_bytes!(
            "../fixtures/unit_expected-responses_bedrock_chat.json"
        ));
        assert_eq!(
            out["choices"][0]["message"],
            expected["choices"][0]["message"]
        );
        assert_eq!(out["usage"], expected["usage"]);
        // Kong passes `end_turn` through; Gantry maps it.
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        let tool = br#"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"add","input":{"a":1}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}"#;
        let out = parse(&convert_response(tool, "m").unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["id"], "t1");
        assert_eq!(out["usage"]["total_tokens"], 7);
        for (r, f) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("stop_sequence", "stop"),
            ("guardrail_intervened", "content_filter"),
        ] {
            assert_eq!(map_finish_reason(r), f);
        }
        assert!(convert_response(b"{}", "m").is_err());
    }

    #[test]
    fn bedrock_errors_map_to_the_openai_envelope() {
        let env = map_error(
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .unwrap();
        assert_eq!(env.error.kind, "rate_limit_error");
        assert_eq!(env.error.code.as_deref(), Some("ThrottlingException"));
        assert!(env.error.message.starts_with("Too many requests"));
        let env = map_error(br#"{"Message":"bad"}"#, StatusCode::BAD_REQUEST).unwrap();
        assert_eq!(env.error.code.as_deref(), Some("ValidationException"));
    }

    #[test]
    fn kongs_aws_chunk_vector_decodes_to_its_expected_events_at_every_split() {
        let input = include_bytes!("../fixtures/aws_eventstream_input.bin");
        let expected: Vec<Value> = serde_json::from_slice::<Vec<Value>>(include_bytes!(
            "../fixtures/aws_eventstream_expected-output.json"
        ))
        .unwrap()
        .into_iter()
        .map(|e| parse(e["data"].as_str().unwrap().as_bytes()))
        .collect();
        let whole = decode(&[input]);
        assert_eq!(whole.len(), expected.len());
        for (got, want) in whole.iter().zip(&expected) {
            assert_eq!(
                got.event.as_deref(),
                want["headers"][":event-type"].as_str()
            );
            assert_eq!(
                parse(got.data.as_bytes()),
                parse(want["body"].as_str().unwrap().as_bytes())
            );
        }
        for cut in 0..input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode(&[a, b]), whole, "split at {cut}");
        }
        let (frames, done) = translate(&whole, true);
        assert!(done);
        let text: String = frames
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(text.starts_with("Hello! Relativity is a set of physical theories"));
        assert!(text.ends_with("space, time, and matter."));
        assert_eq!(
            frames[frames.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(
            frames.last().unwrap()["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 97, "total_tokens": 106})
        );
    }

    #[test]
    fn kongs_bedrock_tool_use_chunks_become_streamed_tool_calls() {
        let mut bytes = Vec::new();
        for text in [
            include_str!("../fixtures/bedrock_chunk-1.txt"),
            include_str!("../fixtures/bedrock_chunk-2.txt"),
            include_str!("../fixtures/bedrock_chunk-3.txt"),
        ] {
            bytes.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .unwrap(),
            );
        }
        let events = decode(&[&bytes]);
        let (frames, _) = translate(&events, false);
        let start = frames
            .iter()
            .find(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].is_string())
            .unwrap();
        assert_eq!(
            start["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "add"
        );
        assert_eq!(
            start["choices"][0]["delta"]["tool_calls"][0]["id"],
            "tooluse_UxbKWVKgTqe8cKjPPzopiQ"
        );
        let args: String = frames
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert!(serde_json::from_str::<Value>(&args).is_ok(), "{args}");
    }

    #[test]
    fn exceptions_in_the_stream_end_it_with_an_openai_error_event() {
        let m = Message::new(Bytes::from_static(br#"{"message":"Too many tokens"}"#))
            .add_header(Header::new(
                ":message-type",
                EsValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                EsValue::String("throttlingException".into()),
            ));
        let mut buf = Vec::new();
        write_message_to(&m, &mut buf).unwrap();
        let events = decode(&[&buf]);
        let (frames, done) = translate(&events, false);
        assert!(done);
        assert_eq!(frames[0]["error"]["code"], "throttlingException");
        assert_eq!(frames[0]["error"]["message"], "Too many tokens");
        let garbage = decode(&[&[0, 0, 0, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]]);
        assert_eq!(garbage[0].event.as_deref(), Some("exception:invalidFrame"));
    }
}
