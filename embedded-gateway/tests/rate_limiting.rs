//! rate-limiting through the real proxy: per-consumer windows with Kong's headers and 429
//! body, exact counts under 200 parallel requests, and config errors with Kong's messages.

use serde_json::{Value, json};

use crate::proxy_harness::*;

async fn limited(config: Value) -> Stack {
    Stack::start(move |m| {
        let mut snap = recipe(m);
        snap.plugins.push(plugin(
            json!({"id": "p-rl", "name": "rate-limiting", "route": {"id": ROUTE_ID}, "config": config}),
        ));
        snap
    })
    .await
}

#[tokio::test]
async fn a_consumer_over_its_minute_limit_gets_kongs_429_and_headers() {
    let s = limited(json!({"minute": 2, "limit_by": "consumer"})).await;
    for left in ["1", "0"] {
        let res = s.chat(hello("fast")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-ratelimit-limit-minute"], "2");
        assert_eq!(res.headers()["x-ratelimit-remaining-minute"], left);
        assert_eq!(res.headers()["ratelimit-limit"], "2");
        assert_eq!(res.headers()["ratelimit-remaining"], left);
        assert!(res.headers().contains_key("ratelimit-reset"));
    }
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 429);
    let reset: u64 = res.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        res.headers()["retry-after"].to_str().unwrap(),
        reset.to_string()
    );
    assert!((1..=60).contains(&reset));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "API rate limit exceeded");
    assert_eq!(body["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        s.upstream_requests().await.len(),
        2,
        "the refused request never left"
    );
}

#[tokio::test]
async fn two_hundred_parallel_requests_never_pass_more_than_the_limit() {
    let s = limited(json!({"hour": 50})).await;
    let reqs = (0..200).map(|_| s.chat(hello("fast")));
    let statuses: Vec<u16> = futures_util::future::join_all(reqs)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 50);
    assert_eq!(statuses.iter().filter(|&&c| c == 429).count(), 150);
}

#[tokio::test]
async fn hide_client_headers_and_a_custom_error() {
    let s = limited(
        json!({"minute": 1, "hour": 100, "hide_client_headers": true,
        "error_code": 503, "error_message": "slow down"}),
    )
    .await;
    let res = s.chat(hello("fast")).await;
    assert!(!res.headers().contains_key("ratelimit-limit"));
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "slow down");
}

#[test]
fn bad_configs_get_kongs_messages() {
    let errs = |c: Value| -> Vec<String> {
        embedded_gateway::plugins::normalize_config("rate-limiting", &c)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    assert_eq!(
        errs(json!({})),
        [
            "at least one of these fields must be non-empty: 'second', 'minute', 'hour', 'day', 'month', 'year'"
        ]
    );
    assert_eq!(
        errs(json!({"minute": 20, "hour": 10})),
        ["The limit for hour(10.0) cannot be lower than the limit for minute(20.0)"]
    );
    assert!(errs(json!({"minute": 1, "limit_by": "header"}))[0].starts_with("header_name:"));
    assert!(errs(json!({"minute": 1, "policy": "redis"}))[0].contains("not supported"));
    assert_eq!(
        errs(json!({"minute": 1, "sync_rate": 1})),
        ["sync_rate: sync_rate can only be used with the redis policy"]
    );
}
