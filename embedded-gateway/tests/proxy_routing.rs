//! Route matching through the real proxy: Kong priorities, 404 for no match, strip_path and
//! path_handling, preserve_host, query hide_credentials on a plain route, and the config swap.

use std::net::SocketAddr;
use std::time::Duration;

use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::{Value, json};

use crate::proxy_harness::*;

/// Plain routes to the mock (which records every request, whatever the path).
fn plain_routes(mock: SocketAddr) -> ConfigSnapshot {
    let (c, k) = demo_consumer();
    let svc = |id: &str, path: Option<&str>| service(id, "127.0.0.1", mock.port(), path);
    ConfigSnapshot {
        revision: 7,
        services: vec![svc("s-root", None), svc("s-api", Some("/backend"))],
        routes: vec![
            route(
                json!({"id": "r-root", "paths": ["/"], "service": {"id": "s-root"}, "strip_path": false}),
            ),
            route(json!({"id": "r-api", "paths": ["/api"], "service": {"id": "s-api"}})),
            route(
                json!({"id": "r-api-v1", "paths": ["/api/v1"], "service": {"id": "s-api"}, "strip_path": false}),
            ),
            route(
                json!({"id": "r-regex", "paths": ["~/items/\\d+$"], "service": {"id": "s-api"}, "regex_priority": 5}),
            ),
            route(
                json!({"id": "r-post", "paths": ["/api"], "methods": ["POST"], "service": {"id": "s-root"}, "strip_path": false}),
            ),
            route(
                json!({"id": "r-host", "paths": ["/api"], "hosts": ["*.example.test"], "service": {"id": "s-root"}, "preserve_host": true, "strip_path": false}),
            ),
            route(
                json!({"id": "r-secure", "paths": ["/secure"], "service": {"id": "s-root"}, "strip_path": false}),
            ),
        ],
        consumers: vec![c],
        key_auths: vec![k],
        plugins: vec![
            plugin(
                json!({"id": "ka", "name": "key-auth", "route": {"id": "r-secure"}, "config": {"hide_credentials": true}}),
            ),
            plugin(
                json!({"id": "off", "name": "key-auth", "route": {"id": "r-api"}, "enabled": false, "config": {}}),
            ),
        ],
    }
}

async fn last_upstream(s: &Stack) -> Value {
    s.upstream_requests()
        .await
        .pop()
        .expect("the upstream was called")
}

#[tokio::test]
async fn routes_match_by_kong_priority_and_strip_paths() {
    let s = Stack::start(plain_routes).await;
    // (method, host, path, upstream path expected)
    let table = [
        ("GET", None, "/anything", "/anything"),
        ("GET", None, "/api/users", "/backend/users"),
        ("GET", None, "/api", "/backend"),
        ("GET", None, "/api/v1/users", "/backend/api/v1/users"),
        ("GET", None, "/items/42", "/backend"),
        ("POST", None, "/api/users", "/api/users"),
        ("GET", Some("a.example.test"), "/api/x", "/api/x"),
    ];
    for (method, host, path, expected) in table {
        let mut req = s.http.request(method.parse().unwrap(), s.url(path));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let res = req.send().await.unwrap();
        assert_request_id(&res);
        let seen = last_upstream(&s).await;
        assert_eq!(seen["path"], expected, "{method} {host:?} {path}");
        if let Some(h) = host {
            assert_eq!(
                seen["headers"]["host"], h,
                "preserve_host keeps the client's Host"
            );
        }
    }
}

#[tokio::test]
async fn no_matching_route_is_a_kong_404() {
    let s = Stack::start(|m| {
        let mut snap = plain_routes(m);
        snap.routes.retain(|r| r.id != "r-root");
        snap
    })
    .await;
    let res = s.http.get(s.url("/nothing/here")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_request_id(&res);
    assert!(res.headers().contains_key("x-kong-response-latency"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "no Route matched with those values"})
    );
    assert!(s.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn hide_credentials_removes_a_query_key_and_keeps_other_args_in_order() {
    let s = Stack::start(plain_routes).await;
    let res = s
        .http
        .get(s.url("/secure/x?a=1&apikey=demo-api-key&b=2"))
        .send()
        .await
        .unwrap();
    assert_request_id(&res);
    let seen = last_upstream(&s).await;
    assert_eq!(seen["query"], "a=1&b=2");
    assert_eq!(seen["headers"]["x-consumer-username"], "demo-app");
}

#[tokio::test]
async fn disabled_plugins_do_not_run() {
    let s = Stack::start(plain_routes).await;
    let res = s.http.get(s.url("/api/open")).send().await.unwrap();
    assert_ne!(res.status(), 401);
}

#[tokio::test]
async fn in_flight_requests_survive_a_config_swap() {
    let s = Stack::start(recipe).await;
    let slow = {
        let http = s.http.clone();
        let url = s.url("/basic-llm-routing/chat/completions");
        tokio::spawn(async move {
            http.post(url)
                .header("apikey", DEMO_KEY)
                .header("x-mock-fault", "slow")
                .header("x-mock-delay-ms", "600")
                .json(&hello("fast"))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = recipe(s.mock);
    next.revision = 2;
    next.routes.clear();
    s.proxy.apply(&next);
    assert_eq!(s.proxy.revision(), 2);
    let fresh = s.chat(hello("fast")).await;
    assert_eq!(fresh.status(), 404, "new requests use the new table");
    let res = slow.await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the in-flight request finishes on the old table"
    );
    assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4o-mini");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
}
