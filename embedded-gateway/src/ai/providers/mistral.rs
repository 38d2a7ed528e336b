//! Owns the Mistral provider's endpoint. `mistral_format: openai` speaks OpenAI Chat
//! Completions to `https://api.mistral.ai/v1/chat/completions` (or `upstream_url`);
//! `mistral_format: ollama` speaks Ollama's `/api/chat` to a self-hosted `upstream_url`
//! (see `ollama.rs`). Dispatch picks the translator from [`super::ProviderKind::wire`].

use http::StatusCode;
use serde_json::Value;

use super::common::error_type_for;
use super::openai;
use crate::ai::types::ErrorEnvelope;

pub const DEFAULT_BASE: &str = "https://api.mistral.ai:443";

/// OpenAI's nested envelope, or Mistral's own top-level `{"object":"error","message",…}` /
/// `{"message","request_id"}` bodies.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    if let Some(env) = openai::map_error(body) {
        return Some(env);
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = match v.get("message")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(error_type_for(status));
    let mut env = ErrorEnvelope::new(message, kind, None);
    env.error.code = v.get("code").and_then(Value::as_str).map(str::to_owned);
    Some(env)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::ProviderKind;
    use crate::ai::config::{MistralFormat, ModelOptions, Provider};

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn request() -> serde_json::Map<String, Value> {
        match fixture(include_str!("../fixtures/unit_requests_chat.json")) {
            Value::Object(m) => m,
            _ => panic!(),
        }
    }

    fn options(format: MistralFormat) -> ModelOptions {
        ModelOptions {
            max_tokens: Some(512),
            temperature: Some(0.5),
            mistral_format: Some(format),
            ..Default::default()
        }
    }

    #[test]
    fn the_openai_format_goes_to_mistrals_public_api_and_matches_kongs_request() {
        let o = options(MistralFormat::Openai);
        let kind = ProviderKind::for_target(Provider::Mistral, &o);
        assert_eq!(
            kind.endpoint(&o, None).unwrap().as_str(),
            "https://api.mistral.ai/v1/chat/completions"
        );
        let body = kind
            .build_request(request(), "mistral-tiny", &o, false)
            .unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            got,
            fixture(include_str!(
                "../fixtures/unit_expected-requests_mistral_openai_chat.json"
            ))
        );
    }

    #[test]
    fn the_ollama_format_builds_kongs_ollama_body_and_needs_an_upstream_url() {
        let o = options(MistralFormat::Ollama);
        let kind = ProviderKind::for_target(Provider::Mistral, &o);
        let err = kind.endpoint(&o, None).unwrap_err();
        assert!(err.contains("upstream_url"), "{err}");
        assert!(err.contains("mistral_format ollama"), "{err}");
        let body = kind
            .build_request(request(), "mistral-tiny", &o, false)
            .unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            got,
            fixture(include_str!(
                "../fixtures/unit_expected-requests_mistral_ollama_chat.json"
            ))
        );
    }

    #[test]
    fn mistral_error_bodies_map_to_the_openai_envelope() {
        use super::map_error;
        use http::StatusCode;
        let env = map_error(
            br#"{"message":"Unauthorized","request_id":"abc"}"#,
            StatusCode::UNAUTHORIZED,
        )
        .unwrap();
        assert_eq!(env.error.message, "Unauthorized");
        assert_eq!(env.error.kind, "authentication_error");
        let body = br#"{"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}"#;
        let env = map_error(body, StatusCode::BAD_REQUEST).unwrap();
        assert_eq!(env.error.kind, "invalid_model");
        assert_eq!(env.error.code.as_deref(), Some("1500"));
        let nested = br#"{"error":{"message":"Rate limit exceeded","type":"rate_limit_error","code":"1300"}}"#;
        assert_eq!(
            map_error(nested, StatusCode::TOO_MANY_REQUESTS)
                .unwrap()
                .error
                .kind,
            "rate_limit_error"
        );
    }

    #[test]
    fn responses_of_both_formats_translate_like_kongs_expected_responses() {
        for (format, real, expected) in [
            (
                MistralFormat::Openai,
                include_str!("../fixtures/unit_real-responses_mistral_openai_chat.json"),
                include_str!("../fixtures/unit_expected-responses_mistral_openai_chat.json"),
            ),
            (
                MistralFormat::Ollama,
                include_str!("../fixtures/unit_real-responses_mistral_ollama_chat.json"),
                include_str!("../fixtures/unit_expected-responses_mistral_ollama_chat.json"),
            ),
        ] {
            let kind = ProviderKind::for_target(Provider::Mistral, &options(format));
            let out = kind
                .convert_response(bytes::Bytes::from(real.to_owned()), "mistral-tiny")
                .unwrap();
            let got: Value = serde_json::from_slice(&out).unwrap();
            let expected = fixture(expected);
            assert_eq!(
                got["choices"][0]["message"],
                expected["choices"][0]["message"]
            );
            assert_eq!(got["model"], expected["model"]);
            assert_eq!(got["choices"][0]["finish_reason"], "stop");
        }
    }
}
