//! Owns the Hugging Face provider: the OpenAI-compatible Inference Providers router
//! (`https://router.huggingface.co/v1/chat/completions`), `use_cache`/`wait_for_model` as the
//! `x-use-cache`/`x-wait-for-model` headers, Hugging Face's `{"error": "…"}` bodies, and the
//! finish-reason normalisation TGI-backed OpenAI-compatible servers need (`eos_token` →
//! `stop`), shared with vLLM and `llama2_format: openai`. Requests are OpenAI's.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::common::{bad_upstream, error_type_for};
use crate::ai::AiError;
use crate::ai::config::ModelOptions;
use crate::ai::sse::{DONE, SseEvent, encode_data};
use crate::ai::types::ErrorEnvelope;

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

/// TGI's finish reasons as OpenAI's (`eos_token`/`stop_sequence` → `stop`).
pub fn normalize_finish(reason: &str) -> Option<&'static str> {
    match reason {
        "eos_token" | "stop_sequence" | "end_turn" => Some("stop"),
        "max_tokens" => Some("length"),
        _ => None,
    }
}

/// Rewrites non-OpenAI `finish_reason` values in every choice; true when one changed.
fn normalize_choices(v: &mut Value) -> bool {
    let mut changed = false;
    for c in v
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let mapped = c
            .get("finish_reason")
            .and_then(Value::as_str)
            .and_then(normalize_finish);
        if let Some(m) = mapped {
            c["finish_reason"] = Value::from(m);
            changed = true;
        }
    }
    changed
}

/// An OpenAI-compatible body with its finish reasons normalised; otherwise unchanged bytes.
pub fn convert_response(body: Bytes) -> Result<Bytes, AiError> {
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|_| bad_upstream("huggingface", "response is not JSON"))?;
    if v.get("choices").is_none() {
        return Err(bad_upstream(
            "huggingface",
            "'choices' not in llm/v1/chat response",
        ));
    }
    if normalize_choices(&mut v) {
        return Ok(serde_json::to_vec(&v).unwrap_or_default().into());
    }
    Ok(body)
}

/// OpenAI-compatible stream passthrough with finish reasons normalised.
#[derive(Debug, Default)]
pub struct StreamState {
    pub done: bool,
    /// The usage chunk's figures, when the provider sent one.
    pub usage: Option<crate::ai::types::Usage>,
}

impl StreamState {
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        if ev.data == "[DONE]" {
            out.push(Bytes::from_static(DONE));
            self.done = true;
            return;
        }
        if let Some(u) = crate::ai::types::usage_in_chunk(&ev.data) {
            self.usage = Some(u);
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
            out.push(encode_data(ev.data.as_bytes()));
            return;
        };
        if normalize_choices(&mut v) {
            out.push(encode_data(&serde_json::to_vec(&v).unwrap_or_default()));
        } else {
            self.done = v.get("error").is_some();
            out.push(encode_data(ev.data.as_bytes()));
        }
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
    use crate::ai::config::HuggingfaceOptions;

    #[test]
    fn tgi_finish_reasons_become_openai_values_in_bodies_and_streams() {
        let body = Bytes::from_static(include_bytes!(
            "../fixtures/huggingface_responses_good.json"
        ));
        let out: Value = serde_json::from_slice(&convert_response(body).unwrap()).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["usage"]["total_tokens"], 66);
        assert!(
            out["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .contains("1 + 1 is 2")
        );
        let plain = Bytes::from_static(br#"{"choices":[{"finish_reason":"length"}]}"#);
        assert_eq!(convert_response(plain.clone()).unwrap(), plain);
        assert!(convert_response(Bytes::from_static(b"{}")).is_err());
        let mut st = StreamState::default();
        let mut out = Vec::new();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"eos_token"}]}"#,
            "[DONE]",
        ] {
            st.on_event(
                &SseEvent {
                    event: None,
                    data: data.into(),
                },
                &mut out,
            );
        }
        assert!(st.done);
        assert!(String::from_utf8_lossy(&out[1]).contains(r#""finish_reason":"stop""#));
        assert_eq!(out[2].as_ref(), b"data: [DONE]\n\n");
    }

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
        let cases: [(&[u8], StatusCode, &str, &str); 4] = [
            (
                include_bytes!("../fixtures/huggingface_responses_bad_response_timeout.json"),
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                "time out",
            ),
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
