//! Owns the HTTP/1.1 wire format of the AI proxy's pooled plain-http upstream connections:
//! writing a request, reading a response head with `httparse`, and framing the response body
//! (`Content-Length`, chunked, or read to close) as it arrives.
//!
//! The exchange runs on the request's own task. hyper's client needs a task per connection
//! and three channels per request (request, response, body), and each hop wakes a task; here
//! the upstream socket wakes the request's task directly. See `docs/proxy-hot-path.md`.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Most response header lines accepted.
const MAX_HEADERS: usize = 100;
/// Largest response head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size line or trailer section accepted, in bytes.
const MAX_CHUNK_META: usize = 8 * 1024;
/// Read granularity.
const READ_SIZE: usize = 8 * 1024;

/// Request headers the connection itself decides; a caller's copies are not sent.
static CONNECTION_HEADERS: [HeaderName; 5] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
    http::header::HOST,
    HeaderName::from_static("keep-alive"),
];

/// One open connection to an upstream and the bytes read from it but not yet used.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The socket failed or closed. `answered` says whether any response byte had arrived.
    #[error("{err}")]
    Io { err: io::Error, answered: bool },
    /// The upstream's bytes are not a valid HTTP/1.1 response.
    #[error("invalid upstream response: {0}")]
    Protocol(&'static str),
}

impl Failure {
    /// The connection was closed or reset before anything came back: the way an upstream
    /// drops an idle keep-alive connection just as a request goes out.
    pub fn closed_unanswered(&self) -> bool {
        matches!(self, Self::Io { err, answered: false } if matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ))
    }
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle pooled connection can still carry a request: the upstream has neither
    /// closed it nor sent anything unasked. Costs a syscall only when the runtime has seen the
    /// socket become readable.
    pub fn is_usable(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends one request and reads the response head. The body is read through the returned
    /// [`Body`], which hands the connection to `done` once the body has ended, if the
    /// upstream allows reuse.
    pub async fn exchange<D: FnOnce(Conn)>(
        mut self,
        method: &http::Method,
        target: &str,
        host: &HeaderValue,
        headers: &HeaderMap,
        body: &[u8],
        done: D,
    ) -> Result<http::Response<Body<D>>, Failure> {
        let mut out = Vec::with_capacity(1024 + body.len());
        encode_head(&mut out, method, target, host, headers, body.len());
        out.extend_from_slice(body);
        self.stream
            .write_all(&out)
            .await
            .map_err(|err| Failure::Io {
                err,
                answered: false,
            })?;
        drop(out);
        // Whether any byte of an answer (an interim 1xx included) has arrived.
        let mut interim = false;
        loop {
            let (head, framing, keep_alive) = loop {
                if let Some(parsed) = parse_head(&mut self.buf, method)? {
                    break parsed;
                }
                let answered = interim || !self.buf.is_empty();
                let n = self
                    .fill()
                    .await
                    .map_err(|err| Failure::Io { err, answered })?;
                if n == 0 {
                    return Err(Failure::Io {
                        err: io::ErrorKind::UnexpectedEof.into(),
                        answered,
                    });
                }
            };
            // 1xx interim answers (100 Continue, 103 Early Hints) precede the real one.
            if head.status().is_informational() {
                interim = true;
                continue;
            }
            let mut body = Body {
                conn: Some(self),
                framing,
                keep_alive,
                done: Some(done),
            };
            body.finish_if_ended();
            return Ok(head.map(|()| body));
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }
}

/// `METHOD target HTTP/1.1`, `Host`, the caller's headers (minus the ones the connection
/// decides) and `Content-Length`.
fn encode_head(
    out: &mut Vec<u8>,
    method: &http::Method,
    target: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    body_len: usize,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if CONNECTION_HEADERS.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "content-length: {body_len}\r\n\r\n");
}

/// Parses a complete response head at the front of `buf` and removes it; `None` while the
/// head is still incomplete.
fn parse_head(
    buf: &mut BytesMut,
    method: &http::Method,
) -> Result<Option<(http::Response<()>, Framing, bool)>, Failure> {
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(Failure::Protocol("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Failure::Protocol("too many response headers"));
        }
        Err(_) => return Err(Failure::Protocol("malformed response head")),
    };
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Failure::Protocol("invalid status code"))?;
    let http11 = res.version == Some(1);
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = !http11;
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Failure::Protocol("bad header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| Failure::Protocol("bad header value"))?;
        if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(Failure::Protocol("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Protocol("conflicting content-length"));
            }
            length = Some(n);
        } else if name == http::header::TRANSFER_ENCODING {
            encoded = true;
            // Only a final `chunked` coding frames the body; anything else runs to close.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == http::header::CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == http::Method::HEAD
    {
        Framing::Length(0)
    } else if encoded && chunked {
        Framing::Chunked(Chunk::Size)
    } else if encoded {
        Framing::Close
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    *head.version_mut() = if http11 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    *head.headers_mut() = headers;
    Ok(Some((head, framing, !close)))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// The body runs until the upstream closes the connection.
    Close,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// A response body read straight from the connection. Once it has ended, the connection goes
/// back to the pool if the upstream allows reuse. Dropped early, it still goes back if the
/// rest of the body is already buffered (a stream's reader stops at `data: [DONE]`, before
/// the last chunk's terminator); otherwise the connection is closed.
pub struct Body<D: FnOnce(Conn)> {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    done: Option<D>,
}

enum Step {
    Data(Bytes),
    NeedMore,
    Ended,
}

impl<D: FnOnce(Conn)> Body<D> {
    /// The next piece of body already in the buffer, if any.
    fn step(&mut self) -> Result<Step, &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Step::Ended);
        };
        let buf = &mut conn.buf;
        loop {
            match self.framing {
                Framing::Ended | Framing::Length(0) => return Ok(Step::Ended),
                Framing::Length(rest) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = buf.len().min(usize::try_from(rest).unwrap_or(usize::MAX));
                    self.framing = Framing::Length(rest - take as u64);
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Framing::Close => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.framing = Framing::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_META => {
                        return Ok(Step::NeedMore);
                    }
                    _ => return Err("invalid chunk size line"),
                },
                Framing::Chunked(Chunk::Data(rest)) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = buf.len().min(usize::try_from(rest).unwrap_or(usize::MAX));
                    let left = rest - take as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    // Trailer fields are read past, not passed on.
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.framing = Framing::Ended;
                    } else if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
                        buf.advance(end + 4);
                        self.framing = Framing::Ended;
                    } else if buf.len() < MAX_CHUNK_META {
                        return Ok(Step::NeedMore);
                    } else {
                        return Err("trailer section too large");
                    }
                }
            }
        }
    }

    /// Hands the connection back once the body has ended and nothing else was sent.
    fn finish_if_ended(&mut self) {
        if !matches!(self.framing, Framing::Ended | Framing::Length(0)) {
            return;
        }
        self.framing = Framing::Ended;
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.keep_alive
            && conn.buf.is_empty()
            && let Some(done) = self.done.take()
        {
            done(conn);
        }
    }

    fn fail(&mut self, err: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        self.framing = Framing::Ended;
        Poll::Ready(Some(Err(err)))
    }
}

impl<D: FnOnce(Conn)> Drop for Body<D> {
    fn drop(&mut self) {
        while let Ok(Step::Data(_)) = self.step() {}
        self.finish_if_ended();
    }
}

impl<D: FnOnce(Conn) + Unpin> http_body::Body for Body<D> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Ok(Step::Data(data)) => {
                    this.finish_if_ended();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::Ended) => {
                    this.finish_if_ended();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(why) => return this.fail(io::Error::new(io::ErrorKind::InvalidData, why)),
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::Close => {
                    this.conn = None;
                    this.framing = Framing::Ended;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection before the response body ended",
                    ));
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Ended => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// The first complete request at the front of `seen` (head and `Content-Length` body):
    /// its length in bytes and its lowercased head. For test upstreams.
    pub(in crate::upstream) fn first_request(seen: &[u8]) -> Option<(usize, String)> {
        let end = memchr::memmem::find(seen, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        (seen.len() >= end + 4 + len).then_some((end + 4 + len, head))
    }

    /// An upstream that reads one request (head and `Content-Length` body), answers with
    /// `parts` written one at a time with a pause between them, then closes. Returns its
    /// address and the request it saw.
    async fn upstream(parts: Vec<&'static [u8]>) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                if first_request(&req).is_some() {
                    break;
                }
                if n == 0 {
                    break;
                }
            }
            for part in parts {
                s.write_all(part).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            String::from_utf8(req).unwrap()
        });
        (addr, seen)
    }

    /// What one exchange gave: status, headers, the body (or its error), and whether the
    /// connection was handed back for reuse.
    struct Outcome {
        status: StatusCode,
        headers: HeaderMap,
        body: Result<String, io::Error>,
        pooled: bool,
    }

    /// The connection handed back for reuse, if it was.
    type Returned = Arc<Mutex<Option<Conn>>>;

    /// Sends the test request on a new connection to `addr`; the answer's body is not read yet.
    async fn start(
        addr: &str,
        headers: HeaderMap,
    ) -> Result<(http::Response<Body<impl FnOnce(Conn) + Unpin>>, Returned), Failure> {
        let conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let back = Returned::default();
        let home = back.clone();
        let res = conn
            .exchange(
                &http::Method::POST,
                "/v1/chat/completions?x=1",
                &HeaderValue::from_static("up.example:8080"),
                &headers,
                b"{\"model\":\"m\"}",
                move |c| *home.lock().unwrap() = Some(c),
            )
            .await?;
        Ok((res, back))
    }

    async fn exchange(addr: &str, headers: HeaderMap) -> Result<Outcome, Failure> {
        let (res, back) = start(addr, headers).await?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| String::from_utf8(b.to_bytes().to_vec()).unwrap());
        let pooled = back.lock().unwrap().is_some();
        Ok(Outcome {
            status: parts.status,
            headers: parts.headers,
            body,
            pooled,
        })
    }

    #[tokio::test]
    async fn the_request_carries_its_own_host_and_length_not_the_callers() {
        let (addr, seen) = upstream(vec![b"HTTP/1.1 204 No Content\r\n\r\n"]).await;
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("host", HeaderValue::from_static("client.example"));
        headers.insert("connection", HeaderValue::from_static("upgrade"));
        headers.insert("authorization", HeaderValue::from_static("Bearer sk-x"));
        let out = exchange(&addr, headers).await.unwrap();
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        assert!(
            out.pooled,
            "a 204 has no body, so the connection is reusable at once"
        );
        let req = seen.await.unwrap();
        assert!(
            req.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: up.example:8080\r\n")
        );
        assert!(req.contains("\r\nauthorization: Bearer sk-x\r\n"));
        assert!(
            req.ends_with("\r\ncontent-length: 13\r\n\r\n{\"model\":\"m\"}"),
            "{req}"
        );
        for gone in ["999", "client.example", "upgrade"] {
            assert!(!req.contains(gone), "{gone} leaked into {req}");
        }
    }

    #[tokio::test]
    async fn a_content_length_body_split_over_several_reads_is_read_whole_and_the_connection_reused()
     {
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconte",
            b"nt-length: 11\r\n\r\n{\"a\":",
            b"\"bcd\"}",
        ])
        .await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.headers["content-type"], "application/json");
        assert_eq!(out.body.unwrap(), "{\"a\":\"bcd\"}");
        assert!(out.pooled);
    }

    #[tokio::test]
    async fn a_chunked_body_with_extensions_and_trailers_is_decoded() {
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            b"lo\r\n",
            b"7\r\n, world\r",
            b"\n0\r\nx-trailer: t\r\n\r\n",
        ])
        .await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert_eq!(out.body.unwrap(), "hello, world");
        assert!(out.pooled);
    }

    #[tokio::test]
    async fn a_body_dropped_with_only_its_end_left_in_the_buffer_still_returns_the_connection() {
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n",
        ])
        .await;
        let (res, back) = start(&addr, HeaderMap::new()).await.unwrap();
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "data: [DONE]\n\n");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(body);
        assert!(
            back.lock().unwrap().is_some(),
            "the terminator was already read"
        );
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_arrived_closes_the_connection() {
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf",
            b"-rest",
        ])
        .await;
        let (res, back) = start(&addr, HeaderMap::new()).await.unwrap();
        drop(res);
        assert!(back.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn interim_1xx_answers_are_skipped() {
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ])
        .await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert_eq!(out.status, StatusCode::OK);
        assert!(!out.headers.contains_key("link"));
        assert_eq!(out.body.unwrap(), "ok");
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_close_and_the_connection_is_not_reused() {
        let (addr, _) = upstream(vec![b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two"]).await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert_eq!(out.body.unwrap(), "part one, part two");
        assert!(!out.pooled);
    }

    #[tokio::test]
    async fn connection_close_and_http_1_0_answers_are_not_reused() {
        for head in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ] {
            let (addr, _) = upstream(vec![head]).await;
            let out = exchange(&addr, HeaderMap::new()).await.unwrap();
            assert_eq!(out.body.unwrap(), "ok");
            assert!(!out.pooled);
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_not_a_truncated_answer() {
        let (addr, _) = upstream(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert_eq!(out.body.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(!out.pooled);
        let (addr, _) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
        ])
        .await;
        let out = exchange(&addr, HeaderMap::new()).await.unwrap();
        assert!(out.body.is_err());
    }

    #[tokio::test]
    async fn garbage_and_conflicting_lengths_are_protocol_errors() {
        for answer in [
            &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        ] {
            let (addr, _) = upstream(vec![answer]).await;
            let err = exchange(&addr, HeaderMap::new()).await.err().unwrap();
            assert!(matches!(err, Failure::Protocol(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn an_upstream_that_closes_without_answering_is_told_apart_from_one_that_answered_part() {
        let (addr, _) = upstream(vec![]).await;
        let err = exchange(&addr, HeaderMap::new()).await.err().unwrap();
        assert!(err.closed_unanswered(), "{err}");
        let (addr, _) = upstream(vec![b"HTTP/1.1 200 OK\r\ncontent-le"]).await;
        let err = exchange(&addr, HeaderMap::new()).await.err().unwrap();
        assert!(!err.closed_unanswered(), "{err}");
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_usable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let (server, _) = listener.accept().await.unwrap();
        assert!(conn.is_usable());
        drop(server);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!conn.is_usable());
    }
}
