//! Owns the mock's OpenAI Chat Completions endpoint: Bearer auth, `chat.completion` bodies and
//! `chat.completion.chunk` streams (with `stream_options.include_usage`), and OpenAI's error
//! bodies for faults.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answer::{Reply, pieces, reply, stable_id, text_of, tokens};
use super::{Fault, Plan, Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    json_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

pub async fn handle(s: &Shared, headers: &HeaderMap, body: Option<Value>) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if bearer.is_empty() {
        return error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
        );
    }
    let model = body
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if Plan::from(headers, model).fault == Some(Fault::EchoKey) {
        return echo_key(s, bearer, body.as_ref());
    }
    respond(s, headers, body).await
}

/// The `echo-key` fault: the received key comes back, masked like OpenAI's "Incorrect API key
/// provided: sk-abc***…xyz" in a 401, and whole in a header and (streaming) an error event.
fn echo_key(s: &Shared, key: &str, body: Option<&Value>) -> Response {
    let header = axum::http::HeaderValue::from_str(key)
        .unwrap_or(axum::http::HeaderValue::from_static("invalid"));
    let stream = body.and_then(|b| b.get("stream")).and_then(Value::as_bool) == Some(true);
    let mut r = if stream {
        let first = json!({"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        let err = json!({"error": {"message": format!("Incorrect API key provided: {key}."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        let events = vec![
            Bytes::from(format!("data: {first}\n\n")),
            Bytes::from(format!("data: {err}\n\n")),
        ];
        let plan = Plan {
            fault: None,
            first_byte_delay: std::time::Duration::ZERO,
            chunk_delay: std::time::Duration::ZERO,
        };
        sse_response(s, events, plan)
    } else {
        let chars: Vec<char> = key.chars().collect();
        let masked = if chars.len() > 12 {
            let head: String = chars[..6].iter().collect();
            let tail: String = chars[chars.len() - 3..].iter().collect();
            format!("{head}{}{tail}", "*".repeat(chars.len() - 9))
        } else {
            "*".repeat(chars.len())
        };
        error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    };
    r.headers_mut().insert("x-mock-echo-key", header);
    r
}

/// The Chat Completions answer once the caller is authenticated (Bearer here, `api-key` for
/// Azure's deployment paths).
pub async fn respond(s: &Shared, headers: &HeaderMap, body: Option<Value>) -> Response {
    let Some(body) = body.filter(Value::is_object) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    let Some(model) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    };
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
    };
    let plan = Plan::from(headers, &model);
    match plan.fault {
        Some(Fault::Slow) => tokio::time::sleep(plan.first_byte_delay).await,
        Some(Fault::RateLimited) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests. Please try again in 1s.",
                "requests",
                Some("rate_limit_exceeded"),
            );
            r.headers_mut().insert(
                "retry-after",
                "1".parse()
                    .unwrap_or(axum::http::HeaderValue::from_static("1")),
            );
            return r;
        }
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            );
        }
        _ => {}
    }
    let last = messages.last().cloned().unwrap_or_default();
    let last_role = last.get("role").and_then(Value::as_str).unwrap_or("user");
    let last_text = text_of(last.get("content").unwrap_or(&Value::Null));
    let first_tool = body
        .pointer("/tools/0/function/name")
        .and_then(Value::as_str);
    let answer = reply(last_role, &last_text, first_tool);
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| tokens(&text_of(m.get("content").unwrap_or(&Value::Null))))
        .sum();
    let id = format!("chatcmpl-mock{}", stable_id(&last_text));
    let created = crate::ai::types::unix_now();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let events = stream_events(&id, created, &model, &answer, prompt_tokens, include_usage);
        return sse_response(s, events, plan);
    }
    let (message, finish, completion_tokens) = match &answer {
        Reply::Text(t) => (
            json!({"role": "assistant", "content": t, "refusal": null}),
            "stop",
            tokens(t),
        ),
        Reply::ToolCall { name, arguments } => (
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                {"id": format!("call_{}", stable_id(arguments)), "type": "function", "function": {"name": name, "arguments": arguments}}
            ]}),
            "tool_calls",
            tokens(arguments),
        ),
    };
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": "fp_mock",
    });
    body_response(out, plan).into_response()
}

fn stream_events(
    id: &str,
    created: u64,
    model: &str,
    answer: &Reply,
    prompt_tokens: u64,
    include_usage: bool,
) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    let (finish, completion_tokens) = match answer {
        Reply::Text(t) => {
            for p in pieces(t) {
                events.push(chunk(json!({"content": p}), None));
            }
            ("stop", tokens(t))
        }
        Reply::ToolCall { name, arguments } => {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": format!("call_{}", stable_id(arguments)), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
                None,
            ));
            ("tool_calls", tokens(arguments))
        }
    };
    events.push(chunk(json!({}), Some(finish)));
    if include_usage {
        let u = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock", "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        });
        events.push(Bytes::from(format!("data: {u}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}
