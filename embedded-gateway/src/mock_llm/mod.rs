//! Owns `mock-llm`: a local LLM provider simulator speaking the real OpenAI Chat Completions
//! (`POST …/chat/completions`), Anthropic Messages (`POST …/v1/messages`), Azure OpenAI,
//! Gemini/Vertex, Bedrock Converse (event-stream), Cohere v2, Ollama and TGI wire formats,
//! streaming included, with deterministic answers, real-API auth checks, injected faults, and
//! a record of every request it received (`GET`/`DELETE /_mock/requests`, `GET /_mock/stats`).
//! It also answers Google's service-account token exchange (`POST /token`) and STS
//! `AssumeRole` (a form POST with `Action=AssumeRole`), so Vertex and role-based Bedrock auth
//! run offline.
//!
//! Faults: model `mock-429`, `mock-500`, `mock-slow`, `mock-reset`, `mock-reset-early`,
//! `mock-echo-key`, or header `x-mock-fault: 429|500|slow|reset|reset-early|echo-key`.
//! `reset-early` cuts a stream before its first event. `echo-key` (OpenAI endpoint) echoes the
//! credential it received, as OpenAI does for a wrong key: masked in a 401's message, whole in
//! an `x-mock-echo-key` response header, and whole in a mid-stream error event when streaming.
//! `x-mock-delay-ms` sets the slow first-byte delay
//! (default 1500) and `x-mock-chunk-delay-ms` the pause between stream events (default 0).

mod answer;
mod anthropic;
mod azure;
mod bedrock;
mod cohere;
mod convo;
mod gemini;
mod ollama;
mod openai;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request as the mock received it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header name (lowercase) → value; repeated headers are joined with `, `.
    pub headers: serde_json::Map<String, Value>,
    /// The body as JSON when it parses, else as a string.
    pub body: Value,
}

#[derive(Debug, Default)]
struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
}

type Shared = Arc<MockState>;

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RateLimited,
    ServerError,
    Slow,
    Reset,
    /// The connection is cut after the response head, before any body.
    ResetEarly,
    EchoKey,
}

/// Stream pacing and faults for one request.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub fault: Option<Fault>,
    pub first_byte_delay: Duration,
    pub chunk_delay: Duration,
}

impl Plan {
    fn from(headers: &HeaderMap, model: &str) -> Self {
        let header = headers
            .get("x-mock-fault")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let name = if header.is_empty() {
            model.strip_prefix("mock-").unwrap_or("")
        } else {
            header
        };
        let fault = match name {
            "429" => Some(Fault::RateLimited),
            "500" => Some(Fault::ServerError),
            "slow" => Some(Fault::Slow),
            "reset" => Some(Fault::Reset),
            "reset-early" => Some(Fault::ResetEarly),
            "echo-key" => Some(Fault::EchoKey),
            _ => None,
        };
        let ms = |h: &str, default: u64| {
            Duration::from_millis(
                headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default),
            )
        };
        Self {
            fault,
            first_byte_delay: ms("x-mock-delay-ms", 1500),
            chunk_delay: ms("x-mock-chunk-delay-ms", 0),
        }
    }
}

/// The mock's router.
pub fn app() -> Router {
    let state: Shared = Arc::default();
    Router::new()
        .route("/_mock/requests", get(list).delete(clear))
        .route("/_mock/stats", get(stats))
        .fallback(provider)
        .with_state(state)
}

/// Serves the mock on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn list(State(s): State<Shared>) -> Response {
    let requests = s.requests.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(requests).into_response()
}

async fn clear(State(s): State<Shared>) -> StatusCode {
    if let Ok(mut r) = s.requests.lock() {
        r.clear();
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Shared>) -> Response {
    axum::Json(json!({
        "streams_completed": s.streams_completed.load(Ordering::SeqCst),
        "streams_aborted": s.streams_aborted.load(Ordering::SeqCst),
    }))
    .into_response()
}

/// Counts a stream as aborted unless it was marked complete before being dropped.
pub(crate) struct StreamGuard {
    state: Shared,
    completed: bool,
}

impl StreamGuard {
    pub(crate) fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.completed {
            &self.state.streams_completed
        } else {
            &self.state.streams_aborted
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn provider(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
    record(
        &s,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
        json_body.as_ref(),
    );
    let path = parts.uri.path();
    let query = parts.uri.query();
    let post = parts.method == Method::POST;
    if post && path.starts_with("/openai/deployments/") && path.ends_with("/chat/completions") {
        azure::handle(&s, &parts.headers, query, json_body).await
    } else if post && bedrock::is_assume_role(&bytes) {
        bedrock::assume_role(&parts.headers, &bytes)
    } else if post && path == "/token" {
        gemini::token(&bytes)
    } else if post && gemini::route(path).is_some() {
        gemini::handle(&s, path, query, &parts.headers, json_body).await
    } else if post && bedrock::route(path).is_some() {
        bedrock::handle(&s, path, &parts.headers, json_body).await
    } else if post && path.ends_with("/v2/chat") {
        cohere::handle(&s, &parts.headers, json_body).await
    } else if post && path.ends_with("/api/chat") {
        ollama::chat(&s, &parts.headers, json_body).await
    } else if post && (path.ends_with("/generate") || path.ends_with("/generate_stream")) {
        ollama::generate(
            &s,
            &parts.headers,
            json_body,
            path.ends_with("/generate_stream"),
        )
        .await
    } else if parts.method == Method::POST && path.ends_with("/chat/completions") {
        openai::handle(&s, &parts.headers, json_body).await
    } else if parts.method == Method::POST && path.ends_with("/v1/messages") {
        anthropic::handle(&s, &parts.headers, json_body).await
    } else {
        let message = format!(
            "Unknown request URL: {} {path}. Please check the URL for typos.",
            parts.method
        );
        let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
        (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
    }
}

fn record(
    s: &MockState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    bytes: &Bytes,
    json: Option<&Value>,
) {
    let mut h = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        h.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let body = json
        .cloned()
        .unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    let r = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: h,
        body,
    };
    if let Ok(mut v) = s.requests.lock() {
        v.push(r);
    }
}

/// A JSON response with the given status.
fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A server-sent-events response from already framed events, paced by `plan`. With the
/// `reset` fault the connection is cut after the first half of the events.
fn sse_response(state: &Shared, events: Vec<Bytes>, plan: Plan) -> Response {
    let mut guard = StreamGuard {
        state: state.clone(),
        completed: false,
    };
    let reset_at = match plan.fault {
        Some(Fault::Reset) => Some(events.len() / 2),
        Some(Fault::ResetEarly) => Some(0),
        _ => None,
    };
    let stream = async_stream::stream! {
        for (i, ev) in events.into_iter().enumerate() {
            if reset_at == Some(i) {
                // Let what was sent reach the client first: the reset is mid-stream.
                tokio::time::sleep(Duration::from_millis(50)).await;
                yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock-llm: injected reset"));
                return;
            }
            if i > 0 && !plan.chunk_delay.is_zero() {
                tokio::time::sleep(plan.chunk_delay).await;
            }
            yield Ok::<Bytes, std::io::Error>(ev);
        }
        guard.complete();
    };
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// A non-streamed body, cut mid-way with the `reset` fault.
fn body_response(body: Value, plan: Plan) -> Response {
    let cut = match plan.fault {
        Some(Fault::Reset) => 2,
        Some(Fault::ResetEarly) => usize::MAX,
        _ => return json_response(StatusCode::OK, body),
    };
    let text = body.to_string().into_bytes();
    let half = Bytes::from(text[..text.len() / cut].to_vec());
    let stream = async_stream::stream! {
        yield Ok::<Bytes, std::io::Error>(half);
        tokio::time::sleep(Duration::from_millis(50)).await;
        yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock-llm: injected reset"));
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}
