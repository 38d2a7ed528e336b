//! Owns the Mistral provider's endpoint. `mistral_format: openai` speaks OpenAI Chat
//! Completions to `https://api.mistral.ai/v1/chat/completions` (or `upstream_url`);
//! `mistral_format: ollama` speaks Ollama's `/api/chat` to a self-hosted `upstream_url`
//! (see `ollama.rs`). Dispatch picks the translator from [`super::ProviderKind::wire`].

pub const DEFAULT_BASE: &str = "https://api.mistral.ai:443";

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::ProviderKind;
    use crate::plugins::ai_proxy::{MistralFormat, ModelOptions, Provider};

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
        let kind = ProviderKind::for_target(Provider::Mistral, &o).unwrap();
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
        let kind = ProviderKind::for_target(Provider::Mistral, &o).unwrap();
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
            let kind = ProviderKind::for_target(Provider::Mistral, &options(format)).unwrap();
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
