//! Owns the compiled `ai-proxy-advanced` plugin (and `ai-proxy`, its single-target form):
//! target selection by `model_alias` or weighted round-robin, credential injection, the
//! upstream call with the balancer's timeouts, and response/stream translation back to OpenAI.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use serde_json::Value;

use super::AiError;
use super::chat_body::ChatBody;
use super::providers::bedrock::Signer;
use super::providers::{self, BearerSource, FrameDecoder, ProviderKind, StreamTranslator};
use super::sse::encode_data;
use super::types::ErrorEnvelope;
use super::upstream::{PlainEndpoint, UpstreamClient, UpstreamResponse};
use crate::plugins::ai_proxy::{
    AiProxyAdvancedConfig, LlmFormat, ModelOptions, ParamLocation, Provider, ResponseStreaming,
    Target,
};
use crate::proxy::{
    X_KONG_LLM_MODEL, X_KONG_PROXY_LATENCY, X_KONG_RESPONSE_LATENCY, X_KONG_UPSTREAM_LATENCY,
    millis, remove_headers,
};

/// Largest provider error body read before mapping it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Headers a client could use to smuggle its own provider credential; dropped unless the
/// target allows overriding.
static CREDENTIAL_HEADERS: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

/// One target, with everything a request needs precomputed.
#[derive(Debug)]
struct CompiledTarget {
    kind: ProviderKind,
    provider: &'static str,
    model_name: Option<String>,
    /// `X-Kong-LLM-Model` for a configured model name.
    model_header: Option<HeaderValue>,
    /// The provider endpoint, or why this target's config cannot name one.
    url: Result<url::Url, String>,
    /// The endpoint resolved once, when it is plain `http` and the same for every request
    /// (no model in the path, no query credential, no request signing).
    plain: Option<PlainEndpoint>,
    options: ModelOptions,
    /// SigV4 signing (Bedrock).
    signer: Option<Signer>,
    /// Minted access tokens (Vertex service account, Azure Entra ID).
    tokens: Option<BearerSource>,
    auth_header: Option<(HeaderName, HeaderValue)>,
    auth_param: Option<(String, String, ParamLocation)>,
    allow_override: bool,
    /// Secret strings scrubbed from any provider text passed downstream.
    secrets: Vec<String>,
}

impl CompiledTarget {
    /// Where one request goes, or the 500 for a target that cannot be used.
    fn endpoint(&self, model: &str, stream: bool) -> Result<Endpoint<'_>, AiError> {
        match (&self.url, &self.plain) {
            (Ok(_), Some(ep)) => Ok(Endpoint::Plain(ep)),
            (Ok(u), None) => Ok(Endpoint::Url(self.kind.request_url(u, model, stream))),
            (Err(why), _) => Err(AiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "provider_misconfigured",
                why.clone(),
            )),
        }
    }
}

/// Where one request goes.
enum Endpoint<'t> {
    /// The target's fixed plain-http endpoint.
    Plain(&'t PlainEndpoint),
    /// A URL built for this request.
    Url(url::Url),
}

/// A weighted round-robin order over target indices, walked by an atomic counter.
#[derive(Debug)]
struct Schedule {
    order: Vec<usize>,
    next: AtomicUsize,
}

impl Schedule {
    /// Smooth weighted round-robin (nginx's algorithm) over `members`, expanded once.
    fn new(members: &[usize], targets: &[Target]) -> Self {
        let weights: Vec<i64> = members
            .iter()
            .map(|&i| i64::from(targets[i].weight.max(1)))
            .collect();
        let g = weights.iter().copied().fold(0, gcd).max(1);
        let reduced: Vec<i64> = weights.iter().map(|w| w / g).collect();
        let total: i64 = reduced.iter().sum();
        let len = total.clamp(1, 100_000) as usize;
        let mut current = vec![0i64; members.len()];
        let mut order = Vec::with_capacity(len);
        for _ in 0..len {
            let mut best = 0;
            for (i, w) in reduced.iter().enumerate() {
                current[i] += w;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(members[best]);
        }
        Self {
            order,
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.order[n % self.order.len()]
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The compiled plugin. Built once per snapshot; balancer state lives here.
#[derive(Debug)]
pub struct AiPlugin {
    targets: Vec<CompiledTarget>,
    by_alias: HashMap<String, Schedule>,
    all: Schedule,
    streaming: ResponseStreaming,
    max_body: u64,
    model_name_header: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    /// `llm_format` other than `openai`: the client speaks the provider's own API.
    native: Option<LlmFormat>,
}

/// Per-request inputs of [`AiPlugin::build_upstream`].
struct Upstream<'a> {
    model: &'a str,
    stream: bool,
    /// Client headers (credentials are stripped unless the target allows overriding).
    headers: HeaderMap,
    /// `llm_format` native: the body passes through untranslated.
    native: bool,
    /// A minted `Authorization` value (Vertex, Azure Entra ID) that wins over all others.
    bearer: Option<HeaderValue>,
    /// Credentials for SigV4 (Bedrock), resolved for this request.
    aws: Option<aws_credential_types::Credentials>,
}

/// The upstream request, built for the client that sends it.
enum Outgoing<'t> {
    /// To a fixed plain-http endpoint: headers and body go straight onto a pooled connection.
    Plain(&'t PlainEndpoint, HeaderMap, Vec<u8>),
    /// Anything else, through reqwest (TLS, signing, per-request URLs).
    Request(reqwest::Request),
}

/// What the proxy hands the plugin for one request.
pub struct AiRequest<'a> {
    pub client: &'a UpstreamClient,
    /// Client headers after key-auth, hop-by-hop headers already removed.
    pub headers: HeaderMap,
    /// The request body as the client sent it (after `hide_credentials`).
    pub body: Bytes,
    pub started: Instant,
}

impl AiPlugin {
    /// Compiles a config; `overrides` maps provider name → base URL (`serve --upstream-override`).
    pub fn compile(config: &AiProxyAdvancedConfig, overrides: &HashMap<String, String>) -> Self {
        let targets: Vec<CompiledTarget> = config
            .targets
            .iter()
            .map(|t| compile_target(t, overrides))
            .collect();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in config.targets.iter().enumerate() {
            if let Some(alias) = &t.model.model_alias {
                groups.entry(alias.clone()).or_default().push(i);
            }
        }
        let by_alias = groups
            .into_iter()
            .map(|(alias, members)| (alias, Schedule::new(&members, &config.targets)))
            .collect();
        let everyone: Vec<usize> = (0..targets.len()).collect();
        let b = &config.balancer;
        Self {
            all: Schedule::new(&everyone, &config.targets),
            targets,
            by_alias,
            streaming: config.response_streaming,
            max_body: config.max_request_body_size,
            model_name_header: config.model_name_header,
            connect_timeout: Duration::from_millis(b.connect_timeout.into()),
            read_timeout: Duration::from_millis(b.read_timeout.into()),
            write_timeout: Duration::from_millis(b.write_timeout.into()),
            native: (config.llm_format != LlmFormat::Openai).then_some(config.llm_format),
        }
    }

    /// `max_request_body_size` in bytes; 0 means unlimited.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Proxies one OpenAI-format chat request; every failure is an OpenAI-envelope response.
    pub async fn run(&self, req: AiRequest<'_>) -> Response<Body> {
        let started = req.started;
        match self.try_run(req).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = error_response(&e);
                r.headers_mut()
                    .insert(X_KONG_RESPONSE_LATENCY, millis(started.elapsed()));
                r
            }
        }
    }

    async fn try_run(&self, req: AiRequest<'_>) -> Result<Response<Body>, AiError> {
        let body = ChatBody::parse(req.body).map_err(|_| bad_json())?;
        let native = self.native.is_some();
        if !native && !body.has_messages() {
            return Err(AiError::bad_request(
                "missing_messages",
                "request body doesn't contain valid prompts: 'messages' must be a non-empty array",
            ));
        }
        let asked =
            body.stream() && !matches!(self.native, Some(LlmFormat::Gemini | LlmFormat::Bedrock));
        let stream = match self.streaming {
            ResponseStreaming::Deny if asked => {
                return Err(AiError::bad_request(
                    "streaming_disabled",
                    "response streaming is not enabled for this LLM",
                ));
            }
            ResponseStreaming::Always => true,
            _ => asked,
        };
        let body_model = body.model().filter(|m| !m.is_empty());
        let idx = body_model
            .as_deref()
            .and_then(|m| self.by_alias.get(m))
            .unwrap_or(&self.all)
            .pick();
        let target = &self.targets[idx];
        let model: std::borrow::Cow<'_, str> = match (&target.model_name, body_model) {
            (Some(n), _) => n.as_str().into(),
            (None, Some(m)) => m,
            (None, None) => {
                return Err(AiError::bad_request(
                    "model_not_found",
                    "model parameter not found in request, nor in gateway configuration",
                ));
            }
        };
        let include_usage = stream && body.include_usage();
        let kind = target.kind;
        let endpoint = target.endpoint(&model, stream)?;
        let bearer = match &target.tokens {
            Some(t) => Some(t.bearer(req.client.reqwest()).await?),
            None => None,
        };
        let aws = match &target.signer {
            Some(signer) => Some(signer.resolve(req.client.reqwest()).await?),
            None => None,
        };
        let upstream = self.build_upstream(
            target,
            kind,
            endpoint,
            &body,
            Upstream {
                model: &model,
                stream,
                headers: req.headers,
                native,
                bearer,
                aws,
            },
        )?;
        let sent = Instant::now();
        let proxy_latency = sent.duration_since(req.started);
        let response = self.send(req.client, upstream, kind).await?;
        let upstream_latency = sent.elapsed();
        let status = response.status();
        let upstream_headers = passthrough_headers(response.headers(), target);
        let mut out = if native {
            self.native_response(target, kind, response, stream).await?
        } else if !status.is_success() {
            self.provider_error(target, kind, response).await?
        } else if stream {
            self.stream_response(kind, &model, include_usage, response)
                .await?
        } else {
            self.json_response(kind, &model, response).await?
        };
        let h = out.headers_mut();
        for (k, v) in upstream_headers {
            h.entry(k).or_insert(v);
        }
        if status.is_success() && self.model_name_header {
            let v = target
                .model_header
                .clone()
                .or_else(|| HeaderValue::from_str(&format!("{}/{model}", target.provider)).ok());
            if let Some(v) = v {
                h.insert(X_KONG_LLM_MODEL, v);
            }
        }
        h.insert(X_KONG_UPSTREAM_LATENCY, millis(upstream_latency));
        h.insert(X_KONG_PROXY_LATENCY, millis(proxy_latency));
        Ok(out)
    }

    fn build_upstream<'t>(
        &self,
        target: &'t CompiledTarget,
        kind: ProviderKind,
        mut endpoint: Endpoint<'t>,
        body: &ChatBody,
        up: Upstream<'_>,
    ) -> Result<Outgoing<'t>, AiError> {
        let Upstream {
            model,
            stream,
            mut headers,
            native,
            bearer,
            aws,
        } = up;
        if !target.allow_override {
            remove_headers(&mut headers, |k| CREDENTIAL_HEADERS.contains(k));
        }
        if let Some((name, value)) = &target.auth_header
            && !(target.allow_override && headers.contains_key(name))
        {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(v) = bearer {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let mut body_param = None;
        if let Some((name, value, location)) = &target.auth_param {
            match location {
                ParamLocation::Query => {
                    if let Endpoint::Url(url) = &mut endpoint {
                        let present = url.query_pairs().any(|(k, _)| k == name.as_str());
                        if !(target.allow_override && present) {
                            url.query_pairs_mut().append_pair(name, value);
                        }
                    }
                }
                ParamLocation::Body => body_param = Some((name, value)),
            }
        }
        kind.add_headers(&target.options, &mut headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let fast = match (native, body_param) {
            (false, None) => kind.rewrite_request(body, model, &target.options, stream),
            _ => None,
        };
        let bytes = match fast {
            Some(b) => b,
            None => {
                let mut map = body.to_map();
                if let Some((name, value)) = body_param
                    && !(target.allow_override && map.contains_key(name))
                {
                    map.insert(name.clone(), Value::String(value.clone()));
                }
                if native {
                    providers::native_request(kind, map, model, stream)?
                } else {
                    kind.build_request(map, model, &target.options, stream)?
                }
            }
        };
        let url = match endpoint {
            Endpoint::Plain(ep) => return Ok(Outgoing::Plain(ep, headers, bytes)),
            Endpoint::Url(url) => url,
        };
        let mut r = reqwest::Request::new(reqwest::Method::POST, url);
        *r.headers_mut() = headers;
        if let (Some(signer), Some(creds)) = (&target.signer, &aws) {
            signer.sign(&mut r, &bytes, creds)?;
        }
        *r.body_mut() = Some(bytes.into());
        Ok(Outgoing::Request(r))
    }

    /// Sends the request; connect + write + read timeouts bound the wait for response headers.
    async fn send(
        &self,
        client: &UpstreamClient,
        req: Outgoing<'_>,
        kind: ProviderKind,
    ) -> Result<UpstreamResponse, AiError> {
        let budget = self.connect_timeout + self.write_timeout + self.read_timeout;
        let sent = async {
            match req {
                Outgoing::Plain(ep, headers, body) => {
                    client
                        .send_plain(ep, http::Method::POST, headers, body.into())
                        .await
                }
                Outgoing::Request(r) => client.execute(r).await,
            }
        };
        match tokio::time::timeout(budget, sent).await {
            Err(_) => Err(timeout_error(kind)),
            Ok(Err(e)) if e.is_timeout() => Err(timeout_error(kind)),
            Ok(Err(e)) => {
                tracing::warn!(provider = kind.name(), error = %e, "upstream request failed");
                Err(unreachable_error(kind))
            }
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Reads the whole body, each read bounded by `read_timeout`, up to `limit` bytes.
    async fn read_body(
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

    async fn json_response(
        &self,
        kind: ProviderKind,
        model: &str,
        response: UpstreamResponse,
    ) -> Result<Response<Body>, AiError> {
        let body = self.read_body(response, kind, usize::MAX).await?;
        let converted = kind.convert_response(body, model)?;
        Ok(json(StatusCode::OK, converted))
    }

    /// `llm_format` native: the provider's own body, status and stream pass through
    /// untranslated (configured secrets scrubbed from bodies that are read whole).
    async fn native_response(
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
            Response::new(Body::from_stream(body))
        } else {
            let limit = if status.is_success() {
                usize::MAX
            } else {
                MAX_ERROR_BODY
            };
            let mut body = self.read_body(response, kind, limit).await?;
            if !status.is_success() {
                body = scrub(body, &target.secrets);
            }
            Response::new(Body::from(body))
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
    async fn provider_error(
        &self,
        target: &CompiledTarget,
        kind: ProviderKind,
        response: UpstreamResponse,
    ) -> Result<Response<Body>, AiError> {
        let status = response.status();
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        let body = self.read_body(response, kind, MAX_ERROR_BODY).await?;
        let mut env = kind.map_error(status, &body);
        for s in &target.secrets {
            if env.error.message.contains(s.as_str()) {
                env.error.message = env.error.message.replace(s.as_str(), "[redacted]");
            }
        }
        let mut r = json(status, env.to_bytes());
        if let Some(v) = retry_after {
            r.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        Ok(r)
    }

    /// Streams SSE downstream as it arrives. The 200 goes out only after the first upstream
    /// read; a failure after that ends the stream with an error event.
    async fn stream_response(
        &self,
        kind: ProviderKind,
        model: &str,
        include_usage: bool,
        response: UpstreamResponse,
    ) -> Result<Response<Body>, AiError> {
        let mut decoder = FrameDecoder::for_response(kind, response.headers().get(CONTENT_TYPE));
        let mut upstream = body_stream(response);
        let mut translator = kind.stream_translator(model, include_usage);
        let mut first = Vec::new();
        while first.is_empty() && !translator.is_done() {
            match within(self.read_timeout, upstream.next()).await {
                Err(_) => return Err(timeout_error(kind)),
                Ok(None) => return Err(unreachable_error(kind)),
                Ok(Some(Err(e))) => {
                    tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream stream failed");
                    return Err(unreachable_error(kind));
                }
                Ok(Some(Ok(chunk))) => translate(&mut decoder, &mut translator, &chunk, &mut first),
            }
        }
        let read_timeout = self.read_timeout;
        let body = async_stream::stream! {
            for frame in first {
                yield Ok::<Bytes, std::convert::Infallible>(frame);
            }
            let mut out = Vec::new();
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
                            out.push(stream_error(kind, "the upstream provider closed the stream before it finished"));
                        }
                        for frame in out.drain(..) {
                            yield Ok(frame);
                        }
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        tracing::warn!(provider = kind.name(), error = %e.without_url(), "upstream stream broke");
                        out.push(stream_error(kind, "the connection to the upstream provider broke mid-stream"));
                        for frame in out.drain(..) {
                            yield Ok(frame);
                        }
                        break;
                    }
                    Err(_) => {
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

fn passthrough_headers(src: &HeaderMap, target: &CompiledTarget) -> Vec<(HeaderName, HeaderValue)> {
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
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `body` with every configured secret replaced by `[redacted]`.
fn scrub(body: Bytes, secrets: &[String]) -> Bytes {
    let Ok(text) = std::str::from_utf8(&body) else {
        return body;
    };
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return body;
    }
    let mut text = text.to_owned();
    for s in secrets {
        text = text.replace(s.as_str(), "[redacted]");
    }
    Bytes::from(text)
}

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

fn compile_target(t: &Target, overrides: &HashMap<String, String>) -> CompiledTarget {
    let kind = ProviderKind::for_target(t.model.provider, &t.model.options);
    let provider = t.model.provider.as_str();
    let mut url = kind.endpoint(
        &t.model.options,
        overrides.get(provider).map(String::as_str),
    );
    let tokens = match BearerSource::from_auth(&t.auth) {
        Some(Ok(mut ts)) => {
            if let (BearerSource::Gcp(g), Some(base)) = (
                &mut ts,
                overrides.get(crate::ai::providers::GCP_OAUTH_OVERRIDE),
            ) {
                g.redirect_token_exchange(base);
            }
            Some(ts)
        }
        Some(Err(why)) => {
            url = Err(why);
            None
        }
        None => None,
    };
    let signer =
        (t.model.provider == Provider::Bedrock).then(|| Signer::new(&t.auth, &t.model.options));
    let a = &t.auth;
    let auth_header = match (&a.header_name, &a.header_value) {
        (Some(n), Some(v)) => match (
            HeaderName::try_from(n.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                Some((n, v))
            }
            _ => None,
        },
        _ => None,
    };
    let auth_param = match (&a.param_name, &a.param_value, a.param_location) {
        (Some(n), Some(v), Some(l)) => Some((n.clone(), v.clone(), l)),
        _ => None,
    };
    let mut secrets = Vec::new();
    if let Some(v) = &a.header_value {
        secrets.push(v.clone());
        if let Some(token) = v.strip_prefix("Bearer ") {
            secrets.push(token.to_owned());
        }
    }
    if let Some(v) = &a.param_value {
        secrets.push(v.clone());
    }
    secrets.extend(a.aws_secret_access_key.iter().cloned());
    secrets.extend(a.azure_client_secret.iter().cloned());
    secrets.retain(|s| s.len() >= 4);
    let fixed_url = url.as_ref().ok().filter(|u| {
        kind.request_url(u, "a", false) == kind.request_url(u, "b", true)
            && signer.is_none()
            && !matches!(auth_param, Some((_, _, ParamLocation::Query)))
    });
    CompiledTarget {
        kind,
        provider,
        plain: fixed_url.and_then(PlainEndpoint::new),
        model_header: t
            .model
            .name
            .as_ref()
            .and_then(|n| HeaderValue::from_str(&format!("{provider}/{n}")).ok()),
        model_name: t.model.name.clone(),
        url,
        options: t.model.options.clone(),
        signer,
        tokens,
        auth_header,
        auth_param,
        allow_override: a.allow_override,
        secrets,
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An [`AiError`] as an OpenAI-envelope response.
pub fn error_response(e: &AiError) -> Response<Body> {
    json(e.status, e.envelope().to_bytes())
}

/// The 400 for a body that is not a JSON object.
pub fn bad_json() -> AiError {
    AiError::bad_request(
        "invalid_json",
        "content-type header does not match request body, or bad JSON formatting: the body must be a JSON object",
    )
}

/// The 413 for a body over `max_request_body_size`.
pub fn too_large(limit: u64) -> AiError {
    AiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        format!("request body is larger than the allowed {limit} bytes (max_request_body_size)"),
    )
}

/// The upstream read did not finish within its limit.
struct TimedOut;

/// `tokio::time::timeout`, but the timer is armed only when `fut` is not ready at once: a
/// response body that is already buffered costs no clock read and no timer registration.
async fn within<F: Future>(limit: Duration, fut: F) -> Result<F::Output, TimedOut> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => tokio::time::timeout(limit, fut).await.map_err(|_| TimedOut),
    }
}

fn timeout_error(kind: ProviderKind) -> AiError {
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

fn unreachable_error(kind: ProviderKind) -> AiError {
    AiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "upstream_unreachable",
        format!("the {} provider could not be reached", kind.name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .map(|w| {
                serde_json::from_value(serde_json::json!({
                    "route_type": "llm/v1/chat",
                    "model": {"provider": "openai", "name": "m"},
                    "weight": w
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn round_robin_follows_weights() {
        let t = targets(&[100, 100]);
        let s = Schedule::new(&[0, 1], &t);
        let picks: Vec<usize> = (0..4).map(|_| s.pick()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        let t = targets(&[300, 100]);
        let s = Schedule::new(&[0, 1], &t);
        let picks: Vec<usize> = (0..8).map(|_| s.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 6);
    }
}
