//! Plugin resolution through the real proxy: ai-proxy as the single-target form, service and
//! global scopes, consumer-scoped overrides after auth, and invalid configs failing closed.

use serde_json::{Value, json};

use crate::proxy_harness::*;

#[tokio::test]
async fn ai_proxy_runs_as_a_single_target_ai_proxy_advanced() {
    let s = Stack::start(|m| {
        let mut snap = recipe(m);
        snap.plugins[1] = plugin(json!({"id": "single", "name": "ai-proxy", "route": {"id": ROUTE_ID}, "config": {
            "route_type": "llm/v1/chat",
            "auth": {"header_name": "Authorization", "header_value": PROVIDER_TOKEN},
            "model": {"provider": "openai", "name": "gpt-4.1", "options": {"upstream_url": format!("http://{m}/v1/chat/completions")}}}}));
        snap
    })
    .await;
    let res = s.chat(hello("anything")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4.1");
    assert_eq!(s.upstream_requests().await[0]["body"]["model"], "gpt-4.1");
}

#[tokio::test]
async fn service_and_global_plugins_apply_and_route_plugins_win() {
    let s = Stack::start(|m| {
        let mut snap = recipe(m);
        // key-auth moves to the global scope; a route-scoped one with another key name wins.
        snap.plugins[0] = plugin(json!({"id": "global-ka", "name": "key-auth", "config": {"key_names": ["global-key"]}}));
        snap.plugins.push(plugin(json!({"id": "route-ka", "name": "key-auth", "route": {"id": ROUTE_ID}, "config": {"key_names": ["apikey"]}})));
        // ai-proxy-advanced moves to the service scope.
        snap.plugins[1].route = None;
        snap.plugins[1].service = Some(embedded_gateway::model::ForeignKey::new(SERVICE_ID));
        snap
    })
    .await;
    let res = s.chat(hello("smart")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4o");
}

#[tokio::test]
async fn a_consumer_scoped_ai_plugin_overrides_the_route_one_after_auth() {
    let s = Stack::start(|m| {
        let mut snap = recipe(m);
        let mut ai = recipe_ai_config(m);
        ai["targets"][0]["model"]["name"] = json!("gpt-4o-mini-for-demo-app");
        snap.plugins.push(plugin(
            json!({"id": "per-consumer", "name": "ai-proxy-advanced",
            "route": {"id": ROUTE_ID}, "consumer": {"id": CONSUMER_ID}, "config": ai}),
        ));
        snap
    })
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(
        res.headers()["x-kong-llm-model"],
        "openai/gpt-4o-mini-for-demo-app"
    );
}

#[tokio::test]
async fn an_unusable_plugin_config_fails_closed_with_500() {
    let s = Stack::start(|m| {
        let mut snap = recipe(m);
        snap.plugins[1].config = json!({"targets": "not-a-list"});
        snap
    })
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 500);
    assert_request_id(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"message": "An unexpected error occurred"}));
    assert!(s.upstream_requests().await.is_empty());
}
