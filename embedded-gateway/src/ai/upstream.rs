//! Owns the upstream HTTP clients of the AI proxy: reqwest for `https` endpoints (TLS) and
//! token/credential calls, and for plain `http` endpoints a small pool of hyper HTTP/1
//! connections owned by one runtime, which skips reqwest's per-request URL round trips and
//! the generic client's pool machinery (measured in `docs/bench/`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Uri};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An upstream response; its body is reqwest's so both clients' answers read the same way.
pub type UpstreamResponse = http::Response<reqwest::Body>;

/// Idle pooled connections are closed after this long (both clients).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Most idle connections kept per upstream host and port.
const MAX_IDLE_PER_HOST: usize = 512;

/// The pooled upstream clients of one runtime. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    reqwest: reqwest::Client,
    plain: Arc<Pool>,
}

/// Why an upstream call failed (the message never carries the URL).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Reqwest(reqwest::Error),
    #[error("{0}")]
    Hyper(#[from] hyper::Error),
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
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
        Self {
            reqwest,
            plain: Arc::default(),
        }
    }

    /// The reqwest client, for calls that need TLS or its conveniences.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// Sends `req`: plain `http` URLs through the connection pool, the rest through reqwest.
    pub async fn execute(&self, req: reqwest::Request) -> Result<UpstreamResponse, SendError> {
        let Some(ep) = PlainEndpoint::new(req.url()) else {
            return self
                .reqwest
                .execute(req)
                .await
                .map(http::Response::from)
                .map_err(|e| SendError::Reqwest(e.without_url()));
        };
        let req = http::Request::try_from(req).map_err(|e| SendError::Reqwest(e.without_url()))?;
        let (parts, body) = req.into_parts();
        self.send_plain(&ep, parts.method, parts.headers, body)
            .await
    }

    /// Sends one request to a plain-http endpoint over a pooled connection. The headers get
    /// `Host` and, as reqwest would send, `Accept: */*` when absent.
    pub async fn send_plain(
        &self,
        ep: &PlainEndpoint,
        method: http::Method,
        mut headers: http::HeaderMap,
        body: reqwest::Body,
    ) -> Result<UpstreamResponse, SendError> {
        headers.insert(http::header::HOST, ep.host.clone());
        headers
            .entry(http::header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let mut req = http::Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = ep.path.clone();
        *req.headers_mut() = headers;
        // A pooled connection the upstream closed while idle refuses the request before
        // sending it; the request then goes out once more on a new connection.
        loop {
            let (mut sender, reused) = match self.plain.checkout(&ep.addr) {
                Some(s) => (s, true),
                None => (Box::pin(connect(&ep.addr)).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(res) => {
                    self.plain.checkin(&ep.addr, sender);
                    return Ok(res.map(reqwest::Body::wrap));
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if reused => req = back,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }
}

/// A plain-http upstream URL, resolved once: where to connect, the request target and `Host`.
#[derive(Debug, Clone)]
pub struct PlainEndpoint {
    /// `host:port` to connect to (port 80 when the URL names none); also the pool key.
    addr: String,
    host: HeaderValue,
    /// Origin-form request target: path and query.
    path: Uri,
}

impl PlainEndpoint {
    /// `None` unless `url` is `http://` with a host.
    pub fn new(url: &url::Url) -> Option<Self> {
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        Some(Self {
            addr: format!("{host}:{port}"),
            host: HeaderValue::from_str(&host_header).ok()?,
            path: if path.is_empty() { "/" } else { path }.parse().ok()?,
        })
    }
}

/// Idle and busy HTTP/1 connections per `host:port`. A connection goes back in as soon as its
/// response head arrives; it is handed out again once hyper reports it ready, that is once the
/// previous response body has been read to the end.
#[derive(Default)]
struct Pool {
    hosts: Mutex<HashMap<String, Vec<Pooled>>>,
}

struct Pooled {
    sender: SendRequest<reqwest::Body>,
    since: Instant,
}

impl Pool {
    /// A ready connection to `key`, dropping closed and long-idle ones on the way.
    fn checkout(&self, key: &str) -> Option<SendRequest<reqwest::Body>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = hosts.get_mut(key)?;
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let p = &list[i];
            if p.sender.is_closed() || p.since.elapsed() > POOL_IDLE {
                list.swap_remove(i);
            } else if p.sender.is_ready() {
                return Some(list.swap_remove(i).sender);
            }
        }
        None
    }

    fn checkin(&self, key: &str, sender: SendRequest<reqwest::Body>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = match hosts.get_mut(key) {
            Some(l) => l,
            None => hosts.entry(key.to_owned()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Pooled {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// Opens a new HTTP/1 connection to `addr` (`host:port`) and drives it on this runtime.
async fn connect(addr: &str) -> Result<SendRequest<reqwest::Body>, SendError> {
    let tcp = TcpStream::connect(addr).await.map_err(SendError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::Builder::new().handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection closed");
        }
    });
    Ok(sender)
}
