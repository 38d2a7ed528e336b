//! Owns the `log` phase's trigger: the response body is wrapped so that, when its last byte
//! has gone out (or the client went away), the closed request context becomes a
//! [`LogRecord`] handed to each logging plugin. Plugins only enqueue; nothing here waits.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};

use crate::analytics::Recorder;
use crate::context::{Ctx, LogRecord};
use crate::plugins::Instance;

/// Wraps `res` so that `loggers` run (and `analytics` records it) once its body ends.
pub fn on_end(
    res: Response<Body>,
    ctx: Ctx,
    loggers: Vec<Arc<Instance>>,
    analytics: Option<Arc<Recorder>>,
) -> Response<Body> {
    let (parts, body) = res.into_parts();
    let capture = ctx
        .ai
        .as_ref()
        .is_some_and(|a| a.log_payloads)
        .then(Vec::new);
    let pending = Pending {
        ctx: Some(ctx),
        status: parts.status,
        headers: parts.headers.clone(),
        loggers,
        analytics,
    };
    let body = LoggedBody {
        inner: body,
        sent: 0,
        capture,
        pending,
    };
    Response::from_parts(parts, Body::new(body))
}

struct Pending {
    ctx: Option<Ctx>,
    status: http::StatusCode,
    headers: http::HeaderMap,
    loggers: Vec<Arc<Instance>>,
    analytics: Option<Arc<Recorder>>,
}

impl Pending {
    fn fire(&mut self, sent: u64, payload: Option<Vec<u8>>) {
        let Some(ctx) = self.ctx.take() else {
            return;
        };
        let record = Arc::new(LogRecord {
            total: ctx.started.elapsed(),
            ctx,
            status: self.status,
            response_headers: std::mem::take(&mut self.headers),
            response_size: sent,
            response_payload: payload.map(Bytes::from),
        });
        for l in &self.loggers {
            l.log(&record);
        }
        if let Some(a) = &self.analytics {
            a.record(&record);
        }
    }
}

struct LoggedBody {
    inner: Body,
    sent: u64,
    /// The body as sent, kept (up to [`PAYLOAD_LIMIT`]) for `log_payloads`.
    capture: Option<Vec<u8>>,
    pending: Pending,
}

/// The most response bytes a log entry's `ai.proxy.payload` keeps.
const PAYLOAD_LIMIT: usize = 1 << 20;

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.sent += d.len() as u64;
                    if let Some(c) = &mut this.capture {
                        let room = PAYLOAD_LIMIT.saturating_sub(c.len());
                        c.extend_from_slice(&d[..d.len().min(room)]);
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                this.pending.fire(this.sent, this.capture.take())
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // The client went away before the end, or the body was never polled to its end.
        self.pending.fire(self.sent, self.capture.take());
    }
}
