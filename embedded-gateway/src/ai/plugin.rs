//! Owns one ai-proxy-advanced request from body to response: the body checks, target
//! selection (by `model_alias`, else over all targets), credential injection and request
//! translation, and the upstream call within the balancer's timeouts. Targets are compiled in
//! `targets.rs`, the pick is `balancer.rs`'s, and the answer is read by `respond.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response};
use serde_json::Value;

use super::AiError;
use super::balancer::Schedule;
use super::chat_body::ChatBody;
use super::facts::{AiFacts, UsageCell};
use super::providers::{self, ProviderKind};
use super::respond::{Respond, passthrough_headers, timeout_error, unreachable_error};
use super::targets::{CompiledTarget, Endpoint, compile_target};
use crate::ai::config::{AiProxyAdvancedConfig, LlmFormat, ParamLocation, ResponseStreaming};
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
    by_alias: HashMap<String, Schedule>,
    all: Schedule,
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
        let body = ChatBody::parse(req.body).map_err(|_| AiError::bad_json())?;
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
        let idx = by_alias.map_or(&self.all, |(_, s)| s).pick();
        let target = &self.targets[idx];
        let requested_model = body_model.as_deref().map(str::to_owned);
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
        let usage = std::sync::Arc::new(UsageCell::default());
        *req.facts = Some(AiFacts {
            requested_model,
            alias: by_alias.map(|(a, _)| a.clone()),
            target: Some(idx),
            provider: target.provider,
            model: model.to_string(),
            stream,
            upstream_latency: None,
            usage: usage.clone(),
            log_statistics: target.log_statistics,
            input_cost: target.options.input_cost,
            output_cost: target.options.output_cost,
        });
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
        if let Some(f) = req.facts.as_mut() {
            f.upstream_latency = Some(upstream_latency);
        }
        let status = response.status();
        let upstream_headers = passthrough_headers(response.headers(), target);
        let mut out = if native {
            self.respond
                .native_response(target, kind, response, stream)
                .await?
        } else if !status.is_success() {
            self.respond.provider_error(target, kind, response).await?
        } else if stream {
            self.respond
                .stream_response(kind, &model, include_usage, response, usage)
                .await?
        } else {
            let want = req.want_usage.then_some(&*usage);
            self.respond
                .json_response(kind, &model, response, want)
                .await?
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
}
