//! Owns the Hugging Face provider: the OpenAI-compatible Inference Providers router
//! (`https://router.huggingface.co/v1/chat/completions`), `use_cache`/`wait_for_model` as the
//! `x-use-cache`/`x-wait-for-model` headers, and Hugging Face's `{"error": "…"}` bodies.
//! Requests, responses and streams are OpenAI's (see `openai.rs`).

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::error_type_for;
use crate::ai::types::ErrorEnvelope;
use crate::plugins::ai_proxy::ModelOptions;

pub const DEFAULT_BASE: &str = "https://router.huggingface.co";

pub fn add_headers(options: &ModelOptions, headers: &mut HeaderMap) {
    let Some(hf) = &options.huggingface else {
        return;
    };
    let flag = |b: bool| HeaderValue::from_static(if b { "true" } else { "false" });
    if let Some(b) = hf.use_cache {
        headers.insert("x-use-cache", flag(b));
    }
    if let Some(b) = hf.wait_for_model {
        headers.insert("x-wait-for-model", flag(b));
    }
}

/// `{"error": "…"}` or `{"error": ["…"]}` (the Inference API's shapes) → OpenAI envelope.
pub fn map_error(body: &[u8], status: StatusCode) -> Option<ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = match v.get("error")? {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => return None,
    };
    let code = v
        .get("error_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut env = ErrorEnvelope::new(message, error_type_for(status), None);
    env.error.code = code;
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::ai_proxy::HuggingfaceOptions;

    #[test]
    fn use_cache_and_wait_for_model_become_headers() {
        let o = ModelOptions {
            huggingface: Some(HuggingfaceOptions {
                use_cache: Some(false),
                wait_for_model: Some(true),
            }),
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        add_headers(&o, &mut h);
        assert_eq!(h["x-use-cache"], "false");
        assert_eq!(h["x-wait-for-model"], "true");
    }

    #[test]
    fn hugging_face_error_bodies_map_to_the_openai_envelope() {
        let cases: [(&[u8], StatusCode, &str, &str); 3] = [
            (
                include_bytes!("../fixtures/huggingface_responses_unauthorized.json"),
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Authorization header is correct, but the token seems invalid",
            ),
            (
                include_bytes!("../fixtures/huggingface_responses_bad_response_model_load.json"),
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "currently loading",
            ),
            (
                include_bytes!("../fixtures/huggingface_responses_bad_request.json"),
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "",
            ),
        ];
        for (body, status, kind, needle) in cases {
            let env = map_error(body, status).expect("mapped");
            assert_eq!(env.error.kind, kind);
            assert!(env.error.message.contains(needle), "{}", env.error.message);
            assert!(!env.error.message.is_empty());
        }
    }
}
