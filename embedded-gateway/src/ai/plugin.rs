//! Owns one ai-proxy-advanced request from body to response: the body checks, target
//! selection (by `model_alias`, else over all targets), credential injection and request
//! translation, and the upstream call within the balancer's timeouts. Targets are compiled in
//! `targets.rs`, the pick is `balancer.rs`'s, and the answer is read by `respond.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response};
use serde_json::Value;

use super::AiError;
use super::balancer::{Breaker, Health, Pick, Pool, Report, Shared};
use super::chat_body::ChatBody;
use super::facts::{AiFacts, Tried, UsageCell};
use super::providers::{self, ProviderKind};
use super::respond::{
    Respond, passthrough_headers, scrub_stream, timeout_error, unreachable_error,
};
use super::targets::{CompiledTarget, Endpoint, compile_target};
use crate::ai::config::{
    AiProxyAdvancedConfig, Algorithm, FailoverCriterion, LatencyStrategy, LlmFormat, ParamLocation,
    ResponseStreaming,
};
use crate::headers::{
    X_KONG_LLM_MODEL, X_KONG_PROXY_LATENCY, X_KONG_RESPONSE_LATENCY, X_KONG_UPSTREAM_LATENCY,
    millis, remove_headers,
};
use crate::upstream::{PlainEndpoint, UpstreamClient, UpstreamResponse};

/// Headers a client could use to smuggle its own provider credential; dropped unless the
/// target allows overriding.
static CREDENTIAL_HEADERS: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

/// The compiled plugin. Built once per snapshot; balancer state lives here.
#[derive(Debug)]
pub struct AiPlugin {
    targets: Vec<CompiledTarget>,
    by_alias: HashMap<String, Pool>,
    all: Pool,
    /// Per-target health, usage and latency, shared with the streams being served.
    state: Arc<Shared>,
    /// `balancer.retries`: attempts after the first.
    retries: u32,
    failover: Vec<FailoverCriterion>,
    /// `balancer.hash_on_header` when the algorithm is consistent-hashing.
    hash_header: Option<HeaderName>,
    pick: Pick,
    /// The algorithm needs token counts of every answer (lowest-usage, lowest-latency tpot).
    needs_usage: bool,
    streaming: ResponseStreaming,
    max_body: u64,
    model_name_header: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    /// Reads the upstream's answer into the client's response.
    respond: Respond,
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
    /// Ask the provider for the stream's usage chunk the client did not ask for (the gateway
    /// needs the figures; the chunk is not passed on).
    ask_usage: bool,
}

/// The upstream request, built for the client that sends it.
enum Outgoing<'t> {
    /// To a fixed plain-http endpoint: headers and body go straight onto a pooled connection.
    Plain(&'t PlainEndpoint, HeaderMap, Vec<u8>),
    /// Anything else, through reqwest (TLS, signing, per-request URLs).
    Request(reqwest::Request),
}

/// One attempt's inputs.
struct Call<'a> {
    client: &'a UpstreamClient,
    target: &'a CompiledTarget,
    model: &'a str,
    body: &'a ChatBody,
    stream: bool,
    native: bool,
    include_usage: bool,
    headers: HeaderMap,
    usage: &'a Arc<UsageCell>,
    want_usage: bool,
    started: Instant,
    report: Report,
}

/// How one attempt ended.
enum Attempt {
    /// The client gets this response (a success, or an error not to fail over on).
    Answered(Response<Body>),
    /// The target failed before anything reached the client.
    Failed {
        criterion: FailoverCriterion,
        /// The request had reached the upstream (see `non_idempotent`).
        sent: bool,
        /// What the client gets if no other target takes the request.
        result: Result<Response<Body>, AiError>,
    },
}

/// Why sending failed.
struct SendFail {
    error: AiError,
    criterion: FailoverCriterion,
    sent: bool,
}

/// The failover criterion an upstream status answers to, if any.
fn status_criterion(status: http::StatusCode) -> Option<FailoverCriterion> {
    Some(match status.as_u16() {
        403 => FailoverCriterion::Http403,
        404 => FailoverCriterion::Http404,
        429 => FailoverCriterion::Http429,
        500 => FailoverCriterion::Http500,
        502 => FailoverCriterion::Http502,
        503 => FailoverCriterion::Http503,
        504 => FailoverCriterion::Http504,
        _ => return None,
    })
}

/// `Retry-After` in seconds (the form providers send), capped at an hour.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: f64 = h
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// True for the errors a read timeout produces.
fn e_timeout(e: &AiError) -> bool {
    e.code == Some("upstream_timeout")
}

/// What the proxy hands the plugin for one request.
pub struct AiRequest<'a> {
    pub client: &'a UpstreamClient,
    /// Client headers after key-auth, hop-by-hop headers already removed.
    pub headers: HeaderMap,
    /// The request body as the client sent it (after `hide_credentials`).
    pub body: Bytes,
    pub started: Instant,
    /// Filled with what the plugin did, for the phases after it.
    pub facts: &'a mut Option<AiFacts>,
    /// Some later phase needs the token usage: read it from non-streamed answers too.
    pub want_usage: bool,
}

impl AiPlugin {
    /// Compiles a config; `overrides` maps provider name → base URL (`serve --upstream-override`).
    pub fn compile(config: &AiProxyAdvancedConfig, overrides: &HashMap<String, String>) -> Self {
        let targets: Vec<CompiledTarget> = config
            .targets
            .iter()
            .map(|t| compile_target(t, overrides))
            .collect();
        let b = &config.balancer;
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in config.targets.iter().enumerate() {
            if let Some(alias) = &t.model.model_alias {
                groups.entry(alias.clone()).or_default().push(i);
            }
        }
        let by_alias = groups
            .into_iter()
            .map(|(alias, members)| (alias, Pool::new(members, &config.targets, b)))
            .collect();
        let everyone: Vec<usize> = (0..targets.len()).collect();
        let state = Arc::new(Shared {
            health: targets.iter().map(|_| Health::default()).collect(),
            breaker: Breaker::new(b),
        });
        Self {
            all: Pool::new(everyone, &config.targets, b),
            state,
            retries: b.retries,
            failover: b.failover_criteria.clone(),
            hash_header: (b.algorithm == Algorithm::ConsistentHashing)
                .then(|| {
                    HeaderName::from_bytes(b.hash_on_header.to_ascii_lowercase().as_bytes()).ok()
                })
                .flatten(),
            pick: Pick {
                tokens: b.tokens_count_strategy,
                latency: b.latency_strategy,
                track: matches!(
                    b.algorithm,
                    Algorithm::LowestUsage | Algorithm::LowestLatency
                ),
            },
            needs_usage: matches!(b.algorithm, Algorithm::LowestUsage)
                || (b.algorithm == Algorithm::LowestLatency
                    && b.latency_strategy == LatencyStrategy::Tpot),
            targets,
            by_alias,
            streaming: config.response_streaming,
            max_body: config.max_request_body_size,
            model_name_header: config.model_name_header,
            connect_timeout: Duration::from_millis(b.connect_timeout.into()),
            read_timeout: Duration::from_millis(b.read_timeout.into()),
            respond: Respond {
                read_timeout: Duration::from_millis(b.read_timeout.into()),
            },
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
                let mut r = e.response();
                r.headers_mut()
                    .insert(X_KONG_RESPONSE_LATENCY, millis(started.elapsed()));
                r
            }
        }
    }

    async fn try_run(&self, req: AiRequest<'_>) -> Result<Response<Body>, AiError> {
        let body = ChatBody::parse(req.body)?; // hardening: UTF-8, depth and object checks
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
        let by_alias = body_model
            .as_deref()
            .and_then(|m| self.by_alias.get_key_value(m));
        let pool = by_alias.map_or(&self.all, |(_, p)| p);
        let key = self
            .hash_header
            .as_ref()
            .and_then(|h| req.headers.get(h))
            .map(|v| v.as_bytes().to_vec());
        let AiRequest {
            client,
            mut headers,
            started,
            facts,
            want_usage,
            ..
        } = req;
        let include_usage = stream && body.include_usage();
        let usage = std::sync::Arc::new(UsageCell::default());
        let mut tried: Vec<usize> = Vec::new();
        let mut last: Option<Result<Response<Body>, AiError>> = None;
        for attempt in 0..=self.retries {
            let Some(idx) = pool.pick(
                &self.state.health,
                &self.state.breaker,
                key.as_deref(),
                &tried,
            ) else {
                break;
            };
            tried.push(idx);
            let target = &self.targets[idx];
            let model: std::borrow::Cow<'_, str> = match (&target.model_name, &body_model) {
                (Some(n), _) => n.as_str().into(),
                (None, Some(m)) => m.as_ref().into(),
                (None, None) => {
                    return Err(AiError::bad_request(
                        "model_not_found",
                        "model parameter not found in request, nor in gateway configuration",
                    ));
                }
            };
            let facts = facts.get_or_insert_with(|| AiFacts {
                alias: by_alias.map(|(a, _)| a.clone()),
                stream,
                usage: usage.clone(),
                ..AiFacts::default()
            });
            facts.target = Some(idx);
            facts.provider = target.provider;
            facts.model = model.to_string();
            facts.log_statistics = target.log_statistics;
            facts.input_cost = target.options.input_cost;
            facts.output_cost = target.options.output_cost;
            // `log_payloads`: what the log needs, kept only when asked for.
            facts.log_payloads = target.log_payloads;
            if target.log_payloads {
                facts.request_payload = Some(body.raw().clone());
                facts.secrets = target.secrets.texts();
            }
            let last_chance = attempt == self.retries || tried.len() == pool.members.len();
            let attempt_headers = if last_chance {
                std::mem::take(&mut headers)
            } else {
                headers.clone()
            };
            let report = Report::new(self.state.clone(), idx, self.pick, target.cost());
            let call = Call {
                client,
                target,
                model: &model,
                body: &body,
                stream,
                native,
                include_usage,
                headers: attempt_headers,
                usage: &usage,
                want_usage: want_usage || self.needs_usage,
                started,
                report,
            };
            match self.attempt(call, facts).await {
                Attempt::Answered(r) => return Ok(r),
                Attempt::Failed {
                    criterion,
                    sent,
                    result,
                } => {
                    if !last_chance && self.fails_over(criterion, sent) {
                        facts.tried.push(Tried {
                            provider: target.provider,
                            model: model.to_string(),
                        });
                        self.state.health[idx]
                            .failovers
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(
                            provider = target.provider,
                            model = %model,
                            ?criterion,
                            "ai-proxy-advanced: failing over to the next target"
                        );
                        last = Some(result);
                        continue;
                    }
                    return result;
                }
            }
        }
        match last {
            Some(r) => r,
            None => Err(AiError::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "no_healthy_target",
                "every target of this route is unavailable (circuit breaker open or cooling down after a 429); try again later",
            )),
        }
    }

    /// Does a failure of this kind go on to the next target? As nginx's
    /// `proxy_next_upstream`: the criterion must be listed, and a request that already reached
    /// the upstream (every LLM call is a POST) is passed on only with `non_idempotent`.
    fn fails_over(&self, criterion: FailoverCriterion, sent: bool) -> bool {
        self.failover.contains(&criterion)
            && (!sent || self.failover.contains(&FailoverCriterion::NonIdempotent))
    }

    /// One try against one target.
    async fn attempt(&self, call: Call<'_>, facts: &mut AiFacts) -> Attempt {
        let Call {
            client,
            target,
            model,
            body,
            stream,
            native,
            include_usage,
            headers,
            usage,
            want_usage,
            started,
            report,
        } = call;
        let kind = target.kind;
        let prepared = async {
            let endpoint = target.endpoint(model, stream)?;
            let bearer = match &target.tokens {
                Some(t) => Some(t.bearer(client.reqwest()).await?),
                None => None,
            };
            let aws = match &target.signer {
                Some(signer) => Some(signer.resolve(client.reqwest()).await?),
                None => None,
            };
            self.build_upstream(
                target,
                kind,
                endpoint,
                body,
                Upstream {
                    model,
                    stream,
                    headers,
                    native,
                    bearer,
                    aws,
                    ask_usage: stream
                        && !include_usage
                        && !native
                        && (target.log_statistics || want_usage)
                        && kind.asks_stream_usage(),
                },
            )
        };
        let upstream = match prepared.await {
            Ok(u) => u,
            Err(e) => return Attempt::Answered(e.response()),
        };
        let sent = Instant::now();
        let proxy_latency = sent.duration_since(started);
        let response = match self.send(client, upstream, kind).await {
            Ok(r) => r,
            Err(f) => {
                report.failure();
                return Attempt::Failed {
                    criterion: f.criterion,
                    sent: f.sent,
                    result: Err(f.error),
                };
            }
        };
        let upstream_latency = sent.elapsed();
        facts.upstream_latency = Some(upstream_latency);
        let status = response.status();
        if let Some(criterion) = status_criterion(status) {
            if status == http::StatusCode::TOO_MANY_REQUESTS
                && let Some(wait) = retry_after(response.headers())
            {
                report.cool_down(wait);
            }
            if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
                report.failure();
            }
            if self.fails_over(criterion, true) {
                // The answer is not passed on; the next target gets the request.
                return Attempt::Failed {
                    criterion,
                    sent: true,
                    result: self
                        .respond
                        .provider_error(target, kind, response)
                        .await
                        .map(|r| {
                            self.finish(r, target, model, status, upstream_latency, proxy_latency)
                        }),
                };
            }
        } else if status.is_server_error() {
            report.failure();
        }
        let upstream_headers = passthrough_headers(response.headers(), target);
        let out = if native {
            self.respond
                .native_response(target, kind, response, stream)
                .await
                .map_err(|e| (e, false))
        } else if !status.is_success() {
            self.respond
                .provider_error(target, kind, response)
                .await
                .map_err(|e| (e, false))
        } else if stream {
            self.respond
                .stream_response(kind, model, include_usage, response, usage.clone(), report)
                .await
                .map(|r| r.map(|b| scrub_stream(b, target.secrets.clone()))) // hardening
        } else {
            let want = want_usage.then_some(&**usage);
            match self
                .respond
                .json_response(kind, model, response, want, &target.secrets) // hardening
                .await
            {
                Ok(r) => {
                    report.success(usage.get());
                    Ok(r)
                }
                Err(e) => {
                    report.failure();
                    let timed_out = e_timeout(&e);
                    Err((e, timed_out))
                }
            }
        };
        match out {
            Ok(mut r) => {
                let h = r.headers_mut();
                for (k, v) in upstream_headers {
                    h.entry(k).or_insert(v);
                }
                Attempt::Answered(self.finish(
                    r,
                    target,
                    model,
                    status,
                    upstream_latency,
                    proxy_latency,
                ))
            }
            Err((e, timed_out)) => Attempt::Failed {
                criterion: if timed_out {
                    FailoverCriterion::Timeout
                } else {
                    FailoverCriterion::Error
                },
                sent: true,
                result: Err(e),
            },
        }
    }

    /// The headers every answer from a target carries.
    fn finish(
        &self,
        mut out: Response<Body>,
        target: &CompiledTarget,
        model: &str,
        status: http::StatusCode,
        upstream_latency: Duration,
        proxy_latency: Duration,
    ) -> Response<Body> {
        let h = out.headers_mut();
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
        out
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
            ask_usage,
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
        let bytes = if ask_usage {
            providers::openai::ask_stream_usage(bytes)
        } else {
            bytes
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
    ) -> Result<UpstreamResponse, SendFail> {
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
            Err(_) => Err(SendFail {
                error: timeout_error(kind),
                criterion: FailoverCriterion::Timeout,
                sent: true,
            }),
            Ok(Err(e)) => {
                let criterion = if e.is_timeout() {
                    FailoverCriterion::Timeout
                } else if e.is_invalid_response() {
                    FailoverCriterion::InvalidHeader
                } else {
                    FailoverCriterion::Error
                };
                if criterion == FailoverCriterion::Timeout {
                    return Err(SendFail {
                        error: timeout_error(kind),
                        criterion,
                        sent: !e.is_connect(),
                    });
                }
                tracing::warn!(provider = kind.name(), error = %e, "upstream request failed");
                Err(SendFail {
                    error: unreachable_error(kind),
                    criterion,
                    sent: !e.is_connect(),
                })
            }
            Ok(Ok(r)) => Ok(r),
        }
    }
}
