//! Owns the admin API client: Kong Admin API and Gantry control-plane calls over reqwest, with
//! `--headers`, `Kong-Admin-Token` and a timeout. Errors name the admin address and carry the
//! server's message; they never include request bodies (which may hold secrets).

use std::time::Duration;

use embedded_gateway::model::ControlPlane;
use embedded_gateway::store::batch::BatchRequest;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid admin address '{0}': expected a URL like http://localhost:8001")]
    Address(String),
    #[error("invalid header '{0}': expected KEY:VALUE")]
    Header(String),
    #[error("cannot reach the admin API at {addr}: {reason}")]
    Connect { addr: String, reason: String },
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
        let mut headers = HeaderMap::new();
        for raw in &opts.headers {
            let (k, v) = raw
                .split_once(':')
                .ok_or_else(|| ClientError::Header(raw.clone()))?;
            let name = HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| ClientError::Header(raw.clone()))?;
            let mut value =
                HeaderValue::from_str(v.trim()).map_err(|_| ClientError::Header(raw.clone()))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if let Some(token) = &opts.token {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| ClientError::Header("Kong-Admin-Token".into()))?;
            value.set_sensitive(true);
            headers.insert("kong-admin-token", value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(opts.timeout)
            .build()
            .map_err(|e| ClientError::Connect {
                addr: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
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
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| ClientError::Connect {
            addr: self.base.clone(),
            reason: connect_reason(&e),
        })?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| ClientError::Connect {
            addr: self.base.clone(),
            reason: connect_reason(&e),
        })?;
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
                .unwrap_or_else(|| format!("HTTP {status}"));
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

/// A short reason for a transport failure, without the URL (which the error already names).
fn connect_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    if e.is_connect() {
        return "connection refused".to_owned();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}
