//! Owns the four ways an upstream answer becomes the client's response: a translated JSON
//! completion, a translated stream (SSE out as it arrives, an error event if it breaks), a
//! provider error mapped to the OpenAI envelope, and native passthrough (`llm_format`); each
//! read bounded by the read timeout, provider secrets scrubbed.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::AiError;
use super::balancer::Report;
use super::facts::UsageCell;
use super::providers::{FrameDecoder, ProviderKind, StreamTranslator};
use super::scrub::{Secrets, StreamScrub};
use super::sse::encode_data;
use super::targets::CompiledTarget;
use super::types::ErrorEnvelope;
use crate::upstream::UpstreamResponse;

/// Largest provider error body read before mapping it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Reads upstream answers with one read timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct Respond {
    pub read_timeout: Duration,
}

impl Respond {
    /// Reads the whole body, each read bounded by `read_timeout`, up to `limit` bytes.
    pub(super) async fn read_body(
        &self,
        response: UpstreamResponse,
        kind: ProviderKind,
        limit: usize,
    ) -> Result<Bytes, AiError> {
        let mut stream = body_stream(response);
        let mut buf = bytes::BytesMut::new();
        let mut single: Option<Bytes> = None;
        loop {
            match within(self.read_timeout, stream.next()).await {
                Err(_) => return Err(timeout_error(kind)),
                Ok(None) => return Ok(single.unwrap_or_else(|| buf.freeze())),
                Ok(Some(Err(e))) => {
                    tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream body failed");
                    return Err(unreachable_error(kind));
                }
                Ok(Some(Ok(chunk))) => {
                    if let Some(s) = single.take() {
                        buf.extend_from_slice(&s);
                    }
                    if buf.len() + chunk.len() > limit {
                        buf.extend_from_slice(&chunk[..limit - buf.len()]);
                        return Ok(buf.freeze());
                    }
                    if buf.is_empty() {
                        single = Some(if chunk.len() > limit {
                            chunk.slice(..limit)
                        } else {
                            chunk
                        });
                    } else {
                        buf.extend_from_slice(&chunk);
                    }
                }
            }
        }
    }

    pub(super) async fn json_response(
        &self,
        kind: ProviderKind,
        model: &str,
        response: UpstreamResponse,
        usage: Option<&UsageCell>,
        secrets: &Secrets,
    ) -> Result<Response<Body>, AiError> {
        let body = self.read_body(response, kind, usize::MAX).await?;
        let converted = secrets.scrub_bytes(kind.convert_response(body, model)?); // hardening
        if let Some(cell) = usage
            && let Some(u) = super::types::usage_of_completion(&converted)
        {
            cell.set(u);
        }
        Ok(json(StatusCode::OK, converted))
    }

    /// `llm_format` native: the provider's own body, status and stream pass through
    /// untranslated (configured secrets scrubbed from bodies that are read whole).
    pub(super) async fn native_response(
        &self,
        target: &CompiledTarget,
        kind: ProviderKind,
        response: UpstreamResponse,
        stream: bool,
    ) -> Result<Response<Body>, AiError> {
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        let mut r = if stream && status.is_success() {
            let read_timeout = self.read_timeout;
            let mut upstream = body_stream(response);
            let body = async_stream::stream! {
                loop {
                    match within(read_timeout, upstream.next()).await {
                        Ok(Some(Ok(chunk))) => yield Ok::<Bytes, std::io::Error>(chunk),
                        Ok(None) => break,
                        Ok(Some(Err(e))) => {
                            tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream stream broke");
                            yield Err(std::io::Error::other("upstream stream broke"));
                            break;
                        }
                        Err(_) => {
                            yield Err(std::io::Error::other("upstream read timeout"));
                            break;
                        }
                    }
                }
            };
            // hardening: scrubbed chunk by chunk, unless the stream is binary (Bedrock's
            // event-stream frames carry lengths and checksums).
            let binary = content_type
                .as_ref()
                .is_some_and(|v| v.as_bytes().starts_with(b"application/vnd.amazon"));
            let body = Body::from_stream(body);
            Response::new(if binary {
                body
            } else {
                scrub_stream(body, target.secrets.clone())
            })
        } else {
            let limit = if status.is_success() {
                usize::MAX
            } else {
                MAX_ERROR_BODY
            };
            let body = self.read_body(response, kind, limit).await?;
            Response::new(Body::from(target.secrets.scrub_bytes(body))) // hardening
        };
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        if let Some(v) = retry_after {
            h.insert(http::header::RETRY_AFTER, v);
        }
        Ok(r)
    }

    /// A provider 4xx/5xx: same status, provider error mapped to the OpenAI envelope.
    pub(super) async fn provider_error(
        &self,
        target: &CompiledTarget,
        kind: ProviderKind,
        response: UpstreamResponse,
    ) -> Result<Response<Body>, AiError> {
        let status = response.status();
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        let body = self.read_body(response, kind, MAX_ERROR_BODY).await?;
        let env = kind.map_error(status, &body);
        let mut r = json(status, target.secrets.scrub_bytes(env.to_bytes())); // hardening
        if let Some(v) = retry_after {
            r.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        Ok(r)
    }

    /// Streams SSE downstream as it arrives. The client's response head is held until the
    /// first translated event (bounded by the read timeout): a stream that fails, closes or
    /// opens with an error event before that is an `Err` (with `true` for a timeout), so the
    /// request can go to another target. After it, a failure ends the stream with an error
    /// event and counts as the target's failure.
    pub(super) async fn stream_response(
        &self,
        kind: ProviderKind,
        model: &str,
        include_usage: bool,
        response: UpstreamResponse,
        usage: Arc<UsageCell>,
        report: Report,
    ) -> Result<Response<Body>, (AiError, bool)> {
        let mut decoder = FrameDecoder::for_response(kind, response.headers().get(CONTENT_TYPE));
        let mut upstream = body_stream(response);
        let mut translator = kind.stream_translator(model, include_usage);
        let mut first = Vec::new();
        while first.is_empty() && !translator.is_done() {
            let failed = match within(self.read_timeout, upstream.next()).await {
                Err(_) => Some((timeout_error(kind), true)),
                Ok(None) => Some((empty_stream_error(kind), false)),
                Ok(Some(Err(e))) => {
                    tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream stream failed");
                    Some((unreachable_error(kind), false))
                }
                Ok(Some(Ok(chunk))) => {
                    translate(&mut decoder, &mut translator, &chunk, &mut first);
                    None
                }
            };
            if let Some(f) = failed {
                report.failure();
                return Err(f);
            }
        }
        if first
            .first()
            .is_some_and(|f| f.starts_with(b"data: {\"error\""))
        {
            report.failure();
            return Err((empty_stream_error(kind), false));
        }
        let read_timeout = self.read_timeout;
        let body = async_stream::stream! {
            for frame in first {
                yield Ok::<Bytes, std::convert::Infallible>(frame);
            }
            let mut out = Vec::new();
            let mut broke = false;
            while !translator.is_done() {
                match within(read_timeout, upstream.next()).await {
                    Ok(Some(Ok(chunk))) => translate(&mut decoder, &mut translator, &chunk, &mut out),
                    Ok(None) => {
                        let mut events = Vec::new();
                        decoder.finish(&mut events);
                        for ev in &events {
                            translator.on_event(ev, &mut out);
                        }
                        translator.on_close(&mut out);
                        if !translator.is_done() {
                            broke = true;
                            out.push(stream_error(kind, "the upstream provider closed the stream before it finished"));
                        }
                        for frame in out.drain(..) {
                            yield Ok(frame);
                        }
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream stream broke");
                        broke = true;
                        out.push(stream_error(kind, "the connection to the upstream provider broke mid-stream"));
                        for frame in out.drain(..) {
                            yield Ok(frame);
                        }
                        break;
                    }
                    Err(_) => {
                        broke = true;
                        out.push(stream_error(kind, "the upstream provider stopped sending within the read timeout"));
                        for frame in out.drain(..) {
                            yield Ok(frame);
                        }
                        break;
                    }
                }
                for frame in out.drain(..) {
                    yield Ok(frame);
                }
            }
            let u = translator.usage();
            if let Some(u) = u {
                usage.set(u);
            }
            if broke {
                report.failure();
            } else {
                report.success(u);
            }
        };
        let mut r = Response::new(Body::from_stream(body));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        Ok(r)
    }
}

/// Provider response headers worth passing on (request ids, rate limits), minus framing,
/// cookies and anything that could carry a credential.
/// The response body as a stream of chunks.
fn body_stream(response: UpstreamResponse) -> http_body_util::BodyDataStream<reqwest::Body> {
    http_body_util::BodyDataStream::new(response.into_body())
}

pub(super) fn passthrough_headers(
    src: &HeaderMap,
    target: &CompiledTarget,
) -> Vec<(HeaderName, HeaderValue)> {
    src.iter()
        .filter(|(k, _)| {
            let n = k.as_str();
            !matches!(
                n,
                "connection"
                    | "keep-alive"
                    | "transfer-encoding"
                    | "content-length"
                    | "content-encoding"
                    | "content-type"
                    | "set-cookie"
                    | "authorization"
                    | "proxy-authenticate"
            ) && !n.contains("api-key")
                && target.auth_header.as_ref().is_none_or(|(h, _)| h != k)
        })
        .map(|(k, v)| {
            // hardening: a provider header that echoes a credential is scrubbed too.
            let v = target.secrets.scrub_header(v).unwrap_or_else(|| v.clone());
            (k.clone(), v)
        })
        .collect()
}

// ---- hardening: scrubbing call-site helpers (logic in `ai/scrub.rs`) ----

/// A response body streamed through [`StreamScrub`].
pub(super) fn scrub_stream(body: Body, secrets: Secrets) -> Body {
    if secrets.is_empty() {
        return body;
    }
    let mut scrub = StreamScrub::new(secrets);
    let mut chunks = body.into_data_stream();
    Body::from_stream(async_stream::stream! {
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(c) => yield Ok(scrub.feed(c)),
                Err(e) => {
                    yield Ok(scrub.finish());
                    yield Err(e);
                    return;
                }
            }
        }
        yield Ok::<Bytes, axum::Error>(scrub.finish());
    })
}

// ---- end hardening ----

fn translate(
    dec: &mut FrameDecoder,
    tr: &mut StreamTranslator,
    chunk: &[u8],
    out: &mut Vec<Bytes>,
) {
    let mut events = Vec::new();
    dec.feed(chunk, &mut events);
    for ev in &events {
        tr.on_event(ev, out);
    }
}

fn stream_error(kind: ProviderKind, message: &str) -> Bytes {
    let env = ErrorEnvelope::new(
        format!("{message} ({})", kind.name()),
        "upstream_error",
        Some("stream_interrupted"),
    );
    encode_data(&serde_json::to_vec(&env).unwrap_or_default())
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The upstream read did not finish within its limit.
pub(super) struct TimedOut;

/// `tokio::time::timeout`, but the timer is armed only when `fut` is not ready at once: a
/// response body that is already buffered costs no clock read and no timer registration.
pub(super) async fn within<F: Future>(limit: Duration, fut: F) -> Result<F::Output, TimedOut> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => tokio::time::timeout(limit, fut).await.map_err(|_| TimedOut),
    }
}

pub(super) fn timeout_error(kind: ProviderKind) -> AiError {
    AiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_error",
        "upstream_timeout",
        format!(
            "the {} provider did not answer within the configured timeout",
            kind.name()
        ),
    )
}

/// A stream that ended, or opened with an error event, before its first content.
fn empty_stream_error(kind: ProviderKind) -> AiError {
    AiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "empty_stream",
        format!(
            "the {} provider ended the stream before its first event",
            kind.name()
        ),
    )
}

pub(super) fn unreachable_error(kind: ProviderKind) -> AiError {
    AiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "upstream_unreachable",
        format!("the {} provider could not be reached", kind.name()),
    )
}
