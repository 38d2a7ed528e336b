//! Owns the buffered request body: read once with a size limit counted while reading, parsed
//! at most once (JSON or form), edited in place (`hide_credentials`), re-encoded only if edited;
//! and the client body timeouts, enforced on buffered and streamed bodies alike ([`TimedBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

/// How long a client may take to send a request body (`serve --client-body-timeout`,
/// `--client-body-min-rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// Longest wait for the next bytes of a body (Kong's `client_body_timeout`, nginx's
    /// semantics: between two reads, not for the whole body). Zero disables both limits.
    pub idle: Duration,
    /// Slowest sustained rate, in bytes per second: the total time spent waiting for the body
    /// may not exceed `idle` plus one second per `min_rate` bytes received (Apache
    /// mod_reqtimeout's `MinRate`). Zero disables the rate limit.
    pub min_rate: u64,
}

impl Default for BodyTimeouts {
    /// Kong's 60 s `client_body_timeout`; mod_reqtimeout's 500 bytes/s.
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            min_rate: 500,
        }
    }
}

/// The client stopped sending its body, or sent it too slowly.
#[derive(Debug, thiserror::Error)]
#[error("the client did not send its request body in time")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `e`, or any error it wraps, is a body timeout.
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.is::<BodyTimedOut>() {
                return true;
            }
            cur = err.source();
        }
        false
    }
}

/// A request body under [`BodyTimeouts`]. Only time spent waiting on the client counts (not
/// time the upstream took to accept what was read), and the clock is read only when a read
/// has to wait, so a body that arrives with its head costs no timer.
pub struct TimedBody {
    inner: Incoming,
    limits: BodyTimeouts,
    received: u64,
    /// Waiting time accumulated over finished waits.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl TimedBody {
    pub fn new(inner: Incoming, limits: BodyTimeouts) -> Self {
        Self {
            inner,
            limits,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            failed: false,
        }
    }

    /// When the current wait, begun at `since`, runs out.
    fn deadline(&self, since: Instant) -> Instant {
        let mut allowed = self.limits.idle;
        if self.limits.min_rate > 0 {
            let earned = self.limits.idle
                + Duration::from_secs_f64(self.received as f64 / self.limits.min_rate as f64);
            allowed = allowed.min(earned.saturating_sub(self.waited));
        }
        since + allowed
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(f)) = &frame
                    && let Some(d) = f.data_ref()
                {
                    this.received += d.len() as u64;
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending if this.limits.idle.is_zero() => Poll::Pending,
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let deadline = this.deadline(since);
                let timer = match &mut this.timer {
                    Some(t) => {
                        if t.deadline() != deadline {
                            t.as_mut().reset(deadline);
                        }
                        t
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.failed = true;
                        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug)]
enum Parsed {
    NotYet,
    Json(Value),
    Form(Vec<(String, String)>),
    Opaque,
}

/// A fully read request body.
#[derive(Debug)]
pub struct RequestBody {
    raw: Bytes,
    parsed: Parsed,
    dirty: bool,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("request body could not be read")]
    Read,
    #[error("{0}")]
    TimedOut(#[from] BodyTimedOut),
}

impl RequestBody {
    pub fn new(raw: Bytes) -> Self {
        Self {
            raw,
            parsed: Parsed::NotYet,
            dirty: false,
        }
    }

    /// Reads `body`, failing as soon as more than `limit` bytes arrive (0 = unlimited), or
    /// when the client sends it slower than `timeouts` allow.
    pub async fn read(
        body: Incoming,
        declared: Option<u64>,
        limit: u64,
        timeouts: BodyTimeouts,
    ) -> Result<Self, BodyError> {
        let mut body = TimedBody::new(body, timeouts);
        if limit > 0 && declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut buf: Option<bytes::BytesMut> = None;
        let mut first: Option<Bytes> = None;
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if e.is::<BodyTimedOut>() {
                    BodyError::TimedOut(BodyTimedOut)
                } else {
                    BodyError::Read
                }
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if limit > 0 && total > limit {
                return Err(BodyError::TooLarge(limit));
            }
            match (&mut buf, first.take()) {
                (None, None) => first = Some(data),
                (None, Some(f)) => {
                    let mut b = bytes::BytesMut::with_capacity(f.len() + data.len());
                    b.extend_from_slice(&f);
                    b.extend_from_slice(&data);
                    buf = Some(b);
                }
                (Some(b), _) => b.extend_from_slice(&data),
            }
        }
        let raw = match (buf, first) {
            (Some(b), _) => b.freeze(),
            (None, Some(f)) => f,
            (None, None) => Bytes::new(),
        };
        Ok(Self::new(raw))
    }

    fn parse(&mut self, headers: &HeaderMap) {
        if !matches!(self.parsed, Parsed::NotYet) {
            return;
        }
        let ct = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        self.parsed = if ct.starts_with("application/x-www-form-urlencoded") {
            Parsed::Form(
                url::form_urlencoded::parse(&self.raw)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            )
        } else if ct.contains("json") {
            serde_json::from_slice(&self.raw)
                .map(Parsed::Json)
                .unwrap_or(Parsed::Opaque)
        } else {
            Parsed::Opaque
        };
    }

    /// A top-level field of a JSON object or form body. Repeated form fields come back as an
    /// array (a duplicate).
    pub fn field(&mut self, headers: &HeaderMap, name: &str) -> Option<Value> {
        self.parse(headers);
        match &self.parsed {
            Parsed::Json(Value::Object(m)) => m.get(name).cloned(),
            Parsed::Form(pairs) => {
                let values: Vec<Value> = pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                match values.len() {
                    0 => None,
                    1 => values.into_iter().next(),
                    _ => Some(Value::Array(values)),
                }
            }
            _ => None,
        }
    }

    pub fn remove_field(&mut self, headers: &HeaderMap, name: &str) {
        self.parse(headers);
        let removed = match &mut self.parsed {
            Parsed::Json(Value::Object(m)) => m.shift_remove(name).is_some(),
            Parsed::Form(pairs) => {
                let before = pairs.len();
                pairs.retain(|(k, _)| k != name);
                pairs.len() != before
            }
            _ => false,
        };
        self.dirty |= removed;
    }

    /// The bytes to send upstream, re-encoded only when a field was removed.
    pub fn into_bytes(self) -> Bytes {
        if !self.dirty {
            return self.raw;
        }
        match self.parsed {
            Parsed::Json(v) => serde_json::to_vec(&v).map(Bytes::from).unwrap_or(self.raw),
            Parsed::Form(pairs) => url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into(),
            _ => self.raw,
        }
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}
