//! Owns the admin API client: Kong Admin API and Gantry control-plane calls over reqwest, with
//! `--headers`, `Kong-Admin-Token` and a timeout. Errors name the admin address and carry the
//! server's message; they never include request bodies (which may hold secrets).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use embedded_gateway::model::ControlPlane;
use embedded_gateway::store::batch::BatchRequest;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// `--verbose`: 0 quiet; 1 or more logs one line per request and one per response on stderr.
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Sets the `--verbose` level for every client of this process.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

fn verbose() -> bool {
    VERBOSITY.load(Ordering::Relaxed) > 0
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid admin address '{0}': expected a URL like http://localhost:8001")]
    Address(String),
    /// Names the header only: its value may be a secret.
    #[error("invalid header {0}: expected KEY:VALUE (the value is not shown)")]
    Header(String),
    #[error("{0}")]
    Tls(String),
    #[error("cannot reach the admin API at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The connection was made, then broke before the answer arrived: the request may have
    /// reached the gateway.
    #[error("the admin API at {addr} closed the connection before answering: {reason}")]
    Broken { addr: String, reason: String },
    #[error("admin API {method} {path} answered {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        /// The full JSON error body (Kong shape).
        body: Box<Value>,
    },
    #[error("admin API {method} {path} answered with a body that is not JSON")]
    Decode { method: String, path: String },
}

impl ClientError {
    /// The HTTP status for `Status` errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How to reach the admin API.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub addr: String,
    /// `KEY:VALUE` strings from `--headers`.
    pub headers: Vec<String>,
    pub token: Option<String>,
    pub timeout: Duration,
    pub tls: crate::tls::TlsOptions,
}

impl ClientOptions {
    /// From the shared admin flags: `--kong-addr`/`DECK_KONG_ADDR`, then `GANTRY_ADMIN_URL`,
    /// then `http://localhost:8001`.
    pub fn from_args(args: &crate::cli::AdminArgs) -> Self {
        Self {
            addr: args
                .kong_addr
                .clone()
                .or_else(|| std::env::var("GANTRY_ADMIN_URL").ok())
                .unwrap_or_else(|| "http://localhost:8001".to_owned()),
            headers: args.headers.clone(),
            token: args.kong_admin_token.clone(),
            timeout: Duration::from_secs(args.timeout.max(1)),
            tls: crate::tls::TlsOptions::from_args(&args.tls),
        }
    }
}

/// The result of a batch.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BatchResponse {
    pub revision: u64,
}

#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    /// Names of the headers set by flags, for `--verbose`.
    header_names: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl AdminClient {
    pub fn new(opts: &ClientOptions) -> Result<Self, ClientError> {
        let base = opts.addr.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base).map_err(|_| ClientError::Address(opts.addr.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Address(opts.addr.clone()));
        }
        let (builder, rewritten) = opts
            .tls
            .configure(reqwest::Client::builder(), &parsed)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let base = rewritten.map_or(base, |b| b.trim_end_matches('/').to_owned());
        let mut headers = HeaderMap::new();
        for (i, raw) in opts.headers.iter().enumerate() {
            let (k, v) = raw
                .split_once(':')
                .ok_or_else(|| ClientError::Header(format!("#{} of --headers", i + 1)))?;
            let named = || ClientError::Header(format!("'{}'", k.trim()));
            let name = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| named())?;
            let mut value = HeaderValue::from_str(v.trim()).map_err(|_| named())?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if let Some(token) = &opts.token {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| ClientError::Header("'Kong-Admin-Token'".into()))?;
            value.set_sensitive(true);
            headers.insert("kong-admin-token", value);
        }
        let http = builder
            .default_headers(headers.clone())
            .timeout(opts.timeout)
            .build()
            .map_err(|e| ClientError::Connect {
                addr: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
            header_names: headers.keys().map(|k| k.as_str().to_owned()).collect(),
            http,
            timeout: opts.timeout,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        self.send_within(method, path, body, self.timeout).await
    }

    async fn send_within(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        if verbose() {
            self.log_request(&method, &url, body.is_some());
        }
        let res = req.send().await.map_err(|e| self.transport(&e))?;
        let status = res.status().as_u16();
        if verbose() {
            eprintln!(
                "< {status} {method} {url} ({} ms)",
                started.elapsed().as_millis()
            );
        }
        let text = res.text().await.map_err(|e| self.transport(&e))?;
        if status == 204 || (status < 300 && text.is_empty()) {
            return Ok(None);
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status >= 300 {
            let body = parsed.unwrap_or(Value::Null);
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| status_text(status));
            return Err(ClientError::Status {
                method: method.to_string(),
                path: path.to_owned(),
                status,
                message,
                body: Box::new(body),
            });
        }
        parsed.map(Some).ok_or_else(|| ClientError::Decode {
            method: method.to_string(),
            path: path.to_owned(),
        })
    }

    /// The `--verbose` request line, with the header names the flags set (values masked).
    fn log_request(&self, method: &reqwest::Method, url: &str, has_body: bool) {
        let mut line = format!("> {method} {url}");
        for name in &self.header_names {
            line.push_str(&format!(" [{name}: [masked]]"));
        }
        if has_body {
            line.push_str(" (JSON body not logged)");
        }
        eprintln!("{line}");
    }

    async fn send_value(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        Ok(self.send(method, path, body).await?.unwrap_or(Value::Null))
    }

    /// `GET /`: version, configuration and plugins.
    pub async fn root(&self) -> Result<Value, ClientError> {
        self.send_value(reqwest::Method::GET, "/", None).await
    }

    /// `GET /status`: health and the revision the proxy serves.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.send_value(reqwest::Method::GET, "/status", None).await
    }

    /// GET one resource; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ClientError> {
        match self.send(reqwest::Method::GET, path, None).await {
            Err(e) if e.status() == Some(404) => Ok(None),
            other => other,
        }
    }

    /// Every item of a Kong list, following `next`. `tags` is Kong's `?tags=` value.
    pub async fn list_all(
        &self,
        path: &str,
        tags: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        link.append_pair("size", "1000");
        if let Some(t) = tags {
            link.append_pair("tags", t);
        }
        let mut next = Some(format!("{path}?{}", link.finish()));
        let mut out = Vec::new();
        while let Some(p) = next.take() {
            let page = self.send_value(reqwest::Method::GET, &p, None).await?;
            if let Some(items) = page.get("data").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            next = page.get("next").and_then(Value::as_str).map(str::to_owned);
        }
        Ok(out)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send_value(reqwest::Method::POST, path, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send_value(reqwest::Method::PATCH, path, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(reqwest::Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// The path prefix of a control plane's entities: `""` (served plane) or
    /// `/v2/control-planes/{id}/core-entities`.
    pub fn entities_prefix(cp_id: Option<&str>) -> String {
        cp_id
            .map(|id| format!("/v2/control-planes/{id}/core-entities"))
            .unwrap_or_default()
    }

    pub async fn control_planes(&self) -> Result<Vec<ControlPlane>, ClientError> {
        let page = self
            .send_value(
                reqwest::Method::GET,
                "/v2/control-planes?page[size]=1000",
                None,
            )
            .await?;
        self.decode_list(page, "/v2/control-planes")
    }

    fn decode_list(&self, page: Value, path: &str) -> Result<Vec<ControlPlane>, ClientError> {
        serde_json::from_value(page.get("data").cloned().unwrap_or(json!([]))).map_err(|_| {
            ClientError::Decode {
                method: "GET".into(),
                path: path.into(),
            }
        })
    }

    pub async fn control_plane_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ControlPlane>, ClientError> {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter[name][eq]", name)
            .finish();
        let path = format!("/v2/control-planes?{q}");
        let page = self.send_value(reqwest::Method::GET, &path, None).await?;
        Ok(self.decode_list(page, &path)?.into_iter().next())
    }

    pub async fn create_control_plane(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<ControlPlane, ClientError> {
        let v = self
            .post(
                "/v2/control-planes",
                &json!({"name": name, "labels": labels}),
            )
            .await?;
        self.decode_cp(v, "/v2/control-planes")
    }

    /// PATCH a control plane; a label mapped to `None` is removed.
    pub async fn patch_control_plane_labels(
        &self,
        id: &str,
        labels: &std::collections::BTreeMap<String, Option<String>>,
    ) -> Result<ControlPlane, ClientError> {
        let path = format!("/v2/control-planes/{id}");
        let v = self.patch(&path, &json!({"labels": labels})).await?;
        self.decode_cp(v, &path)
    }

    pub async fn delete_control_plane(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v2/control-planes/{id}")).await
    }

    fn decode_cp(&self, v: Value, path: &str) -> Result<ControlPlane, ClientError> {
        serde_json::from_value(v).map_err(|_| ClientError::Decode {
            method: "POST".into(),
            path: path.into(),
        })
    }

    /// Applies a batch atomically to a control plane (`None`: the served one).
    pub async fn batch(
        &self,
        cp_id: Option<&str>,
        req: &BatchRequest,
    ) -> Result<BatchResponse, ClientError> {
        let path = format!("{}/batch", Self::entities_prefix(cp_id));
        let body = serde_json::to_value(req).map_err(|_| ClientError::Decode {
            method: "POST".into(),
            path: path.clone(),
        })?;
        // The gateway's time grows with the batch: allow 1 ms per operation on top of
        // `--timeout`, so a 20,000-entity apply is not cut off while it commits.
        let timeout = self.timeout + Duration::from_millis(req.operations.len() as u64);
        let v = self
            .send_within(reqwest::Method::POST, &path, Some(&body), timeout)
            .await?
            .unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|_| ClientError::Decode {
            method: "POST".into(),
            path,
        })
    }
}

impl AdminClient {
    /// A transport failure: `Connect` when no connection was made (nothing was sent),
    /// `Broken` when it broke afterwards (the request may have arrived).
    fn transport(&self, e: &reqwest::Error) -> ClientError {
        let addr = self.base.clone();
        let reason = connect_reason(e);
        if e.is_connect() || e.is_timeout() || e.is_builder() {
            ClientError::Connect { addr, reason }
        } else {
            ClientError::Broken { addr, reason }
        }
    }
}

/// `HTTP 413 Payload Too Large`, for error answers without a Kong message.
fn status_text(status: u16) -> String {
    match http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// A short reason for a transport failure, without the URL (which the error already names).
fn connect_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    // A refused TCP connection reads the same on every platform; TLS problems keep their cause.
    if e.is_connect() && (reason.contains("refused") || reason.contains("os error 111")) {
        return "connection refused".to_owned();
    }
    reason
}
