//! Owns the helpers every provider translator shares: request tuning and option defaults, the
//! OpenAI message walk (roles, text, images, tool calls) and the errors translators return.

use http::StatusCode;
use serde_json::{Map, Value};

use super::kind::ProviderKind;
use crate::ai::AiError;
use crate::ai::config::ModelOptions;

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
