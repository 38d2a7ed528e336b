//! Owns the Azure OpenAI provider: the deployment URL
//! (`https://{azure_instance}.openai.azure.com/openai/deployments/{azure_deployment_id}/chat/completions?api-version=…`).
//! The body, response, stream and errors are OpenAI's (see `openai.rs`); the key goes in the
//! `api-key` header through `auth.header_name`/`header_value`.

use http::StatusCode;
use serde_json::Value;

use super::error_type_for;
use crate::ai::types::ErrorEnvelope;
use crate::plugins::ai_proxy::ModelOptions;

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
