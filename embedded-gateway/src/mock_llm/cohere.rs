//! Owns the mock's Cohere Chat v2 endpoint (`POST /v2/chat`): Bearer auth, v2 bodies with
//! `message.content`/`tool_calls` and `usage`, the v2 named-event SSE stream
//! (`message-start` … `message-end`), and Cohere's `{"message": …}` errors for faults.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::answer::{Reply, pieces, stable_id, tokens};
use super::convo::{Convo, gate};
use super::{Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"id": "mock-error", "message": message}))
}

fn usage(c: &Convo, completion: u64) -> Value {
    let u = json!({"input_tokens": c.prompt_tokens, "output_tokens": completion});
    json!({"billed_units": u, "tokens": u})
}

fn event(name: &str, mut data: Value) -> Bytes {
    data["type"] = json!(name);
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream_events(c: &Convo, id: &str, reply: &Reply) -> Vec<Bytes> {
    let mut out = vec![event(
        "message-start",
        json!({"id": id, "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    )];
    let (finish, completion) = match reply {
        Reply::Text(t) => {
            out.push(event("content-start", json!({"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
            for p in pieces(t) {
                out.push(event(
                    "content-delta",
                    json!({"index": 0, "delta": {"message": {"content": {"text": p}}}}),
                ));
            }
            out.push(event("content-end", json!({"index": 0})));
            ("COMPLETE", tokens(t))
        }
        Reply::ToolCall { name, arguments } => {
            out.push(event(
                "tool-plan-delta",
                json!({"delta": {"message": {"tool_plan": format!("I will call {name}.")}}}),
            ));
            out.push(event("tool-call-start", json!({"index": 0, "delta": {"message": {"tool_calls": {"id": format!("{name}_{}", stable_id(arguments)), "type": "function", "function": {"name": name, "arguments": ""}}}}})));
            out.push(event("tool-call-delta", json!({"index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}}})));
            out.push(event("tool-call-end", json!({"index": 0})));
            ("TOOL_CALL", tokens(arguments))
        }
    };
    out.push(event(
        "message-end",
        json!({"delta": {"finish_reason": finish, "usage": usage(c, completion)}}),
    ));
    out
}

pub async fn handle(s: &Shared, headers: &HeaderMap, body: Option<Value>) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    if bearer.is_empty() {
        return error(StatusCode::UNAUTHORIZED, "no api key supplied");
    }
    let Some(body) = body.filter(|b| b.get("messages").is_some_and(Value::is_array)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request: messages must not be empty",
        );
    };
    let c = Convo::from_chat_messages(&body);
    if c.model.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request: model must be specified",
        );
    }
    let plan = match gate(
        headers,
        &c.model,
        || error(StatusCode::TOO_MANY_REQUESTS, "You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'."),
        || error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error, this has been reported to our developers"),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = format!("mock-{}", c.id());
    let reply = c.reply();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return sse_response(s, stream_events(&c, &id, &reply), plan);
    }
    let (message, finish, completion) = match &reply {
        Reply::Text(t) => (
            json!({"role": "assistant", "content": [{"type": "text", "text": t}]}),
            "COMPLETE",
            tokens(t),
        ),
        Reply::ToolCall { name, arguments } => (
            json!({"role": "assistant", "tool_plan": format!("I will call {name}."), "tool_calls": [
                {"id": format!("{name}_{}", stable_id(arguments)), "type": "function", "function": {"name": name, "arguments": arguments}}]}),
            "TOOL_CALL",
            tokens(arguments),
        ),
    };
    body_response(
        json!({"id": id, "finish_reason": finish, "message": message, "usage": usage(&c, completion)}),
        plan,
    )
}
