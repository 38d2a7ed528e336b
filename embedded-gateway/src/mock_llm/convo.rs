//! Owns what every mock wire format shares once its body is read: the conversation facts the
//! deterministic answer depends on, and the fault gate (`mock-429`/`mock-500` models or the
//! `x-mock-fault` header) that answers in each provider's own error shape.

use axum::http::HeaderMap;
use axum::response::Response;

use super::answer::{Reply, reply, stable_id, text_of, tokens};
use super::{Fault, Plan};

/// The conversation as the mock needs it, whatever the wire format.
#[derive(Debug, Clone, Default)]
pub struct Convo {
    pub model: String,
    /// `tool` when the last turn carries a tool/function result.
    pub last_role: String,
    pub last_text: String,
    pub first_tool: Option<String>,
    pub prompt_tokens: u64,
}

impl Convo {
    /// The conversation of a chat body in the OpenAI `messages` shape (Cohere v2 and Ollama
    /// use it too).
    pub fn from_chat_messages(body: &serde_json::Value) -> Convo {
        let messages = body.get("messages").and_then(serde_json::Value::as_array);
        let last = messages.and_then(|m| m.last()).cloned().unwrap_or_default();
        Convo {
            model: body
                .get("model")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
            last_role: last
                .get("role")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("user")
                .to_owned(),
            last_text: text_of(last.get("content").unwrap_or(&serde_json::Value::Null)),
            first_tool: body
                .pointer("/tools/0/function/name")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            prompt_tokens: messages
                .into_iter()
                .flatten()
                .map(|m| {
                    tokens(&text_of(
                        m.get("content").unwrap_or(&serde_json::Value::Null),
                    ))
                })
                .sum(),
        }
    }

    pub fn reply(&self) -> Reply {
        reply(&self.last_role, &self.last_text, self.first_tool.as_deref())
    }

    /// A stable id suffix: identical requests get identical ids.
    pub fn id(&self) -> String {
        stable_id(&self.last_text)
    }
}

/// Applies the fault plan: `Err` carries the provider's 429/500 response; `Ok` the pacing
/// for a normal answer (after the `slow` delay).
pub async fn gate(
    headers: &HeaderMap,
    model: &str,
    rate_limited: impl FnOnce() -> Response,
    server_error: impl FnOnce() -> Response,
) -> Result<Plan, Response> {
    let plan = Plan::from(headers, model);
    match plan.fault {
        Some(Fault::RateLimited) => Err(rate_limited()),
        Some(Fault::ServerError) => Err(server_error()),
        Some(Fault::Slow) => {
            tokio::time::sleep(plan.first_byte_delay).await;
            Ok(plan)
        }
        _ => Ok(plan),
    }
}

/// Percent-decodes one URL path segment (model ids arrive escaped).
pub fn unescape(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_model_ids_decode_and_broken_escapes_stay_literal() {
        assert_eq!(
            unescape("anthropic.claude-3-haiku-20240307-v1%3A0"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(unescape("a%2Fb"), "a/b");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz%é"), "%zz%é");
    }
}
