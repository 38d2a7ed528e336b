//! Owns `GET /metrics`: the process's Prometheus metrics in the text exposition format, on the
//! admin listener (behind the admin token like every admin call) and alone on the status
//! listener (`serve --status-listen`, Kong's status API: no token, nothing else served).

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;

use crate::metrics::{CONTENT_TYPE, METRICS};

/// The `/metrics` route, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(metrics))
}

/// The status listener's router: `/metrics` and nothing else (404 for every other path).
pub fn status_router() -> Router {
    routes()
}

async fn metrics() -> Response {
    let text = METRICS.render();
    let mut res = Response::new(Body::from(text));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    res
}
