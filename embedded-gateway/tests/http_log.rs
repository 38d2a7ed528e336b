//! The `http-log` plugin through the real proxy and a real collector on loopback: Kong's entry
//! shape sent as one object or, with batches, as a JSON array; user info turned into Basic
//! auth; failed sends retried; and a dead endpoint that leaves the proxy's latency alone while
//! the bounded queue drops (and counts) what it cannot hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use embedded_gateway::metrics::METRICS;
use embedded_gateway::server::{Limits, Protocols, serve};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::proxy_harness::*;

/// A log collector: records what it receives; answers 500 to the first `fail_first` calls.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<(http::HeaderMap, Value)>>>,
    calls: Arc<AtomicUsize>,
}

impl Collector {
    async fn start(fail_first: usize) -> (Self, String) {
        let c = Collector::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = c.clone();
        tokio::spawn(serve(
            Protocols::Http1,
            listener,
            Limits::default(),
            move |req: http::Request<hyper::body::Incoming>, _| {
                let me = me.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.unwrap().to_bytes();
                    let n = me.calls.fetch_add(1, Ordering::SeqCst);
                    let status = if n < fail_first { 500 } else { 200 };
                    if status == 200 {
                        let v: Value = serde_json::from_slice(&bytes).unwrap();
                        me.received.lock().unwrap().push((parts.headers, v));
                    }
                    http::Response::builder()
                        .status(status)
                        .body(Body::empty())
                        .unwrap()
                }
            },
            std::future::pending(),
        ));
        (c, format!("http://{addr}/logs"))
    }

    /// The bodies received, waiting (bounded) until `n` arrived.
    async fn bodies(&self, n: usize) -> Vec<(http::HeaderMap, Value)> {
        for _ in 0..200 {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} http-log calls arrived");
    }
}

/// The recipe with `log_statistics` on the targets and a global `http-log` configured so.
async fn recipe_with_http_log(config: Value) -> Stack {
    Stack::start(move |m| {
        let mut snap = recipe(m);
        let mut ai = recipe_ai_config(m);
        for t in ai["targets"].as_array_mut().unwrap() {
            t["logging"] = json!({"log_statistics": true});
        }
        snap.plugins[1].config = ai;
        snap.plugins.push(plugin(
            json!({"id": "p-http-log", "name": "http-log", "config": config}),
        ));
        snap
    })
    .await
}

#[tokio::test]
async fn batched_entries_arrive_as_a_json_array_with_basic_auth_from_the_user_info() {
    let (collector, url) = Collector::start(0).await;
    let endpoint = url.replace("http://", "http://logger:s%3Acret@");
    let s = recipe_with_http_log(json!({
        "http_endpoint": endpoint,
        "headers": {"X-Source": "gantry-test"},
        "queue": {"max_batch_size": 3, "max_coalescing_delay": 5},
    }))
    .await;
    for model in ["fast", "smart", "fast"] {
        let res = s.chat(hello(model)).await;
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    let got = collector.bodies(1).await;
    let (headers, body) = &got[0];
    let batch = body.as_array().expect("a batch is a JSON array");
    assert_eq!(batch.len(), 3);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-source"], "gantry-test");
    // base64("logger:s:cret")
    assert_eq!(headers["authorization"], "Basic bG9nZ2VyOnM6Y3JldA==");
    let aliases: Vec<&str> = batch
        .iter()
        .map(|e| e["ai"]["proxy"]["meta"]["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["fast", "smart", "fast"]);
    for e in batch {
        assert_eq!(e["consumer"]["username"], "demo-app");
        assert!(e["ai"]["proxy"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert_eq!(e["request"]["headers"]["apikey"], "REDACTED");
    }
    let text = body.to_string();
    assert!(!text.contains(DEMO_KEY) && !text.contains("sk-test-provider-token"));
}

#[tokio::test]
async fn a_failed_send_is_retried_until_the_endpoint_takes_it() {
    let (collector, url) = Collector::start(2).await;
    let s = recipe_with_http_log(json!({
        "http_endpoint": url,
        "queue": {"initial_retry_delay": 0.01, "max_retry_time": 10},
    }))
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    let got = collector.bodies(1).await;
    // One entry per call with the default batch size: a JSON object, delivered on the 3rd try.
    assert!(got[0].1.is_object());
    assert_eq!(got[0].1["ai"]["proxy"]["meta"]["alias"], "fast");
    assert_eq!(collector.calls.load(Ordering::SeqCst), 3);
}

/// Median latency of `n` recipe calls.
async fn median_latency(s: &Stack, n: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let res = s.chat(hello("fast")).await;
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test]
async fn a_dead_endpoint_leaves_proxy_latency_unchanged_and_the_full_queue_counts_its_drops() {
    // An endpoint that accepts connections and never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = black_hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = black_hole.accept().await {
            held.push(sock);
        }
    });
    let plain = Stack::start(recipe).await;
    let logged = recipe_with_http_log(json!({
        "http_endpoint": format!("http://{addr}/logs"),
        "timeout": 60000,
        "queue": {"max_entries": 5},
    }))
    .await;
    let drops = || METRICS.log_dropped.with_label_values(&["http-log"]).get();
    let before = drops();
    let base = median_latency(&plain, 30).await;
    let with_log = median_latency(&logged, 30).await;
    assert!(
        with_log <= base * 3 + Duration::from_millis(10),
        "median latency {base:?} without http-log, {with_log:?} with a dead endpoint"
    );
    // 30 entries: one in flight to the black hole, at most 5 waiting, the rest dropped.
    let lost = drops() - before;
    assert!(lost >= 24, "dropped {lost}");
}

#[test]
fn kongs_defaults_and_rules() {
    use embedded_gateway::plugins::normalize_config;
    let c = normalize_config(
        "http-log",
        &json!({"http_endpoint": "http://collector:9000/logs"}),
    )
    .unwrap();
    assert_eq!(c["method"], "POST");
    assert_eq!(c["content_type"], "application/json");
    assert_eq!(c["timeout"], 10000);
    assert_eq!(c["keepalive"], 60000);
    assert_eq!(
        c["queue"],
        json!({"max_batch_size": 1, "max_coalescing_delay": 1.0, "max_entries": 10000,
               "max_bytes": null, "max_retry_time": 60.0, "initial_retry_delay": 0.01,
               "max_retry_delay": 60.0, "concurrency_limit": 1})
    );
    let errs = normalize_config(
        "http-log",
        &json!({"http_endpoint": "http://u:p@collector/logs", "headers": {"Authorization": "x", "Host": "y"}}),
    )
    .unwrap_err();
    let text = format!("{errs:?}");
    assert!(text.contains("user info"), "{text}");
    assert!(text.contains("cannot contain 'Host'"), "{text}");
    assert!(
        !text.contains("u:p@"),
        "the endpoint is never quoted: {text}"
    );
    let errs = normalize_config(
        "http-log",
        &json!({"http_endpoint": "http://collector/logs", "queue": {"concurrency_limit": 2}}),
    )
    .unwrap_err();
    assert!(format!("{errs:?}").contains("concurrency_limit"));
    let mut masked = c.clone();
    embedded_gateway::plugins::mask_secrets("http-log", &mut masked);
    assert_eq!(masked["http_endpoint"], "[masked]");
}
