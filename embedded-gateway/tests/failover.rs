//! ai-proxy-advanced's resilience through the real proxy, against `mock-llm` faults (picked
//! per target by model name: `mock-500`, `mock-429`, `mock-reset`, `mock-reset-early`) and a
//! refused port: each failover criterion fails over when listed and not otherwise, retries
//! stop at `retries`, `Retry-After` is honoured, streams fail over only before their first
//! event, and the circuit breaker takes a failing target out.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::proxy_harness::*;

/// A port that refuses connections for as long as the returned socket lives.
fn refused() -> (socket2::Socket, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

fn target(name: &str, upstream: SocketAddr) -> Value {
    json!({
        "route_type": "llm/v1/chat",
        "model_alias_unused": null,
        "auth": {"header_name": "Authorization", "header_value": PROVIDER_TOKEN},
        "model": {"provider": "openai", "name": name, "model_alias": "fast",
                  "options": {"upstream_url": format!("http://{upstream}/v1/chat/completions")}},
    })
}

/// The recipe's route with these `fast` targets and this balancer block.
async fn stack(
    targets: impl Fn(SocketAddr) -> Vec<Value> + Send + 'static,
    balancer: Value,
) -> Stack {
    Stack::start(move |m| {
        let mut snap = recipe(m);
        let mut ts = targets(m);
        for t in &mut ts {
            t.as_object_mut().unwrap().remove("model_alias_unused");
        }
        snap.plugins[1].config = json!({"targets": ts, "balancer": balancer});
        snap
    })
    .await
}

/// `target` with a `weight` (priority: the heavier group is preferred).
fn weighted(name: &str, upstream: SocketAddr, weight: u32) -> Value {
    let mut t = target(name, upstream);
    t["weight"] = json!(weight);
    t
}

fn models_asked(reqs: &[Value]) -> Vec<String> {
    reqs.iter()
        .map(|r| r["body"]["model"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const EVERYTHING: [&str; 7] = [
    "error",
    "timeout",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "non_idempotent",
];

#[tokio::test]
async fn a_refused_connection_fails_over_with_the_default_criteria() {
    let (_hold, dead) = refused();
    let s = stack(
        move |m| vec![target("gpt-4o-mini", dead), target("gpt-4o-mini-backup", m)],
        json!({}),
    )
    .await;
    for _ in 0..4 {
        let res = s.chat(hello("fast")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["x-kong-llm-model"],
            "openai/gpt-4o-mini-backup"
        );
    }
}

#[tokio::test]
async fn a_500_fails_over_only_when_http_500_and_non_idempotent_are_listed() {
    let s = stack(
        |m| vec![target("mock-500", m), target("gpt-4o", m)],
        json!({"failover_criteria": EVERYTHING, "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(hello("fast")).await;
    let st = res.status();
    let t = res.text().await.unwrap();
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        models_asked(&s.upstream_requests().await),
        ["mock-500", "gpt-4o"]
    );

    // http_500 listed, but not non_idempotent: a POST that reached the upstream stays there.
    let s = stack(
        |m| vec![target("mock-500", m), target("gpt-4o", m)],
        json!({"failover_criteria": ["error", "timeout", "http_500"], "algorithm": "priority"}),
    )
    .await;
    assert_eq!(s.chat(hello("fast")).await.status(), 500);
    assert_eq!(models_asked(&s.upstream_requests().await), ["mock-500"]);

    // Not listed at all: the 500 is the answer.
    let s = stack(
        |m| vec![target("mock-500", m), target("gpt-4o", m)],
        json!({"failover_criteria": ["error", "timeout", "non_idempotent"], "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(models_asked(&s.upstream_requests().await), ["mock-500"]);
}

#[tokio::test]
async fn retries_stop_at_retries() {
    let s = stack(
        |m| {
            vec![
                target("mock-500", m),
                target("mock-500", m),
                target("mock-500", m),
                target("gpt-4o", m),
            ]
        },
        json!({"failover_criteria": EVERYTHING, "retries": 2, "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(hello("fast")).await;
    let st = res.status();
    let t = res.text().await.unwrap();
    assert_eq!(st, 500, "three attempts, all 500: {t}");
    assert_eq!(s.upstream_requests().await.len(), 3);
}

#[tokio::test]
async fn a_429_with_retry_after_takes_the_target_out_for_that_long() {
    let s = stack(
        |m| vec![target("mock-429", m), target("gpt-4o", m)],
        json!({"failover_criteria": EVERYTHING}),
    )
    .await;
    // The mock's 429 says `Retry-After: 1`.
    assert_eq!(s.chat(hello("fast")).await.status(), 200);
    for _ in 0..6 {
        let res = s.chat(hello("fast")).await;
        assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4o");
    }
    let asked = models_asked(&s.upstream_requests().await);
    assert_eq!(
        asked.iter().filter(|m| *m == "mock-429").count(),
        1,
        "{asked:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..2 {
        s.chat(hello("fast")).await;
    }
    let asked = models_asked(&s.upstream_requests().await);
    assert_eq!(
        asked.iter().filter(|m| *m == "mock-429").count(),
        2,
        "back after a second: {asked:?}"
    );
}

fn streamed() -> Value {
    json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn a_stream_that_dies_before_its_first_event_is_served_by_the_next_target() {
    let s = stack(
        |m| vec![target("mock-reset-early", m), target("gpt-4o", m)],
        json!({"failover_criteria": EVERYTHING, "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(streamed()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4o");
    let text = res.text().await.unwrap();
    let evs = events(&text);
    assert!(evs.iter().all(|e| e["error"].is_null()), "{text}");
    assert!(
        evs.iter().all(|e| e["model"] == "gpt-4o"),
        "one clean stream: {text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn a_stream_that_dies_after_its_first_event_ends_with_an_error_event_and_no_switch() {
    let s = stack(
        |m| vec![target("mock-reset", m), target("gpt-4o", m)],
        json!({"failover_criteria": EVERYTHING, "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(streamed()).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let evs = events(&text);
    assert!(
        evs.last().unwrap()["error"]["message"].is_string(),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(models_asked(&s.upstream_requests().await), ["mock-reset"]);
}

#[tokio::test]
async fn the_breaker_opens_after_max_fails_and_every_target_out_is_a_clear_500() {
    let s = stack(
        |m| vec![target("mock-500", m)],
        json!({"max_fails": 2, "fail_timeout": 60000}),
    )
    .await;
    assert_eq!(s.chat(hello("fast")).await.status(), 500);
    assert_eq!(s.chat(hello("fast")).await.status(), 500);
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_healthy_target", "{body}");
    assert_eq!(
        s.upstream_requests().await.len(),
        2,
        "the open breaker sends nothing"
    );
}

#[tokio::test]
async fn the_breaker_lets_a_probe_through_after_fail_timeout_and_a_good_one_closes_it() {
    let s = stack(
        |m| vec![weighted("mock-500", m, 100), weighted("gpt-4o", m, 10)],
        json!({"max_fails": 1, "fail_timeout": 300, "failover_criteria": EVERYTHING, "algorithm": "priority"}),
    )
    .await;
    assert_eq!(s.chat(hello("fast")).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(
            s.chat(hello("fast")).await.headers()["x-kong-llm-model"],
            "openai/gpt-4o"
        );
    }
    assert_eq!(
        models_asked(&s.upstream_requests().await)
            .iter()
            .filter(|m| *m == "mock-500")
            .count(),
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    // One probe reaches the failing target again (and fails over).
    assert_eq!(s.chat(hello("fast")).await.status(), 200);
    assert_eq!(
        models_asked(&s.upstream_requests().await)
            .iter()
            .filter(|m| *m == "mock-500")
            .count(),
        2
    );
}

#[tokio::test]
async fn consistent_hashing_keeps_a_user_on_one_target() {
    let s = stack(
        |m| vec![target("a", m), target("b", m), target("c", m)],
        json!({"algorithm": "consistent-hashing", "hash_on_header": "X-User"}),
    )
    .await;
    for user in ["alice", "bob", "carol", "dave"] {
        let first = s
            .chat_with(&[("x-user", user)], hello("fast"))
            .await
            .headers()["x-kong-llm-model"]
            .clone();
        for _ in 0..4 {
            let res = s.chat_with(&[("x-user", user)], hello("fast")).await;
            assert_eq!(res.headers()["x-kong-llm-model"], first, "{user}");
        }
    }
}

#[tokio::test]
async fn failover_crosses_providers_and_translates_the_request_again() {
    let s = stack(
        |m| {
            vec![
                weighted("mock-500", m, 100),
                json!({"route_type": "llm/v1/chat", "weight": 10,
                       "auth": {"header_name": "x-api-key", "header_value": "sk-ant-test"},
                       "model": {"provider": "anthropic", "name": "claude-3-5-haiku", "model_alias": "fast",
                                 "options": {"anthropic_version": "2023-06-01",
                                             "upstream_url": format!("http://{m}/v1/messages")}}}),
            ]
        },
        json!({"failover_criteria": EVERYTHING, "algorithm": "priority"}),
    )
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-kong-llm-model"],
        "anthropic/claude-3-5-haiku"
    );
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer["object"], "chat.completion",
        "OpenAI format back: {answer}"
    );
    let reqs = s.upstream_requests().await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["path"], "/v1/chat/completions");
    assert_eq!(reqs[1]["path"], "/v1/messages");
    assert!(
        reqs[1]["body"]["max_tokens"].is_number(),
        "Anthropic's shape: {}",
        reqs[1]["body"]
    );
}
