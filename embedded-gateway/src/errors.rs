//! Owns the responses the gateway writes itself in Kong's shape: `{"message":…}` JSON bodies
//! with `X-Kong-Response-Latency`.

use std::time::Instant;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};

use crate::headers::{X_KONG_RESPONSE_LATENCY, millis};

/// A Kong-style gateway response: `{"message":"…"}` plus `X-Kong-Response-Latency`.
pub fn gateway(status: StatusCode, message: &str, started: Instant) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    with_latency(r, started)
}

/// Adds `X-Kong-Response-Latency` to a response the gateway produced itself.
pub fn with_latency(mut r: Response<Body>, started: Instant) -> Response<Body> {
    r.headers_mut()
        .insert(X_KONG_RESPONSE_LATENCY, millis(started.elapsed()));
    r
}
