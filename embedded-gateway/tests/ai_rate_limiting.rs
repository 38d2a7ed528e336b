//! ai-rate-limiting-advanced through the real proxy: per-consumer token budgets (policies and
//! llm_providers forms), the request that crosses the budget completes and the next is refused
//! with Kong's exact body and headers, streamed usage counts, and the window resets.

use serde_json::{Value, json};

use crate::proxy_harness::*;

const SMALL_ID: &str = "8c7b1f7e-0000-4000-8000-000000000002";
const SMALL_KEY: &str = "small-app-key";

async fn stack(config: Value) -> Stack {
    Stack::start(move |m| {
        let mut snap = recipe(m);
        snap.consumers.push(
            serde_json::from_value(json!({"id": SMALL_ID, "username": "small-app"})).unwrap(),
        );
        snap.key_auths.push(
            serde_json::from_value(
                json!({"id": "k-small", "consumer": {"id": SMALL_ID}, "key": SMALL_KEY}),
            )
            .unwrap(),
        );
        snap.plugins.push(plugin(
            json!({"id": "p-airl", "name": "ai-rate-limiting-advanced",
            "route": {"id": ROUTE_ID}, "config": config}),
        ));
        snap
    })
    .await
}

async fn call(s: &Stack, key: &str, body: Value) -> reqwest::Response {
    s.http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_small_budget_is_refused_after_it_is_spent_while_a_larger_one_goes_on() {
    let s = stack(json!({"window_type": "fixed", "policies": [
        {"match": [{"type": "consumer", "key": "username", "values": ["small-app"]}],
         "limits": [{"limit": 10, "window_size": 3600}], "window_type": "fixed"},
        {"limits": [{"limit": 100000, "window_size": 3600}], "window_type": "fixed"}
    ]}))
    .await;
    // The first call is admitted with the whole budget and spends more than it.
    let res = call(&s, SMALL_KEY, hello("fast")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-ai-ratelimit-limit-hour-policy-1"], "10");
    assert_eq!(
        res.headers()["x-ai-ratelimit-remaining-hour-policy-1"],
        "10"
    );
    let used: Value = res.json().await.unwrap();
    assert!(
        used["usage"]["total_tokens"].as_u64().unwrap() > 10,
        "{used}"
    );
    // The log phase charged it: the next call is refused before any upstream call.
    let mut refused = None;
    for _ in 0..50 {
        let res = call(&s, SMALL_KEY, hello("fast")).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let res = refused.expect("the spent budget refuses");
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["x-ai-ratelimit-remaining-hour-policy-1"], "0");
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"AI token rate limit exceeded for provider(s): policy-1"}"#
    );
    // demo-app matches only the fallback policy, with room to spare.
    for _ in 0..3 {
        assert_eq!(s.chat(hello("fast")).await.status(), 200);
    }
}

#[tokio::test]
async fn llm_providers_budgets_count_streamed_usage_and_name_the_provider() {
    let s = stack(json!({"window_type": "fixed",
        "llm_providers": [{"name": "openai", "limit": [5], "window_size": [3600]}]}))
    .await;
    let res = call(
        &s,
        DEMO_KEY,
        json!({"model": "fast", "stream": true,
               "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let _ = res.text().await.unwrap();
    let mut body = None;
    for _ in 0..50 {
        let res = call(&s, DEMO_KEY, hello("fast")).await;
        if res.status() == 429 {
            body = Some(res.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        body.expect("the streamed tokens were charged"),
        r#"{"message":"AI token rate limit exceeded for provider(s): openai"}"#
    );
}

#[tokio::test]
async fn the_window_resets() {
    let s = stack(json!({"window_type": "fixed",
        "llm_providers": [{"name": "openai", "limit": [5], "window_size": [1]}]}))
    .await;
    assert_eq!(call(&s, DEMO_KEY, hello("fast")).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(call(&s, DEMO_KEY, hello("fast")).await.status(), 200);
}

#[test]
fn bad_configs_are_refused_with_their_field() {
    let errs = |c: Value| -> Vec<String> {
        embedded_gateway::plugins::normalize_config("ai-rate-limiting-advanced", &c)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    assert!(errs(json!({}))[0].contains("at least one of these fields"));
    assert!(
        errs(json!({"llm_providers": [{"name": "openai", "limit": [1, 2], "window_size": [60]}]}))
            [0]
        .starts_with("llm_providers[0].limit:")
    );
    assert!(
        errs(json!({"identifier": "bogus", "llm_providers": []}))[0].starts_with("identifier:")
    );
    assert!(errs(json!({"identifier": "header", "llm_providers": [{"name": "openai", "limit": [1], "window_size": [60]}]}))[0]
        .starts_with("header_name:"));
    assert!(errs(json!({"strategy": "redis", "llm_providers": [{"name": "openai", "limit": [1], "window_size": [60]}]}))[0]
        .contains("not supported"));
}
