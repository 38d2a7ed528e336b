//! Owns the analytics routes of the admin API: the page (`GET /analytics`, one HTML file with
//! the vendored uPlot chart library, no network needed) and the JSON API it reads
//! (`GET /analytics/api/summary`), which `gantry analytics` reads too. The page and its
//! assets carry no data and are served without the admin token, so a browser can load them
//! and ask for the token; the JSON API is behind the token like every admin call.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query as Params, State};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

use super::json_response;
use crate::analytics::{Query, Recorder};

const PAGE: &str = include_str!("assets/analytics.html");
const UPLOT_JS: &str = include_str!("assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uplot/uPlot.min.css");

/// The JSON API (mount it behind the admin token).
pub fn api<S: Clone + Send + Sync + 'static>(recorder: Option<Arc<Recorder>>) -> Router<S> {
    Router::new()
        .route("/analytics/api/summary", get(summary))
        .with_state(recorder)
}

/// The page and its assets (no data in them).
pub fn page<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/analytics",
            get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/analytics/uplot.min.js",
            get(|| async { asset(UPLOT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/analytics/uplot.min.css",
            get(|| async { asset(UPLOT_CSS, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'",
        ),
    );
    res
}

async fn summary(
    State(recorder): State<Option<Arc<Recorder>>>,
    Params(params): Params<HashMap<String, String>>,
) -> Response {
    let Some(recorder) = recorder else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "analytics is off (serve --analytics-retention)"}),
        );
    };
    let q = match Query::from_params(&params) {
        Ok(q) => q,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, json!({"message": e.to_string()})),
    };
    match tokio::task::spawn_blocking(move || recorder.summary(&q)).await {
        Ok(Ok(v)) => json_response(StatusCode::OK, v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "analytics query failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "analytics query failed"}),
            )
        }
        Err(_) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "analytics query failed"}),
        ),
    }
}
