//! The `prometheus` plugin and `GET /metrics` through real listeners: Kong's families and
//! labels, counters that match the traffic sent (the consumer label only with
//! `per_consumer`), the status listener without the admin token, and a slow scraper that
//! leaves the proxy's latency alone. Metrics are process-wide, so each test here names its
//! own route (and only the first sends AI traffic with `ai_metrics` on).

use std::time::{Duration, Instant};

use embedded_gateway::server::{Limits, Protocols, serve};
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::admin::config;
use crate::proxy_harness::*;

/// The recipe with a global `prometheus` plugin (`config`), its route named `route_name`,
/// and `log_statistics` plus costs on the targets.
async fn recipe_with_prometheus(route_name: &str, prom: Value) -> Stack {
    let route_name = route_name.to_owned();
    Stack::start(move |m| {
        let mut snap = recipe(m);
        snap.routes[0] = route(
            json!({"id": ROUTE_ID, "name": route_name, "paths": ["/basic-llm-routing"], "service": {"id": SERVICE_ID}}),
        );
        let mut ai = recipe_ai_config(m);
        for t in ai["targets"].as_array_mut().unwrap() {
            t["logging"] = json!({"log_statistics": true});
            t["model"]["options"]["input_cost"] = json!(2.5);
            t["model"]["options"]["output_cost"] = json!(10.0);
        }
        snap.plugins[1].config = ai;
        snap.plugins.push(plugin(
            json!({"id": "p-prometheus", "name": "prometheus", "config": prom}),
        ));
        snap
    })
    .await
}

/// Serves the status router (`/metrics` only) on an ephemeral port.
async fn status_listener() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = embedded_gateway::admin::metrics::status_router();
    tokio::spawn(serve(
        Protocols::Http1,
        listener,
        Limits::default(),
        move |req: http::Request<hyper::body::Incoming>, _| {
            let router = router.clone();
            async move {
                use tower::ServiceExt;
                match router.oneshot(req.map(axum::body::Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        },
        std::future::pending(),
    ));
    format!("http://{addr}/metrics")
}

async fn scrape(url: &str) -> Scrape {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = res.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text parses")
}

fn labels_match(s: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
}

/// The value of the counter sample `metric` with these labels (0 when absent).
fn counter(scrape: &Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels_match(s, want))
        .map(|s| match s.value {
            PromValue::Counter(v) | PromValue::Untyped(v) | PromValue::Gauge(v) => v,
            _ => panic!("{metric} is not a counter"),
        })
        .sum()
}

/// The observation count of the histogram `metric` with these labels.
fn histogram_count(scrape: &Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels_match(s, want))
        .map(|s| match &s.value {
            PromValue::Histogram(b) => b.iter().map(|c| c.count).fold(0.0, f64::max),
            _ => panic!("{metric} is not a histogram"),
        })
        .sum()
}

/// Scrapes until `ready` holds (the log phase runs just after the response's last byte).
async fn scrape_until(url: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let s = scrape(url).await;
        if ready(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("metrics never reached the expected values");
}

fn usage_of_stream(text: &str) -> Value {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk")["usage"]
        .clone()
}

#[tokio::test]
async fn metrics_count_the_requests_tokens_and_cost_per_consumer_with_kongs_names() {
    let route_name = "prom-counts";
    let s = recipe_with_prometheus(
        route_name,
        json!({"per_consumer": true, "status_code_metrics": true, "latency_metrics": true,
               "bandwidth_metrics": true, "ai_metrics": true}),
    )
    .await;
    let url = status_listener().await;
    let (mut prompt, mut completion) = (0u64, 0u64);
    for model in ["fast", "fast", "smart"] {
        let res = s.chat(hello(model)).await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        prompt += v["usage"]["prompt_tokens"].as_u64().unwrap();
        completion += v["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let res = s
        .chat(
            json!({"model": "fast", "stream": true, "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "Count to three"}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let u = usage_of_stream(&res.text().await.unwrap());
    prompt += u["prompt_tokens"].as_u64().unwrap();
    completion += u["completion_tokens"].as_u64().unwrap();
    // One caller without a key: key-auth answers 401 itself.
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .json(&hello("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let route = ("route", route_name);
    let ok = [
        route,
        ("code", "200"),
        ("source", "service"),
        ("consumer", "demo-app"),
        ("service", SERVICE_ID),
        ("workspace", "default"),
    ];
    let denied = [route, ("code", "401"), ("source", "kong"), ("consumer", "")];
    let m = scrape_until(&url, |m| {
        counter(m, "kong_http_requests_total", &ok) >= 4.0
            && counter(m, "kong_http_requests_total", &denied) >= 1.0
    })
    .await;
    assert_eq!(counter(&m, "kong_http_requests_total", &ok), 4.0);
    assert_eq!(counter(&m, "kong_http_requests_total", &denied), 1.0);
    assert_eq!(counter(&m, "kong_http_requests_total", &[route]), 5.0);
    for h in ["kong_request_latency_ms", "kong_kong_latency_ms"] {
        assert_eq!(histogram_count(&m, h, &[route]), 5.0, "{h}");
    }
    assert_eq!(
        histogram_count(&m, "kong_upstream_latency_ms", &[route]),
        4.0
    );
    assert!(
        counter(
            &m,
            "kong_bandwidth_bytes",
            &[route, ("direction", "egress")]
        ) > 0.0
    );
    assert!(
        counter(
            &m,
            "kong_bandwidth_bytes",
            &[route, ("direction", "ingress")]
        ) > 0.0
    );

    // AI families: labelled by provider and the upstream model (not the alias), per consumer.
    let who = ("consumer", "demo-app");
    let mini = [("ai_provider", "openai"), ("ai_model", "gpt-4o-mini"), who];
    let big = [("ai_provider", "openai"), ("ai_model", "gpt-4o"), who];
    assert_eq!(counter(&m, "kong_ai_llm_requests_total", &mini), 3.0);
    assert_eq!(counter(&m, "kong_ai_llm_requests_total", &big), 1.0);
    let tokens =
        |kind: &str| counter(&m, "kong_ai_llm_tokens_total", &[who, ("token_type", kind)]) as u64;
    assert_eq!(tokens("prompt_tokens"), prompt);
    assert_eq!(tokens("completion_tokens"), completion);
    assert_eq!(tokens("total_tokens"), prompt + completion);
    let cost = counter(&m, "kong_ai_llm_cost_total", &[who]);
    let want = (prompt as f64 * 2.5 + completion as f64 * 10.0) / 1e6;
    assert!((cost - want).abs() < 1e-9, "{cost} != {want}");
    assert_eq!(
        histogram_count(&m, "kong_ai_llm_provider_latency_ms", &[who]),
        4.0
    );
}

#[tokio::test]
async fn without_per_consumer_the_consumer_label_stays_empty_and_switches_gate_families() {
    let route_name = "prom-no-consumer";
    let s = recipe_with_prometheus(route_name, json!({"status_code_metrics": true})).await;
    let url = status_listener().await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    let route = ("route", route_name);
    let m = scrape_until(&url, |m| {
        counter(m, "kong_http_requests_total", &[route]) >= 1.0
    })
    .await;
    assert_eq!(
        counter(&m, "kong_http_requests_total", &[route, ("consumer", "")]),
        1.0
    );
    // latency_metrics and bandwidth_metrics are off: nothing recorded for this route.
    assert_eq!(
        histogram_count(&m, "kong_request_latency_ms", &[route]),
        0.0
    );
    assert_eq!(counter(&m, "kong_bandwidth_bytes", &[route]), 0.0);
}

#[tokio::test]
async fn the_status_listener_serves_metrics_without_the_admin_token_and_the_admin_one_wants_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.admin_token = Some("admin-canary-token".into());
    c.status_listen = Some("127.0.0.1:0".parse().unwrap());
    let gw = embedded_gateway::bind(c).await.unwrap();
    let status = gw.status_addr().expect("status listener bound");
    let admin = gw.admin_addr();
    tokio::spawn(gw.run(std::future::pending()));
    let m = scrape(&format!("http://{status}/metrics")).await;
    assert_eq!(counter(&m, "kong_datastore_reachable", &[]), 1.0);
    // Only /metrics is on the status listener.
    let res = reqwest::get(format!("http://{status}/services"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .header("Kong-Admin-Token", "admin-canary-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE kong_http_requests_total counter"),
        "{text}"
    );
    assert!(!text.contains("admin-canary-token"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_busy_scrapers_leave_the_proxy_latency_unchanged() {
    let route_name = "prom-slow-scraper";
    let s = recipe_with_prometheus(
        route_name,
        json!({"status_code_metrics": true, "latency_metrics": true}),
    )
    .await;
    let url = status_listener().await;
    let base = median_latency(&s, 30).await;
    // Scrapers that send a request and never read the answer keep their connections open...
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let mut stalled = Vec::new();
    for _ in 0..8 {
        use tokio::io::AsyncWriteExt;
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(sock);
    }
    // ...while another scrapes as fast as it can.
    let busy = tokio::spawn(async move {
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                let _ = r.bytes().await;
            }
        }
    });
    let loaded = median_latency(&s, 30).await;
    busy.abort();
    drop(stalled);
    assert!(
        loaded <= base * 4 + Duration::from_millis(20),
        "median proxy latency {base:?} alone, {loaded:?} while scraped"
    );
    let m = scrape(&status_listener().await).await;
    assert_eq!(
        counter(&m, "kong_http_requests_total", &[("route", route_name)]),
        60.0
    );
}

#[tokio::test]
async fn a_failover_is_counted_for_the_target_that_failed() {
    // A port that refuses connections while `_hold` lives.
    let hold = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hold.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let dead = hold.local_addr().unwrap().as_socket().unwrap();
    let s = Stack::start(move |m| {
        let mut snap = recipe(m);
        let target = |name: &str, addr: std::net::SocketAddr, weight: u32| {
            json!({"route_type": "llm/v1/chat", "weight": weight,
                "auth": {"header_name": "Authorization", "header_value": PROVIDER_TOKEN},
                "model": {"provider": "openai", "name": name, "model_alias": "fast",
                          "options": {"upstream_url": format!("http://{addr}/v1/chat/completions")}}})
        };
        snap.plugins[1].config = json!({
            "balancer": {"algorithm": "priority", "retries": 2},
            "targets": [target("gpt-failover-metric-dead", dead, 100), target("gpt-failover-metric-backup", m, 10)],
        });
        snap.plugins.push(plugin(
            json!({"id": "p-prometheus", "name": "prometheus", "config": {}}),
        ));
        snap
    })
    .await;
    let url = status_listener().await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-kong-llm-model"],
        "openai/gpt-failover-metric-backup"
    );
    res.bytes().await.unwrap();
    let dead_target = [
        ("ai_provider", "openai"),
        ("ai_model", "gpt-failover-metric-dead"),
    ];
    let m = scrape_until(&url, |m| {
        counter(m, "gantry_ai_failovers_total", &dead_target) >= 1.0
    })
    .await;
    assert_eq!(counter(&m, "gantry_ai_failovers_total", &dead_target), 1.0);
    assert_eq!(
        counter(
            &m,
            "gantry_ai_failovers_total",
            &[("ai_model", "gpt-failover-metric-backup")]
        ),
        0.0
    );
}
