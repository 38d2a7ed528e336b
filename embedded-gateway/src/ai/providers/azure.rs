//! Owns the Azure OpenAI provider: the deployment URL
//! (`https://{azure_instance}.openai.azure.com/openai/deployments/{azure_deployment_id}/chat/completions?api-version=…`).
//! The body, response, stream and errors are OpenAI's (see `openai.rs`); the key goes in the
//! `api-key` header through `auth.header_name`/`header_value`, or Microsoft Entra ID tokens
//! are minted (`auth.azure_use_managed_identity`): client credentials when
//! `azure_client_id`/`azure_client_secret`/`azure_tenant_id` are set, else the instance
//! metadata service (managed identity), cached and sent as `Authorization: Bearer`.

use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::common::error_type_for;
use crate::ai::AiError;
use crate::ai::config::{Auth, ModelOptions};
use crate::ai::types::ErrorEnvelope;

/// Kong's default `azure_api_version`.
pub const DEFAULT_API_VERSION: &str = "2023-05-15";

/// `upstream_url` as given (with `api-version` added when missing), else the instance's
/// deployment URL (or `base` + the deployment path, for `--upstream-override`).
pub fn endpoint(o: &ModelOptions, base: Option<&str>) -> Result<url::Url, String> {
    let version = o
        .azure_api_version
        .as_deref()
        .unwrap_or(DEFAULT_API_VERSION);
    let mut url = if let Some(u) = &o.upstream_url {
        url::Url::parse(u).map_err(|e| format!("invalid upstream URL: {e}"))?
    } else {
        let deployment = o
            .azure_deployment_id
            .as_deref()
            .ok_or("the azure provider needs 'model.options.azure_deployment_id'")?;
        let base = match base {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => {
                let instance = o
                    .azure_instance
                    .as_deref()
                    .ok_or("the azure provider needs 'model.options.azure_instance'")?;
                if !instance
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err("'model.options.azure_instance' must be a resource name".into());
                }
                format!("https://{instance}.openai.azure.com")
            }
        };
        let mut url = url::Url::parse(&base).map_err(|e| format!("invalid upstream URL: {e}"))?;
        url.path_segments_mut()
            .map_err(|_| "invalid upstream URL".to_owned())?
            .pop_if_empty()
            .extend(["openai", "deployments", deployment, "chat", "completions"]);
        url
    };
    if !url.query_pairs().any(|(k, _)| k == "api-version") {
        url.query_pairs_mut().append_pair("api-version", version);
    }
    Ok(url)
}

/// The Entra ID resource/scope for Azure OpenAI.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";
/// Default authority host (`AZURE_AUTHORITY_HOST` overrides it, as in Azure's SDKs).
const AUTHORITY: &str = "https://login.microsoftonline.com";
/// Default managed-identity endpoint (`IDENTITY_ENDPOINT` overrides it).
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How a token is obtained.
#[derive(Debug)]
enum Grant {
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: String,
        authority: String,
    },
    ManagedIdentity {
        client_id: Option<String>,
        endpoint: String,
    },
}

/// Microsoft Entra ID tokens for Azure OpenAI, cached until shortly before they expire.
pub struct EntraToken {
    grant: Grant,
    cached: tokio::sync::Mutex<Option<(HeaderValue, Instant)>>,
}

impl std::fmt::Debug for EntraToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.grant {
            Grant::ClientSecret { .. } => "client_credentials",
            Grant::ManagedIdentity { .. } => "managed_identity",
        };
        f.debug_struct("EntraToken")
            .field("grant", &kind)
            .finish_non_exhaustive()
    }
}

fn entra_error(why: String) -> AiError {
    AiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "azure_auth_failed",
        format!("could not obtain a Microsoft Entra ID token: {why}"),
    )
}

impl EntraToken {
    /// `None` unless `azure_use_managed_identity` is set.
    pub fn from_auth(a: &Auth) -> Option<Self> {
        if !a.azure_use_managed_identity {
            return None;
        }
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let grant = match (
            &a.azure_client_id,
            &a.azure_client_secret,
            &a.azure_tenant_id,
        ) {
            (Some(id), Some(secret), Some(tenant)) => Grant::ClientSecret {
                tenant: tenant.clone(),
                client_id: id.clone(),
                secret: secret.clone(),
                authority: env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| AUTHORITY.into()),
            },
            _ => Grant::ManagedIdentity {
                client_id: a.azure_client_id.clone(),
                endpoint: env("IDENTITY_ENDPOINT").unwrap_or_else(|| IMDS.into()),
            },
        };
        Some(Self::new(grant))
    }

    fn new(grant: Grant) -> Self {
        Self {
            grant,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// `Bearer <token>`, from the cache or a fresh request.
    pub async fn bearer(&self, client: &reqwest::Client) -> Result<HeaderValue, AiError> {
        let mut cached = self.cached.lock().await;
        if let Some((v, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(v.clone());
        }
        let (token, lifetime) = self.fetch(client).await?;
        let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| entra_error("the token is not a valid header value".into()))?;
        v.set_sensitive(true);
        *cached = Some((
            v.clone(),
            Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        ));
        Ok(v)
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        match &self.grant {
            Grant::ClientSecret {
                tenant,
                client_id,
                secret,
                authority,
            } => {
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", secret)
                    .append_pair("scope", &format!("{RESOURCE}/.default"))
                    .finish();
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    authority.trim_end_matches('/'),
                    super::bedrock::escape(tenant)
                );
                client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
            }
            Grant::ManagedIdentity {
                client_id,
                endpoint,
            } => {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("api-version", "2018-02-01")
                    .append_pair("resource", RESOURCE);
                if let Some(id) = client_id {
                    q.append_pair("client_id", id);
                }
                client
                    .get(format!("{endpoint}?{}", q.finish()))
                    .header("Metadata", "true")
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<(String, Duration), AiError> {
        let res = match tokio::time::timeout(TOKEN_TIMEOUT, self.request(client).send()).await {
            Err(_) => {
                return Err(entra_error(
                    "the token endpoint did not answer in time".into(),
                ));
            }
            Ok(Err(e)) => return Err(entra_error(e.without_url().to_string())),
            Ok(Ok(r)) => r,
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            let code = body.get("error").and_then(Value::as_str).unwrap_or("error");
            return Err(entra_error(format!("HTTP {} ({code})", status.as_u16())));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| entra_error("the answer has no access_token".into()))?;
        // Entra sends a number; the metadata service sends a string.
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        Ok((token.to_owned(), Duration::from_secs(lifetime)))
    }
}

/// Azure's errors: OpenAI's envelope, but often without `type` and with a string `code`
/// (`"401"`, `"429"`, `"content_filter"`); the type then follows the status.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let message = e.get("message")?.as_str()?;
    let kind = e
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(error_type_for(status));
    let mut env = ErrorEnvelope::new(message, kind, None);
    env.error.code = match e.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(instance: &str, deployment: &str) -> ModelOptions {
        ModelOptions {
            azure_instance: Some(instance.into()),
            azure_deployment_id: Some(deployment.into()),
            azure_api_version: Some("2024-10-21".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_deployment_url_carries_instance_deployment_and_api_version() {
        let url = endpoint(&options("my-res", "gpt4o-prod"), None).unwrap();
        assert_eq!(
            url.as_str(),
            "https://my-res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn an_override_base_keeps_the_deployment_path_and_a_deployment_cannot_escape_it() {
        let url = endpoint(&options("x", "../../admin"), Some("http://127.0.0.1:9/")).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert!(url.path().starts_with("/openai/deployments/"), "{url}");
        assert!(!url.path().contains("/admin/"), "{url}");
    }

    #[test]
    fn upstream_url_is_used_as_is_with_api_version_added_only_when_missing() {
        let mut o = options("x", "d");
        o.upstream_url = Some("http://h/custom?api-version=2025-01-01".into());
        assert_eq!(
            endpoint(&o, None).unwrap().as_str(),
            "http://h/custom?api-version=2025-01-01"
        );
        o.upstream_url = Some("http://h/custom".into());
        assert_eq!(
            endpoint(&o, None).unwrap().as_str(),
            "http://h/custom?api-version=2024-10-21"
        );
    }

    #[test]
    fn azure_errors_without_a_type_take_the_type_of_their_status() {
        let body = br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit."}}"#;
        let env = map_error(body, StatusCode::TOO_MANY_REQUESTS).unwrap();
        assert_eq!(env.error.kind, "rate_limit_error");
        assert_eq!(env.error.code.as_deref(), Some("429"));
        let body = br#"{"error":{"message":"The response was filtered","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        let env = map_error(body, StatusCode::BAD_REQUEST).unwrap();
        assert_eq!(env.error.kind, "invalid_request_error");
        assert_eq!(env.error.code.as_deref(), Some("content_filter"));
    }

    #[test]
    fn responses_pass_through_like_kongs_expected_azure_response() {
        let kind = super::super::ProviderKind::Azure;
        let out = kind
            .convert_response(
                bytes::Bytes::from_static(include_bytes!(
                    "../fixtures/unit_real-responses_azure_chat.json"
                )),
                "gpt-4",
            )
            .unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        let expected: Value = serde_json::from_slice(include_bytes!(
            "../fixtures/unit_expected-responses_azure_chat.json"
        ))
        .unwrap();
        assert_eq!(got, expected);
    }

    /// A one-route token server on 127.0.0.1:0 that records what it was sent.
    async fn token_server(
        answer: Value,
    ) -> (
        String,
        std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    ) {
        use axum::extract::Request;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let record = record.clone();
            let answer = answer.clone();
            async move {
                let uri = req.uri().to_string();
                let meta = req
                    .headers()
                    .get("metadata")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                let body = axum::body::to_bytes(req.into_body(), 1 << 16)
                    .await
                    .unwrap();
                record.lock().unwrap().push((
                    uri,
                    meta,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                axum::Json(answer)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn client_credentials_are_exchanged_once_and_cached() {
        let (base, seen) =
            token_server(serde_json::json!({"access_token": "eyJ.entra", "expires_in": 3599}))
                .await;
        let t = EntraToken::new(Grant::ClientSecret {
            tenant: "my-tenant".into(),
            client_id: "app-id".into(),
            secret: "s3cret-value".into(),
            authority: base,
        });
        let client = reqwest::Client::new();
        for _ in 0..2 {
            assert_eq!(t.bearer(&client).await.unwrap(), "Bearer eyJ.entra");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "/my-tenant/oauth2/v2.0/token");
        assert!(seen[0].2.contains("grant_type=client_credentials"));
        assert!(
            seen[0]
                .2
                .contains("scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default")
        );
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn managed_identity_asks_the_metadata_service_with_the_metadata_header() {
        let (base, seen) = token_server(
            serde_json::json!({"access_token": "eyJ.mi", "expires_in": "86399", "token_type": "Bearer"}),
        )
        .await;
        let t = EntraToken::new(Grant::ManagedIdentity {
            client_id: Some("user-assigned-id".into()),
            endpoint: format!("{base}/metadata/identity/oauth2/token"),
        });
        assert_eq!(
            t.bearer(&reqwest::Client::new()).await.unwrap(),
            "Bearer eyJ.mi"
        );
        let seen = seen.lock().unwrap();
        assert!(seen[0].0.starts_with("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fcognitiveservices.azure.com&client_id=user-assigned-id"), "{}", seen[0].0);
        assert_eq!(seen[0].1, "true");
    }

    #[tokio::test]
    async fn a_refused_token_request_is_a_500_naming_entra_id() {
        let (base, _) = token_server(serde_json::json!({"error": "invalid_client"})).await;
        let t = EntraToken::new(Grant::ClientSecret {
            tenant: "t".into(),
            client_id: "c".into(),
            secret: "s".into(),
            authority: base,
        });
        let err = t.bearer(&reqwest::Client::new()).await.unwrap_err();
        assert_eq!(err.code, Some("azure_auth_failed"));
        assert!(err.message.contains("no access_token"), "{}", err.message);
    }

    #[test]
    fn an_instance_that_is_not_a_resource_name_is_refused() {
        assert!(endpoint(&options("evil.com/x", "d"), None).is_err());
    }

    #[test]
    fn request_matches_kongs_expected_azure_request() {
        let Ok(serde_json::Value::Object(req)) =
            serde_json::from_str(include_str!("../fixtures/unit_requests_chat.json"))
        else {
            panic!()
        };
        let o = ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            top_p: Some(1.0),
            ..Default::default()
        };
        let body = super::super::openai::build_request(req, "gpt-4", &o, false).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expected: serde_json::Value = serde_json::from_str(include_str!(
            "../fixtures/unit_expected-requests_azure_chat.json"
        ))
        .unwrap();
        assert_eq!(got, expected);
    }
}
