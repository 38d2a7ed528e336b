//! Owns the mock's Anthropic Messages endpoint: `x-api-key` + `anthropic-version` checks,
//! `message` bodies, the full named-event stream (`message_start` … `message_stop`), and
//! Anthropic's `{"type":"error","error":{…}}` bodies for faults.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::answer::{Reply, pieces, reply, stable_id, text_of, tokens};
use super::{Fault, Plan, Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
}

pub async fn handle(s: &Shared, headers: &HeaderMap, body: Option<Value>) -> Response {
    if header(headers, "x-api-key").is_empty() {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        );
    }
    if header(headers, "anthropic-version").is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let Some(body) = body.filter(Value::is_object) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The request body is not valid JSON.",
        );
    };
    let Some(model) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "model: Field required",
        );
    };
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    }
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: Field required",
        );
    };
    let plan = Plan::from(headers, &model);
    match plan.fault {
        Some(Fault::Slow) => tokio::time::sleep(plan.first_byte_delay).await,
        Some(Fault::RateLimited) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return r;
        }
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "Internal server error",
            );
        }
        _ => {}
    }
    let last = messages.last().cloned().unwrap_or_default();
    let content = last.get("content").unwrap_or(&Value::Null);
    let is_tool_result = content
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "tool_result"));
    let last_text = text_of(content);
    let first_tool = body.pointer("/tools/0/name").and_then(Value::as_str);
    let answer = if is_tool_result {
        reply("tool", &last_text, None)
    } else {
        reply("user", &last_text, first_tool)
    };
    let system_tokens = body.get("system").map(|s| tokens(&text_of(s))).unwrap_or(0);
    let input_tokens: u64 = system_tokens
        + messages
            .iter()
            .map(|m| tokens(&text_of(m.get("content").unwrap_or(&Value::Null))))
            .sum::<u64>();
    let id = format!("msg_mock{}", stable_id(&last_text));
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return sse_response(s, stream_events(&id, &model, &answer, input_tokens), plan);
    }
    let (blocks, stop, output_tokens) = match &answer {
        Reply::Text(t) => (json!([{"type": "text", "text": t}]), "end_turn", tokens(t)),
        Reply::ToolCall { name, arguments } => (
            json!([{"type": "tool_use", "id": format!("toolu_{}", stable_id(arguments)), "name": name,
                    "input": serde_json::from_str::<Value>(arguments).unwrap_or_default()}]),
            "tool_use",
            tokens(arguments),
        ),
    };
    let out = json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    });
    body_response(out, plan)
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream_events(id: &str, model: &str, answer: &Reply, input_tokens: u64) -> Vec<Bytes> {
    let mut ev = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    )];
    let (stop, output_tokens) = match answer {
        Reply::Text(t) => {
            ev.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            ev.push(event("ping", json!({"type": "ping"})));
            for p in pieces(t) {
                ev.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
            }
            ("end_turn", tokens(t))
        }
        Reply::ToolCall { name, arguments } => {
            ev.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": format!("toolu_{}", stable_id(arguments)), "name": name, "input": {}}})));
            let mid = arguments.len() / 2;
            let (a, b) = arguments.split_at(
                arguments
                    .char_indices()
                    .map(|(i, _)| i)
                    .find(|&i| i >= mid)
                    .unwrap_or(0),
            );
            for part in [a, b] {
                ev.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
            ("tool_use", tokens(arguments))
        }
    };
    ev.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    ev.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    ev.push(event("message_stop", json!({"type": "message_stop"})));
    ev
}
