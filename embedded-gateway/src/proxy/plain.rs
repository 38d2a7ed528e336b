//! Owns plain reverse proxying for routes without an AI plugin: the request goes to the route's
//! service (strip_path, path_handling, preserve_host applied) and the response streams back.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use futures_util::TryStreamExt;
use http::{HeaderValue, Response, StatusCode};

use super::compile::CompiledRoute;
use super::router::{RouteMatch, upstream_path};
use crate::errors as response;
use crate::headers::{X_KONG_PROXY_LATENCY, X_KONG_UPSTREAM_LATENCY, millis};

/// Everything about the request besides its head and body.
pub struct Forward<'a> {
    pub route: &'a CompiledRoute,
    pub matched: &'a RouteMatch,
    pub query: Option<&'a str>,
    /// The client's `Host`, read before hop-by-hop headers were removed.
    pub client_host: Option<HeaderValue>,
    pub remote: SocketAddr,
    pub started: Instant,
}

/// The request head as it goes upstream.
pub struct Head<'a> {
    pub method: http::Method,
    pub uri: &'a http::Uri,
    pub headers: http::HeaderMap,
}

pub async fn forward(
    client: &reqwest::Client,
    f: Forward<'_>,
    parts: Head<'_>,
    body: reqwest::Body,
) -> Response<Body> {
    let Forward {
        route,
        matched: m,
        query,
        client_host: original_host,
        remote,
        started,
    } = f;
    let Some(svc) = &route.service else {
        return response::gateway(
            StatusCode::SERVICE_UNAVAILABLE,
            "no Service found with those values",
            started,
        );
    };
    let path = upstream_path(
        svc.path.as_deref(),
        parts.uri.path(),
        route.strip_path,
        m.matched_len,
        route.path_v1,
    );
    let mut url = format!("{}{}", svc.origin, path);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    let Ok(url) = reqwest::Url::parse(&url) else {
        return response::gateway(
            StatusCode::BAD_GATEWAY,
            "An invalid response was received from the upstream server",
            started,
        );
    };
    let mut headers = parts.headers;
    if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
        headers.insert("x-forwarded-for", v.clone());
        headers.insert("x-real-ip", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = &original_host {
        headers.insert("x-forwarded-host", h.clone());
        if route.preserve_host {
            headers.insert(http::header::HOST, h.clone());
        }
    }
    let mut req = reqwest::Request::new(parts.method, url);
    *req.headers_mut() = headers;
    *req.body_mut() = Some(body);
    let sent = Instant::now();
    let res = match tokio::time::timeout(svc.timeout, client.execute(req)).await {
        Err(_) => {
            return response::gateway(
                StatusCode::GATEWAY_TIMEOUT,
                "The upstream server is timing out",
                started,
            );
        }
        Ok(Err(e)) if super::is_body_timeout(&e) => return super::body_timed_out(started),
        Ok(Err(e)) => {
            tracing::warn!(route = %route.id, error = %e.without_url(), "upstream request failed");
            return response::gateway(
                StatusCode::BAD_GATEWAY,
                "An invalid response was received from the upstream server",
                started,
            );
        }
        Ok(Ok(r)) => r,
    };
    let upstream_latency = sent.elapsed();
    let mut out = Response::builder().status(res.status());
    if let Some(h) = out.headers_mut() {
        for (k, v) in res.headers() {
            if !matches!(
                k.as_str(),
                "connection" | "keep-alive" | "transfer-encoding" | "content-length"
            ) {
                h.append(k, v.clone());
            }
        }
        h.insert(X_KONG_UPSTREAM_LATENCY, millis(upstream_latency));
        h.insert(X_KONG_PROXY_LATENCY, millis(sent.duration_since(started)));
    }
    let stream = res.bytes_stream().map_err(|e| e.without_url());
    out.body(Body::from_stream(stream)).unwrap_or_else(|_| {
        response::gateway(
            StatusCode::BAD_GATEWAY,
            "An invalid response was received from the upstream server",
            started,
        )
    })
}
