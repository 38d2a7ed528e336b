//! `mock-llm` on its own: real OpenAI and Anthropic wire formats, auth checks like the real
//! APIs, deterministic answers, faults on request, and the request record.

use serde_json::{Value, json};

use crate::proxy_harness::start_mock;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn openai_chat_completions_answer_deterministically_in_openai_format() {
    let mock = start_mock().await;
    let url = format!("http://{mock}/any/prefix/chat/completions");
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let v: Value = client()
        .post(&url)
        .bearer_auth("sk-x")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let echo = json!({"model": "m", "messages": [{"role": "user", "content": "hello there"}]});
    let a: Value = client()
        .post(&url)
        .bearer_auth("k")
        .json(&echo)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = client()
        .post(&url)
        .bearer_auth("k")
        .json(&echo)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(
        a["choices"][0]["message"]["content"],
        "You said: hello there"
    );
}

#[tokio::test]
async fn auth_is_validated_like_the_real_apis() {
    let mock = start_mock().await;
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let res = client()
        .post(format!("http://{mock}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msgs = format!("http://{mock}/v1/messages");
    let res = client().post(&msgs).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let res = client()
        .post(&msgs)
        .header("x-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "anthropic-version is required");
}

#[tokio::test]
async fn anthropic_messages_stream_in_the_real_event_sequence() {
    let mock = start_mock().await;
    let body = json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let res = client()
        .post(format!("http://{mock}/v1/messages"))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = res.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"));
    assert!(text.contains("\"stop_reason\":\"end_turn\""));
}

#[tokio::test]
async fn faults_are_injected_on_request_and_requests_are_recorded() {
    let mock = start_mock().await;
    let url = format!("http://{mock}/v1/chat/completions");
    let body = |m: &str| json!({"model": m, "messages": [{"role": "user", "content": "hi"}]});
    let res = client()
        .post(&url)
        .bearer_auth("k")
        .json(&body("mock-429"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let res = client()
        .post(&url)
        .bearer_auth("k")
        .header("x-mock-fault", "500")
        .json(&body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let started = std::time::Instant::now();
    let res = client()
        .post(&url)
        .bearer_auth("k")
        .header("x-mock-delay-ms", "300")
        .json(&body("mock-slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let res = client()
        .post(&url)
        .bearer_auth("k")
        .json(&body("mock-reset"))
        .send()
        .await
        .unwrap();
    assert!(res.text().await.is_err(), "the body is cut mid-way");
    let rec: Value = client()
        .get(format!("http://{mock}/_mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec.as_array().unwrap().len(), 4);
    assert_eq!(rec[0]["method"], "POST");
    assert_eq!(rec[0]["path"], "/v1/chat/completions");
    assert_eq!(rec[0]["headers"]["authorization"], "Bearer k");
    assert_eq!(rec[0]["body"]["model"], "mock-429");
    client()
        .delete(format!("http://{mock}/_mock/requests"))
        .send()
        .await
        .unwrap();
    let rec: Value = client()
        .get(format!("http://{mock}/_mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec, json!([]));
}
