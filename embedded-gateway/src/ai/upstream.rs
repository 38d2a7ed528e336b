//! Owns the upstream HTTP clients of the AI proxy: reqwest for `https` endpoints (TLS) and
//! token/credential calls, and a direct hyper client for plain `http` endpoints, which skips
//! reqwest's per-request URL round trips and middleware stack.

use std::time::Duration;

use http::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// An upstream response; its body is reqwest's so both clients' answers read the same way.
pub type UpstreamResponse = http::Response<reqwest::Body>;

/// Idle pooled connections are closed after this long (both clients).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The pooled upstream clients of one runtime. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    reqwest: reqwest::Client,
    plain: Client<HttpConnector, reqwest::Body>,
}

/// Why an upstream call failed (the message never carries the URL).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Reqwest(reqwest::Error),
    #[error("{0}")]
    Hyper(hyper_util::client::legacy::Error),
}

impl SendError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Reqwest(e) if e.is_timeout())
    }
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamClient {
    /// No environment proxies, no redirects (a provider must not be able to send the gateway
    /// elsewhere), Nagle off, idle connections kept 90 s.
    pub fn new() -> Self {
        let reqwest = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { reqwest, plain }
    }

    /// The reqwest client, for calls that need TLS or its conveniences.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// Sends `req`: plain `http` URLs through the direct hyper client, the rest through reqwest.
    /// Both send the same headers (reqwest's default `accept: */*` included).
    pub async fn execute(&self, req: reqwest::Request) -> Result<UpstreamResponse, SendError> {
        if req.url().scheme() != "http" {
            return self
                .reqwest
                .execute(req)
                .await
                .map(http::Response::from)
                .map_err(|e| SendError::Reqwest(e.without_url()));
        }
        let mut req =
            http::Request::try_from(req).map_err(|e| SendError::Reqwest(e.without_url()))?;
        req.headers_mut()
            .entry(http::header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let res = self.plain.request(req).await.map_err(SendError::Hyper)?;
        Ok(res.map(reqwest::Body::wrap))
    }
}
