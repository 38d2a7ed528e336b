//! Owns the mock's Azure OpenAI endpoint
//! (`POST /openai/deployments/{deployment}/chat/completions?api-version=…`): the `api-key`
//! header and `api-version` query are checked as Azure does, then it answers as OpenAI.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Shared, json_response, openai};

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
    openai::respond(s, headers, body).await
}
