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
    #[error("the upstream URL has no host")]
    NoHost,
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
        let authority = req.uri().authority().ok_or(SendError::NoHost)?.clone();
        let key = match authority.as_str().rsplit_once('@') {
            Some((_, hostport)) => hostport,
            None => authority.as_str(),
        };
        let host = HeaderValue::from_str(key).map_err(|_| SendError::NoHost)?;
        let headers = req.headers_mut();
        headers.insert(http::header::HOST, host);
        headers
            .entry(http::header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let origin = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|_| SendError::NoHost)?;
        *req.uri_mut() = origin;
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        // A pooled connection the upstream closed while idle refuses the request before
        // sending it; the request then goes out once more on a new connection.
        loop {
            let (mut sender, reused) = match self.plain.checkout(key) {
                Some(s) => (s, true),
                None => (Box::pin(connect(&addr)).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(res) => {
                    self.plain.checkin(key, sender);
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
