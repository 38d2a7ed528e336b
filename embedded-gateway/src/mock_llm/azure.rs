//! Owns the mock's Azure OpenAI endpoint
//! (`POST /openai/deployments/{deployment}/chat/completions?api-version=…`): the `api-key`
//! header and `api-version` query are checked as Azure does, then it answers as OpenAI.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Fault, Plan, Shared, json_response, openai};

pub async fn handle(
    s: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Option<Value>,
) -> Response {
    let key = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if key.is_empty() {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
        );
    }
    let has_version = query
        .unwrap_or("")
        .split('&')
        .any(|p| p.starts_with("api-version=") && p.len() > "api-version=".len());
    if !has_version {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "404", "message": "Resource not found"}}),
        );
    }
    let model = body
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("");
    // Rate limits and server errors in Azure's shape; `slow`/`reset` are the OpenAI answer's.
    match Plan::from(headers, model).fault {
        Some(Fault::RateLimited) => {
            let mut r = azure_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return r;
        }
        Some(Fault::ServerError) => {
            return azure_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request. Sorry about that!",
            );
        }
        _ => {}
    }
    openai::respond(s, headers, body).await
}

/// Azure's error shape: OpenAI's envelope without `type`, the status as a string `code`.
fn azure_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": status.as_u16().to_string(), "message": message}}),
    )
}
