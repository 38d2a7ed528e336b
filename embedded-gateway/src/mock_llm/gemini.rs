//! Owns the mock's Gemini endpoints: AI Studio (`/v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent`, key in `x-goog-api-key` or `?key=`) and Vertex
//! (`/v1/projects/…/models/{model}:…`, Bearer token); `GenerateContentResponse` bodies, SSE
//! (`alt=sse`) or JSON-array streams, and Google's `{"error":{code,message,status}}` faults.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::answer::{Reply, pieces, text_of, tokens};
use super::convo::{Convo, gate, unescape};
use super::{Shared, body_response, json_response, sse_response};

fn error(status: StatusCode, message: &str, code: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
    )
}

/// Google's OAuth token endpoint for service accounts (`POST /token`, RFC 7523 JWT bearer
/// grant): checks the grant type and that the assertion is an RS256 JWT for the
/// cloud-platform scope (not its signature), and issues a deterministic access token.
pub fn token(body: &[u8]) -> Response {
    let invalid = |why: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": why}),
        )
    };
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "}),
        );
    }
    let Some(jwt) = form.get("assertion") else {
        return invalid(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        );
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |p: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let (Some(header), Some(claims)) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
    ) else {
        return invalid("Invalid JWT Signature.");
    };
    let scope_ok = claims["scope"]
        .as_str()
        .is_some_and(|s| s.contains("cloud-platform"));
    if parts.len() != 3 || header["alg"] != "RS256" || !scope_ok || !claims["iss"].is_string() {
        return invalid("Invalid JWT Signature.");
    }
    let iss = claims["iss"].as_str().unwrap_or("");
    json_response(
        StatusCode::OK,
        json!({"access_token": format!("ya29.mock-{}", super::answer::stable_id(iss)),
               "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// `(model, stream)` from `…/models/{model}:{operation}`.
pub fn route(path: &str) -> Option<(String, bool)> {
    let (rest, op) = path.rsplit_once(':')?;
    let model = rest.rsplit_once("/models/")?.1;
    let stream = match op {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    Some((unescape(model), stream))
}

fn authorized(path: &str, query: Option<&str>, headers: &HeaderMap) -> bool {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty())
    };
    if path.starts_with("/v1/projects/") {
        return headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    }
    header("x-goog-api-key")
        || query
            .unwrap_or("")
            .split('&')
            .any(|p| p.starts_with("key=") && p.len() > 4)
}

/// Google's JSON accepts a single object where a list is expected (`"contents": {…}`,
/// `"parts": {…}`); both are made lists here.
fn as_lists(body: &mut Value) {
    let wrap = |v: &mut Value| {
        if v.is_object() {
            *v = Value::Array(vec![v.take()]);
        }
    };
    if let Some(c) = body.get_mut("contents") {
        wrap(c);
    }
    for content in body
        .get_mut("contents")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = content.get_mut("parts") {
            wrap(p);
        }
    }
}

fn convo(model: String, body: &Value) -> Convo {
    let contents = body.get("contents").and_then(Value::as_array);
    let last = contents.and_then(|c| c.last()).cloned().unwrap_or_default();
    let parts = last.get("parts").cloned().unwrap_or_default();
    let response = parts.as_array().into_iter().flatten().find_map(|p| {
        p.pointer("/functionResponse/response")
            .or_else(|| p.pointer("/function_response/response"))
    });
    let (last_role, last_text) = match response {
        Some(r) => (
            "tool".to_owned(),
            r.get("content")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| r.to_string()),
        ),
        None => ("user".to_owned(), text_of(&parts)),
    };
    let mut prompt_tokens: u64 = contents
        .into_iter()
        .flatten()
        .map(|c| tokens(&text_of(c.get("parts").unwrap_or(&Value::Null))))
        .sum();
    if let Some(s) = body
        .pointer("/systemInstruction/parts")
        .or_else(|| body.pointer("/system_instruction/parts"))
    {
        prompt_tokens += tokens(&text_of(s));
    }
    Convo {
        model,
        last_role,
        last_text,
        // The API takes camelCase and snake_case field names alike.
        first_tool: body
            .pointer("/tools/0/functionDeclarations/0/name")
            .or_else(|| body.pointer("/tools/0/function_declarations/0/name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        prompt_tokens,
    }
}

fn response(c: &Convo, parts: Value, finish: Option<&str>, completion: u64) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": c.prompt_tokens, "candidatesTokenCount": completion,
                          "totalTokenCount": c.prompt_tokens + completion},
        "modelVersion": c.model,
        "responseId": format!("mock{}", c.id()),
    })
}

pub async fn handle(
    s: &Shared,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Response {
    let Some((model, stream)) = route(path) else {
        return error(StatusCode::NOT_FOUND, "Method not found.", "NOT_FOUND");
    };
    if !authorized(path, query, headers) {
        return error(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API key or other form of API consumer identity to call this API.",
            "PERMISSION_DENIED",
        );
    }
    let mut body = body;
    if let Some(b) = body.as_mut() {
        as_lists(b);
    }
    let Some(body) = body.filter(|b| b.get("contents").is_some_and(Value::is_array)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "* GenerateContentRequest.contents: contents is not specified",
            "INVALID_ARGUMENT",
        );
    };
    let c = convo(model, &body);
    let plan = match gate(
        headers,
        &c.model,
        || error(StatusCode::TOO_MANY_REQUESTS, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED"),
        || error(StatusCode::INTERNAL_SERVER_ERROR, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", "INTERNAL"),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let chunks = match c.reply() {
        Reply::Text(t) => {
            let ps = pieces(&t);
            let last = ps.len() - 1;
            // Like Gemini, every chunk carries running totals.
            ps.iter()
                .enumerate()
                .map(|(i, p)| {
                    let finish = (i == last).then_some("STOP");
                    let so_far = tokens(&ps[..=i].concat());
                    response(&c, json!([{"text": p}]), finish, so_far)
                })
                .collect::<Vec<_>>()
        }
        Reply::ToolCall { name, arguments } => {
            let args: Value = serde_json::from_str(&arguments).unwrap_or_default();
            vec![response(
                &c,
                json!([{"functionCall": {"name": name, "args": args}}]),
                Some("STOP"),
                tokens(&arguments),
            )]
        }
    };
    if !stream {
        let mut whole = chunks.last().cloned().unwrap_or_default();
        if let Reply::Text(t) = c.reply() {
            whole["candidates"][0]["content"]["parts"] = json!([{"text": t}]);
        }
        return body_response(whole, plan);
    }
    if query.unwrap_or("").split('&').any(|p| p == "alt=sse") {
        let events = chunks
            .iter()
            .map(|v| Bytes::from(format!("data: {v}\r\n\r\n")))
            .collect();
        return sse_response(s, events, plan);
    }
    // Without alt=sse Gemini streams one JSON array.
    body_response(Value::Array(chunks), plan)
}
