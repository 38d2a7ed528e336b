//! A canary provider key never comes back to the client: `mock-llm`'s `echo-key` fault echoes
//! the credential it received the way OpenAI does (masked in a 401's message), whole in a
//! response header, and whole in a mid-stream error event; the gateway scrubs all of them.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::proxy_harness::*;

const CANARY: &str = "sk-canary-7f3a9c2e41b8d6f05e9a";

fn canary_target(mock: SocketAddr) -> Value {
    let url = format!("http://{mock}/v1/chat/completions");
    json!({"targets": [{
        "route_type": "llm/v1/chat",
        "auth": {"header_name": "Authorization", "header_value": format!("Bearer {CANARY}")},
        "model": {"provider": "openai", "name": "gpt-4o-mini", "options": {"upstream_url": url}},
    }]})
}

/// Everything the client received: status line, every header, the body.
async fn everything(res: reqwest::Response) -> String {
    let mut text = format!("{}\n", res.status());
    for (k, v) in res.headers() {
        text += &format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes()));
    }
    text + &res.text().await.unwrap()
}

/// No whole key, no 8-character prefix or suffix, no masked echo showing its ends.
fn assert_no_canary(text: &str) {
    let n = CANARY.len();
    for fragment in [CANARY, &CANARY[..8], &CANARY[n - 8..]] {
        assert!(!text.contains(fragment), "{fragment} leaked:\n{text}");
    }
    assert!(!text.contains(&format!("{}*", &CANARY[..6])), "{text}");
    assert!(!text.contains(&format!("*{}", &CANARY[n - 3..])), "{text}");
}

async fn echo(s: &Stack, stream: bool) -> reqwest::Response {
    let mut body = hello("gpt-4o-mini");
    body["stream"] = json!(stream);
    s.chat_with(&[("x-mock-fault", "echo-key")], body).await
}

#[tokio::test]
async fn an_echoed_key_is_scrubbed_from_error_bodies_and_headers() {
    let s = Stack::start(|m| recipe_with(json!({}), canary_target(m))).await;
    let res = echo(&s, false).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["x-mock-echo-key"], "[redacted]");
    let text = everything(res).await;
    assert_no_canary(&text);
    assert!(
        text.contains("Incorrect API key provided: [redacted]. You can find"),
        "{text}"
    );
    // The mock did receive the canary: the scrubbing is the gateway's.
    let seen = s.upstream_requests().await;
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {CANARY}")
    );
}

#[tokio::test]
async fn an_echoed_key_is_scrubbed_from_stream_events() {
    let s = Stack::start(|m| recipe_with(json!({}), canary_target(m))).await;
    let res = echo(&s, true).await;
    assert_eq!(res.status(), 200);
    let text = everything(res).await;
    assert_no_canary(&text);
    assert!(text.contains("[redacted]"), "{text}");
}
