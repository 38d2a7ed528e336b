//! Owns the upstream HTTP clients of the AI proxy: reqwest for `https` endpoints (TLS) and
//! token/credential calls, and for plain `http` endpoints a small pool of hyper HTTP/1
//! connections owned by one runtime, which skips reqwest's per-request URL round trips and
//! the generic client's pool machinery (measured in `docs/bench/`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
                None => {
                    self.plain.start_reaper();
                    (Box::pin(connect(&ep.addr)).await?, false)
                }
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
    /// A task closes connections idle past [`POOL_IDLE`]; started with the first connection.
    reaper: AtomicBool,
}

struct Pooled {
    sender: SendRequest<reqwest::Body>,
    since: Instant,
}

impl Pool {
    /// A ready connection to `key`, dropping closed and long-idle ones on the way (a busy one,
    /// still streaming its response, stays whatever its age).
    fn checkout(&self, key: &str) -> Option<SendRequest<reqwest::Body>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = hosts.get_mut(key)?;
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let p = &list[i];
            if p.sender.is_closed() {
                list.swap_remove(i);
            } else if p.sender.is_ready() {
                let p = list.swap_remove(i);
                if p.since.elapsed() <= POOL_IDLE {
                    return Some(p.sender);
                }
            }
        }
        None
    }

    /// Drops closed connections and ready ones idle past [`POOL_IDLE`] (which closes them).
    fn prune(&self) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        for list in hosts.values_mut() {
            list.retain(|p| {
                let idle_too_long = p.sender.is_ready() && p.since.elapsed() > POOL_IDLE;
                !(p.sender.is_closed() || idle_too_long)
            });
        }
        hosts.retain(|_, list| !list.is_empty());
    }

    /// Starts the idle reaper on the current runtime once; it stops when the pool is dropped.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        {
            let pool = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POOL_IDLE / 3);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match pool.upgrade() {
                        Some(p) => p.prune(),
                        None => break,
                    }
                }
            });
        }
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
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection closed");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback HTTP/1.1 server answering `ok` to each request; with `close_after_each` it
    /// closes every connection right after its response (without saying so in a header), the
    /// way an upstream drops idle keep-alive connections. Returns its URL and accept count.
    async fn upstream(close_after_each: bool) -> (url::Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = memchr::memmem::find(&seen, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            if seen.len() < end + 4 + len {
                                break;
                            }
                            seen.drain(..end + 4 + len);
                            let host_ok = head.contains("\r\nhost: 127.0.0.1:");
                            let body = if host_ok { "ok" } else { "no host" };
                            let res = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(res.as_bytes()).await.is_err() || close_after_each {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url.parse().unwrap(), accepted)
    }

    async fn call(client: &UpstreamClient, ep: &PlainEndpoint) -> String {
        let res = client
            .send_plain(ep, http::Method::POST, http::HeaderMap::new(), "{}".into())
            .await
            .unwrap();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sequential_requests_share_one_pooled_connection() {
        let (url, accepted) = upstream(false).await;
        let client = UpstreamClient::new();
        let ep = PlainEndpoint::new(&url).unwrap();
        for _ in 0..10 {
            assert_eq!(call(&client, &ep).await, "ok", "Host is set");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_failing_the_request() {
        let (url, accepted) = upstream(true).await;
        let client = UpstreamClient::new();
        let ep = PlainEndpoint::new(&url).unwrap();
        for _ in 0..10 {
            assert_eq!(call(&client, &ep).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn plain_endpoints_resolve_address_host_and_target_once() {
        let ep = PlainEndpoint::new(&"http://h.example/v1/x?a=1".parse().unwrap()).unwrap();
        assert_eq!(ep.addr, "h.example:80");
        assert_eq!(ep.host, "h.example");
        assert_eq!(ep.path, "/v1/x?a=1");
        let ep = PlainEndpoint::new(&"http://[::1]:8080".parse().unwrap()).unwrap();
        assert_eq!(
            (ep.addr.as_str(), ep.host.to_str().unwrap()),
            ("[::1]:8080", "[::1]:8080")
        );
        assert_eq!(ep.path, "/");
        assert!(PlainEndpoint::new(&"https://api.openai.com/v1".parse().unwrap()).is_none());
    }
}
