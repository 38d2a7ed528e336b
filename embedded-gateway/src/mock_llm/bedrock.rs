//! Owns the mock's Bedrock runtime endpoints (`POST /model/{modelId}/converse` and
//! `/converse-stream`): a SigV4 `Authorization` header is required (its presence and shape,
//! not the signature), Converse bodies, ConverseStream answers in the AWS event-stream binary
//! framing, and AWS JSON errors with `x-amzn-ErrorType` for faults.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answer::{Reply, pieces, stable_id, text_of, tokens};
use super::convo::{Convo, gate, unescape};
use super::{Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut r = json_response(status, json!({"message": message}));
    r.headers_mut().insert(
        "x-amzn-errortype",
        axum::http::HeaderValue::from_static(kind),
    );
    r
}

/// True for an STS `AssumeRole` call (form-encoded `Action=AssumeRole`).
pub fn is_assume_role(body: &[u8]) -> bool {
    url::form_urlencoded::parse(body).any(|(k, v)| k == "Action" && v == "AssumeRole")
}

/// STS `AssumeRole`: requires a SigV4 signature for the `sts` service and answers with
/// deterministic temporary credentials in STS's XML.
pub fn assume_role(headers: &HeaderMap, body: &[u8]) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signed(headers) || !auth.contains("/sts/aws4_request") {
        return xml(StatusCode::FORBIDDEN, "<ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error></ErrorResponse>".into());
    }
    let role = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "RoleArn")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !role.starts_with("arn:aws:iam::") {
        return xml(StatusCode::BAD_REQUEST, "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>RoleArn is invalid</Message></Error></ErrorResponse>".into());
    }
    let id = stable_id(&role);
    xml(
        StatusCode::OK,
        format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
<Credentials><AccessKeyId>ASIAMOCK{id}</AccessKeyId><SecretAccessKey>mock-secret-{id}</SecretAccessKey>\
<SessionToken>mock-session-{id}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
</AssumeRoleResult></AssumeRoleResponse>"
        ),
    )
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/xml"),
    );
    r
}

/// `(model, stream)` from `/model/{modelId}/converse[-stream]`.
pub fn route(path: &str) -> Option<(String, bool)> {
    let rest = path.split_once("/model/")?.1;
    let (model, op) = rest.rsplit_once('/')?;
    let stream = match op {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    Some((unescape(model), stream))
}

fn signed(headers: &HeaderMap) -> bool {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        && auth.contains("SignedHeaders=")
        && auth.contains("Signature=")
        && headers.contains_key("x-amz-date")
}

fn convo(model: String, body: &Value) -> Convo {
    let messages = body.get("messages").and_then(Value::as_array);
    let last = messages.and_then(|m| m.last()).cloned().unwrap_or_default();
    let blocks = last.get("content").cloned().unwrap_or_default();
    let result = blocks
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|b| b.pointer("/toolResult/content/0"));
    let (last_role, last_text) = match result {
        Some(r) => (
            "tool".to_owned(),
            r.get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| r.get("json").map(Value::to_string).unwrap_or_default()),
        ),
        None => ("user".to_owned(), text_of(&blocks)),
    };
    let mut prompt_tokens: u64 = messages
        .into_iter()
        .flatten()
        .map(|m| tokens(&text_of(m.get("content").unwrap_or(&Value::Null))))
        .sum();
    if let Some(s) = body.get("system") {
        prompt_tokens += tokens(&text_of(s));
    }
    Convo {
        model,
        last_role,
        last_text,
        first_tool: body
            .pointer("/toolConfig/tools/0/toolSpec/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        prompt_tokens,
    }
}

/// One event-stream message: `:event-type`, JSON content type, `event` message type.
pub fn frame(event: &str, payload: &Value) -> Bytes {
    let m = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail for these small, valid headers.
    let _ = write_message_to(&m, &mut buf);
    Bytes::from(buf)
}

fn usage(c: &Convo, completion: u64) -> Value {
    json!({"inputTokens": c.prompt_tokens, "outputTokens": completion, "totalTokens": c.prompt_tokens + completion})
}

fn stream_frames(c: &Convo, reply: &Reply) -> Vec<Bytes> {
    let mut out = vec![frame("messageStart", &json!({"role": "assistant"}))];
    let (stop, completion) = match reply {
        Reply::Text(t) => {
            for p in pieces(t) {
                out.push(frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                ));
            }
            ("end_turn", tokens(t))
        }
        Reply::ToolCall { name, arguments } => {
            let id = format!("tooluse_{}", stable_id(arguments));
            out.push(frame("contentBlockStart", &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": id, "name": name}}})));
            out.push(frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": arguments}}}),
            ));
            ("tool_use", tokens(arguments))
        }
    };
    out.push(frame("contentBlockStop", &json!({"contentBlockIndex": 0})));
    out.push(frame("messageStop", &json!({"stopReason": stop})));
    out.push(frame(
        "metadata",
        &json!({"usage": usage(c, completion), "metrics": {"latencyMs": 1}}),
    ));
    out
}

pub async fn handle(s: &Shared, path: &str, headers: &HeaderMap, body: Option<Value>) -> Response {
    let Some((model, stream)) = route(path) else {
        return error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        );
    };
    if !signed(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    let Some(body) = body.filter(|b| b.get("messages").is_some_and(Value::is_array)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        );
    };
    let c = convo(model, &body);
    let plan = match gate(
        headers,
        &c.model,
        || {
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            )
        },
        || {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "The server encountered an internal error while processing the request.",
            )
        },
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reply = c.reply();
    if stream {
        let mut r = sse_response(s, stream_frames(&c, &reply), plan);
        r.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
        );
        return r;
    }
    let (content, stop, completion) = match &reply {
        Reply::Text(t) => (json!([{"text": t}]), "end_turn", tokens(t)),
        Reply::ToolCall { name, arguments } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or_default();
            (
                json!([{"toolUse": {"toolUseId": format!("tooluse_{}", stable_id(arguments)), "name": name, "input": input}}]),
                "tool_use",
                tokens(arguments),
            )
        }
    };
    body_response(
        json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage(&c, completion),
            "metrics": {"latencyMs": 1},
        }),
        plan,
    )
}
