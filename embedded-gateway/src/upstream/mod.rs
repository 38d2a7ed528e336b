//! Owns the upstream HTTP clients of the AI proxy: reqwest for `https` endpoints (TLS) and
//! token/credential calls, and for plain `http` endpoints a small pool of HTTP/1.1
//! connections owned by one runtime, driven by the request's own task (`h1`), which skips
//! reqwest's per-request URL round trips and hyper's task and channels per connection
//! (measured in `docs/proxy-hot-path.md`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::net::TcpStream;

mod h1;

use h1::Conn;

/// An upstream response; its body is reqwest's so both clients' answers read the same way.
pub type UpstreamResponse = http::Response<reqwest::Body>;

/// Idle pooled connections are closed after about this long (both clients).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The plain pool's reaper runs this many times per [`POOL_IDLE`]; a connection idle for that
/// many of its ticks is closed (so after 75 to 90 s).
const IDLE_TICKS: u64 = 6;

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
    #[error(transparent)]
    Plain(#[from] h1::Failure),
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
}

impl SendError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Reqwest(e) if e.is_timeout())
    }

    /// The connection was never made, so the request never left.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Reqwest(e) => e.is_connect(),
            Self::Plain(_) => false,
        }
    }

    /// The upstream answered with bytes that are not an HTTP response.
    pub fn is_invalid_response(&self) -> bool {
        matches!(self, Self::Plain(h1::Failure::Protocol(_)))
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

    /// Sends `req`: plain `http` URLs with a buffered body through the connection pool, the
    /// rest through reqwest.
    pub async fn execute(&self, req: reqwest::Request) -> Result<UpstreamResponse, SendError> {
        let plain =
            PlainEndpoint::new(req.url()).zip(req.body().map_or(Some(&[][..]), |b| b.as_bytes()));
        let Some((ep, body)) = plain else {
            return self
                .reqwest
                .execute(req)
                .await
                .map(http::Response::from)
                .map_err(|e| SendError::Reqwest(e.without_url()));
        };
        let body = Bytes::copy_from_slice(body);
        let req = http::Request::try_from(req).map_err(|e| SendError::Reqwest(e.without_url()))?;
        let (parts, _) = req.into_parts();
        self.send_plain(&ep, parts.method, parts.headers, body)
            .await
    }

    /// Sends one request to a plain-http endpoint over a pooled connection, with `Host` set to
    /// the endpoint's and, as reqwest would send, `Accept: */*` when absent.
    ///
    /// An upstream may close an idle keep-alive connection just as a request goes out on it.
    /// When a reused connection is closed or reset before any byte of an answer arrives, the
    /// request goes out once more on a new connection, as browsers do.
    pub async fn send_plain(
        &self,
        ep: &PlainEndpoint,
        method: http::Method,
        mut headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, SendError> {
        if !headers.contains_key(http::header::ACCEPT) {
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut reuse = true;
        loop {
            let pooled = if reuse {
                self.plain.checkout(&ep.addr)
            } else {
                None
            };
            let reused = pooled.is_some();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    self.plain.start_reaper();
                    connect(&ep.addr).await?
                }
            };
            let (pool, key) = (self.plain.clone(), ep.addr.clone());
            let home = move |conn: Conn| pool.checkin(&key, conn);
            match conn
                .exchange(&method, &ep.target, &ep.host, &headers, &body, home)
                .await
            {
                Ok(res) => return Ok(res.map(reqwest::Body::wrap)),
                Err(e) if reused && e.closed_unanswered() => reuse = false,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A plain-http upstream URL, resolved once: where to connect, the request target and `Host`.
#[derive(Debug, Clone)]
pub struct PlainEndpoint {
    /// `host:port` to connect to (port 80 when the URL names none); also the pool key.
    addr: Arc<str>,
    host: HeaderValue,
    /// Origin-form request target: path and query.
    target: Box<str>,
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
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        // The request line must not be able to carry anything but a target.
        if target
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return None;
        }
        Some(Self {
            addr: format!("{host}:{port}").into(),
            host: HeaderValue::from_str(&host_header).ok()?,
            target: if target.is_empty() { "/" } else { target }.into(),
        })
    }
}

/// Idle HTTP/1.1 connections per `host:port`. A connection is in here only between
/// requests: while a request and its response body use it, the body owns it, and it comes
/// back when the body has ended (if the upstream allows reuse).
#[derive(Default)]
struct Pool {
    hosts: Mutex<HashMap<Arc<str>, Vec<Pooled>>>,
    /// Counts reaper ticks; a connection records the tick it came back at.
    epoch: AtomicU64,
    /// A task closes connections idle past [`POOL_IDLE`]; started with the first connection.
    reaper: AtomicBool,
}

struct Pooled {
    conn: Conn,
    since: u64,
}

impl Pool {
    /// The most recently used idle connection to `key` the upstream has not closed.
    fn checkout(&self, key: &str) -> Option<Conn> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = hosts.get_mut(key)?;
        while let Some(p) = list.pop() {
            if p.conn.is_usable() {
                return Some(p.conn);
            }
        }
        None
    }

    fn checkin(&self, key: &Arc<str>, conn: Conn) {
        let since = self.epoch.load(Ordering::Relaxed);
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = match hosts.get_mut(&**key) {
            Some(l) => l,
            None => hosts.entry(key.clone()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Pooled { conn, since });
        }
    }

    /// Advances the tick and closes connections idle for [`IDLE_TICKS`] ticks or closed by
    /// their upstream.
    fn prune(&self) {
        let now = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        for list in hosts.values_mut() {
            list.retain(|p| now - p.since < IDLE_TICKS && p.conn.is_usable());
        }
        hosts.retain(|_, list| !list.is_empty());
    }

    /// Starts the idle reaper on the current runtime once; it stops when the pool is dropped.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POOL_IDLE / IDLE_TICKS as u32);
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

/// Opens a new connection to `addr` (`host:port`) on this runtime.
async fn connect(addr: &str) -> Result<Conn, SendError> {
    let tcp = TcpStream::connect(addr).await.map_err(SendError::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(Conn::new(tcp))
}

#[cfg(test)]
mod tests {
    use super::h1::tests::first_request;
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
                        while let Some((len, head)) = first_request(&seen) {
                            seen.drain(..len);
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

    /// Sends ten requests one after another, each answered `ok` (so `Host` was set); returns
    /// how many connections the upstream accepted.
    async fn connections_for_ten_calls(close_after_each: bool) -> usize {
        let (url, accepted) = upstream(close_after_each).await;
        let client = UpstreamClient::new();
        let ep = PlainEndpoint::new(&url).unwrap();
        for _ in 0..10 {
            assert_eq!(call(&client, &ep).await, "ok", "Host is set");
        }
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn sequential_requests_share_one_pooled_connection() {
        assert_eq!(connections_for_ten_calls(false).await, 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_failing_the_request() {
        assert_eq!(connections_for_ten_calls(true).await, 10);
    }

    #[test]
    fn plain_endpoints_resolve_address_host_and_target_once() {
        let ep = PlainEndpoint::new(&"http://h.example/v1/x?a=1".parse().unwrap()).unwrap();
        assert_eq!(&*ep.addr, "h.example:80");
        assert_eq!(ep.host, "h.example");
        assert_eq!(&*ep.target, "/v1/x?a=1");
        let ep = PlainEndpoint::new(&"http://[::1]:8080".parse().unwrap()).unwrap();
        assert_eq!(
            (&*ep.addr, ep.host.to_str().unwrap()),
            ("[::1]:8080", "[::1]:8080")
        );
        assert_eq!(&*ep.target, "/");
        assert!(PlainEndpoint::new(&"https://api.openai.com/v1".parse().unwrap()).is_none());
    }
}
