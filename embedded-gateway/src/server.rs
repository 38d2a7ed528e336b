//! Owns the HTTP listeners: a hardened accept loop (header-read timeout, header limits, idle
//! timeout) shared by the proxy and admin ports, with graceful draining on shutdown.
//!
//! A per-connection watchdog enforces the time limits in coarse ticks: a connection that sends
//! nothing, that sits idle between requests, or whose request head trickles in too slowly
//! (slowloris) is closed. The HTTP/1 listener installs no hyper timer, so a keep-alive request
//! costs no timer registration; the h2c-capable listener also keeps hyper's own header timer.
//!
//! Before a handler sees an HTTP/1 request, its head is checked against RFC 9112: exactly one
//! valid `Host` (none is allowed on HTTP/1.0 only), else 400; and a head larger than
//! [`Limits::max_header_bytes`], measured as the bytes of its request line and field lines,
//! else 431. hyper's own read-buffer limit only bounds memory: it admits heads up to about one
//! and a half times its size.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connection limits for one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to receive a request's head, from its first byte (enforced by the
    /// watchdog, within one tick).
    pub header_read_timeout: Duration,
    /// Largest header block accepted (HTTP/1 read buffer), in bytes.
    pub max_header_bytes: usize,
    /// Most headers accepted on one request.
    pub max_headers: usize,
    /// Time a new connection may take to send its first byte.
    pub first_byte_timeout: Duration,
    /// Time a connection may sit idle between requests (no bytes moving, nothing in flight).
    pub idle_timeout: Duration,
    /// Time allowed for in-flight requests to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Which HTTP versions a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 only, like Kong's plain-text proxy listener; no version sniffing per
    /// connection.
    Http1,
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c), told apart by the connection preface.
    Http1AndH2c,
}

/// Serves `handler` on `listener`, speaking `protocols`, until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve<H, F, B>(
    protocols: Protocols,
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + From<&'static str> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max_head = limits.max_header_bytes;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // Head and body go out in one buffer, one `send` per response; the watchdog owns the
    // header-read timeout, so hyper arms no timer per request.
    http1
        .writev(false)
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(limits.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::default();
        let handler = handler.clone();
        let tracker = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let guard = tracker.begin_request();
            let fut = match check_head(&req, max_head) {
                Ok(()) => Ok(handler(req, remote)),
                Err(refusal) => Err(refusal),
            };
            async move {
                let res = match fut {
                    Ok(fut) => fut.await,
                    Err(refusal) => refusal.response(),
                };
                drop(guard);
                Ok::<_, Infallible>(res)
            }
        });
        let io = TokioIo::new(Watched {
            inner: Some(stream),
            activity: activity.clone(),
        });
        let conn: Pin<Box<dyn Future<Output = ()> + Send>> = match protocols {
            Protocols::Http1 => {
                let conn = graceful.watch(http1.serve_connection(io, service));
                Box::pin(async move {
                    let _ = conn.await;
                })
            }
            Protocols::Http1AndH2c => {
                let conn = builder.serve_connection_with_upgrades(io, service);
                let conn = graceful.watch(conn.into_owned());
                Box::pin(async move {
                    let _ = conn.await;
                })
            }
        };
        let watch = Watch::from(&limits);
        tokio::spawn(async move {
            tokio::select! {
                () = conn => {}
                why = activity.expired(watch) => {
                    tracing::debug!(%remote, "closing connection: {why}");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
        }
    }
}

/// Why a request head is refused before any handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, any request with two, or one whose
    /// value is not a valid `uri-host [ ":" port ]`.
    BadHost,
    /// The head is larger than [`Limits::max_header_bytes`].
    HeadTooLarge,
}

impl Refusal {
    fn response<B: From<&'static str>>(self) -> Response<B> {
        let (status, body) = match self {
            Refusal::BadHost => (
                http::StatusCode::BAD_REQUEST,
                r#"{"message":"Bad request: exactly one valid Host header is required"}"#,
            ),
            Refusal::HeadTooLarge => (
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                r#"{"message":"Request header fields too large"}"#,
            ),
        };
        let mut res = Response::new(B::from(body));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        // The rest of the connection cannot be trusted to be framed as the client meant.
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        res
    }
}

/// The RFC 9112 checks hyper leaves to the server, on HTTP/1 requests only (HTTP/2 carries the
/// authority in `:authority` and its header list size is bounded by hyper).
fn check_head<T>(req: &Request<T>, max_head: usize) -> Result<(), Refusal> {
    let version = req.version();
    if version != http::Version::HTTP_11 && version != http::Version::HTTP_10 {
        return Ok(());
    }
    let headers = req.headers();
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Refusal::BadHost),
        (None, _) if version == http::Version::HTTP_11 => return Err(Refusal::BadHost),
        (Some(h), None) if !valid_host(h.as_bytes()) => return Err(Refusal::BadHost),
        _ => {}
    }
    // Request line: method SP request-target SP HTTP-version CRLF.
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let mut size = req.method().as_str().len() + 1 + target + 1 + 8 + 2 + 2;
    // Field lines: name ": " value CRLF; the final CRLF is counted above.
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    if size > max_head {
        return Err(Refusal::HeadTooLarge);
    }
    Ok(())
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2): reg-name or IP literal characters only.
/// Empty is valid (a target URI without authority).
fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// The time limits the watchdog enforces on one connection.
#[derive(Clone, Copy)]
struct Watch {
    first_byte: Duration,
    idle: Duration,
    head: Duration,
}

impl From<&Limits> for Watch {
    fn from(l: &Limits) -> Self {
        Self {
            first_byte: l.first_byte_timeout,
            idle: l.idle_timeout,
            head: l.header_read_timeout,
        }
    }
}

/// Per-connection activity, shared by the stream, the service and the watchdog: whether bytes
/// moved since the watchdog last looked, whether a request head has started arriving, and how
/// many requests are in flight. I/O calls only set flags (no clock read, no timer per request).
#[derive(Clone, Default)]
struct Activity(Arc<ActivityState>);

#[derive(Default)]
struct ActivityState {
    moved: AtomicBool,
    /// Bytes arrived while no request was in flight: a head is on its way.
    head_started: AtomicBool,
    in_flight: AtomicUsize,
}

struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.0.moved.store(true, Ordering::Relaxed);
    }
}

impl Activity {
    fn wrote(&self) {
        self.0.moved.store(true, Ordering::Relaxed);
    }

    fn read(&self) {
        let s = &*self.0;
        s.moved.store(true, Ordering::Relaxed);
        if s.in_flight.load(Ordering::Relaxed) == 0 {
            s.head_started.store(true, Ordering::Relaxed);
        }
    }

    /// A request head was parsed: its handler runs until the guard drops.
    fn begin_request(&self) -> InFlight {
        let s = &*self.0;
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        s.head_started.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves, saying why, once the connection has sent nothing for `first_byte` since
    /// accept, has moved no bytes for `idle` with no request in flight, or has taken longer
    /// than `head` to deliver a request head. Measured in ticks of a quarter of the shortest
    /// limit, so a limit fires up to one tick late.
    async fn expired(&self, w: Watch) -> &'static str {
        let s = &*self.0;
        let tick = (w.first_byte.min(w.idle).min(w.head) / 4).max(Duration::from_millis(10));
        let mut seen = false;
        let mut quiet = Duration::ZERO;
        let mut heading = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            let idle = s.in_flight.load(Ordering::Relaxed) == 0;
            if idle && s.head_started.load(Ordering::Relaxed) {
                heading += tick;
                if heading >= w.head {
                    return "request head not received in time";
                }
            } else {
                heading = Duration::ZERO;
            }
            if s.moved.swap(false, Ordering::Relaxed) {
                seen = true;
                quiet = Duration::ZERO;
                continue;
            }
            if !idle {
                quiet = Duration::ZERO;
                continue;
            }
            quiet += tick;
            if quiet >= if seen { w.idle } else { w.first_byte } {
                return "idle";
            }
        }
    }
}

/// A TCP stream that records activity on every read and write. Dropped with unread bytes from
/// the client (a response that did not read the whole request, like an early 413), it lingers:
/// see [`linger`].
struct Watched {
    /// Always `Some` until dropped.
    inner: Option<TcpStream>,
    activity: Activity,
}

fn gone() -> io::Error {
    io::Error::from(io::ErrorKind::NotConnected)
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        // Closing a socket with unread input makes the kernel send RST, which can destroy the
        // response still in flight to the client (an early 413 or 408 never arrives). Only
        // then is the close deferred.
        let mut probe = [0u8; 1];
        if matches!(stream.try_read(&mut probe), Ok(n) if n > 0)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(linger(stream));
        }
    }
}

/// How long, in all, a closing connection keeps reading (and discarding) what the client still
/// sends, and how long it waits for each read (nginx's `lingering_time`/`lingering_timeout`,
/// shorter).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_READ: Duration = Duration::from_millis(500);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// nginx's lingering close: half-close, then read and discard until the client closes, stops
/// sending for [`LINGER_READ`], or [`LINGER_TIME`] / [`LINGER_BYTES`] run out.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 16 * 1024];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        let wait = deadline.min(tokio::time::Instant::now() + LINGER_READ);
        match tokio::time::timeout_at(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let res = Pin::new(inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let res = Pin::new(inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let res = Pin::new(inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }
}
