//! Owns the OpenAI provider: Chat Completions passthrough with the model replaced, stream
//! passthrough (each upstream `data:` payload re-emitted as it arrives) and error mapping.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use super::common::fill_option_defaults;
use crate::ai::AiError;
use crate::ai::chat_body::{ChatBody, Field};
use crate::ai::config::ModelOptions;
use crate::ai::sse::{DONE, SseEvent, encode_data};
use crate::ai::types::ErrorEnvelope;

pub const DEFAULT_BASE: &str = "https://api.openai.com:443";
pub const CHAT_PATH: &str = "/v1/chat/completions";

/// The client's body with `model` set to the target's, `stream` explicit, and the plugin's
/// tuning defaults filled in where the client sent none.
pub fn build_request(
    mut req: Map<String, Value>,
    model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Result<Vec<u8>, AiError> {
    req.insert("model".into(), Value::String(model.to_owned()));
    req.insert("stream".into(), Value::Bool(stream));
    req.remove("top_k");
    fill_option_defaults(&mut req, options);
    serde_json::to_vec(&req).map_err(|e| {
        AiError::bad_request(
            "invalid_body",
            format!("the request could not be encoded: {e}"),
        )
    })
}

/// [`build_request`] without the tree: the same body, edited in place. `None` when the body
/// needs the full rebuild (see [`ChatBody::rewrite_openai`]).
pub fn rewrite_request(
    body: &ChatBody,
    model: &str,
    options: &ModelOptions,
    stream: bool,
) -> Option<Vec<u8>> {
    let mut defaults = Vec::new();
    if let Some(t) = options.max_tokens
        && !body.has(Field::MaxTokens)
        && !body.has(Field::MaxCompletionTokens)
    {
        defaults.push((Field::MaxTokens, "max_tokens", Value::from(t)));
    }
    if let Some(t) = options.temperature
        && !body.has(Field::Temperature)
    {
        defaults.push((Field::Temperature, "temperature", Value::from(t)));
    }
    if let Some(t) = options.top_p
        && !body.has(Field::TopP)
    {
        defaults.push((Field::TopP, "top_p", Value::from(t)));
    }
    body.rewrite_openai(model, stream, &defaults)
}

/// The streamed request with `stream_options.include_usage` set, the client's other
/// `stream_options` kept: OpenAI sends a stream's usage only when asked.
pub fn ask_stream_usage(body: Vec<u8>) -> Vec<u8> {
    let Ok(mut map) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return body;
    };
    let options = map
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    options["include_usage"] = Value::Bool(true);
    serde_json::to_vec(&map).unwrap_or(body)
}

/// A chunk that carries usage and no choices (the one `include_usage` adds).
fn usage_only(data: &str) -> bool {
    serde_json::from_str::<Value>(data)
        .is_ok_and(|v| v["choices"].as_array().is_some_and(Vec::is_empty))
}

/// OpenAI already answers in the canonical format; the body passes through unchanged once it
/// is known to be a chat completion.
pub fn convert_response(body: Bytes) -> Result<Bytes, AiError> {
    if memchr::memmem::find(&body, b"\"choices\"").is_some() {
        Ok(body)
    } else {
        Err(AiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "bad_upstream_response",
            "transformation failed from type openai://llm/v1/chat: 'choices' not in llm/v1/chat response",
        ))
    }
}

/// Keeps OpenAI's own `message`, `type` and `code`.
pub fn map_error(body: &[u8]) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let message = e.get("message")?.as_str()?;
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let code = match e.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut env = ErrorEnvelope::new(message, kind, None);
    env.error.code = code;
    Some(env)
}

/// Passthrough stream state: only tracks the end of the stream.
#[derive(Debug, Default)]
pub struct StreamState {
    pub done: bool,
    /// The usage chunk's figures, when the provider sent one.
    pub usage: Option<crate::ai::types::Usage>,
    /// The client did not ask for usage (`stream_options.include_usage`): a usage-only chunk
    /// (no choices) is read, not passed on.
    pub strip_usage: bool,
}

impl StreamState {
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        if ev.data == "[DONE]" {
            out.push(Bytes::from_static(DONE));
            self.done = true;
        } else {
            if let Some(u) = crate::ai::types::usage_in_chunk(&ev.data) {
                self.usage = Some(u);
                if self.strip_usage && usage_only(&ev.data) {
                    return;
                }
            }
            out.push(encode_data(ev.data.as_bytes()));
            if ev.data.starts_with("{\"error\"") {
                self.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "unit_requests" => include_str!("../fixtures/unit_requests_chat.json"),
            "unit_expected" => include_str!("../fixtures/unit_expected-requests_openai_chat.json"),
            _ => include_str!("../fixtures/openai_responses_unauthorized.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn request_matches_kongs_expected_openai_request() {
        let Value::Object(req) = fixture("unit_requests") else {
            panic!()
        };
        let options = ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            ..Default::default()
        };
        let body = build_request(req, "gpt-4", &options, false).unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, fixture("unit_expected"));
    }

    #[test]
    fn client_tuning_values_win_over_plugin_defaults() {
        let mut req = Map::new();
        req.insert("temperature".into(), 0.1.into());
        let options = ModelOptions {
            temperature: Some(0.9),
            ..Default::default()
        };
        let body = build_request(req, "m", &options, true).unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got["temperature"], 0.1);
        assert_eq!(got["stream"], true);
    }

    #[test]
    fn openai_errors_keep_message_type_and_code() {
        let body = serde_json::to_vec(&fixture("unauthorized")).unwrap();
        let env = map_error(&body).unwrap();
        assert_eq!(env.error.kind, "invalid_request_error");
        assert_eq!(env.error.code.as_deref(), Some("invalid_api_key"));
        assert!(env.error.message.starts_with("Incorrect API key provided"));
    }

    #[test]
    fn a_body_without_choices_is_a_transformation_failure() {
        let err = convert_response(Bytes::from_static(b"{\"id\":\"x\"}")).unwrap_err();
        assert!(
            err.message
                .contains("'choices' not in llm/v1/chat response")
        );
        assert!(convert_response(Bytes::from_static(b"{\"choices\":[]}")).is_ok());
    }
}
