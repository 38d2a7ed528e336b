//! Shared helpers for the proxy tests: real listeners on 127.0.0.1:0 for the gateway (through
//! `server::serve`) and for `mock-llm`, and snapshot builders for the recipe configuration.

use std::net::SocketAddr;

use embedded_gateway::model::{Consumer, KeyAuthCredential, Plugin, Route, Service};
use embedded_gateway::proxy::{Proxy, ProxyOptions};
use embedded_gateway::server::{Limits, Protocols, serve};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Starts `mock-llm` on an ephemeral port; it lives as long as the test's runtime.
pub async fn start_mock() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(embedded_gateway::mock_llm::serve(
        listener,
        std::future::pending(),
    ));
    addr
}

/// Serves `proxy` on an ephemeral port through the hardened listener.
pub async fn start_proxy(proxy: Proxy) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = move |req, remote| {
        let proxy = proxy.clone();
        async move { proxy.handle(req, remote).await }
    };
    tokio::spawn(serve(
        Protocols::Http1,
        listener,
        Limits::default(),
        handler,
        std::future::pending(),
    ));
    addr
}

/// A running gateway in front of a running mock provider.
pub struct Stack {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub mock: SocketAddr,
    pub http: reqwest::Client,
}

impl Stack {
    /// Gateway + mock with `snapshot(mock_addr)` applied.
    pub async fn start(snapshot: impl FnOnce(SocketAddr) -> ConfigSnapshot) -> Self {
        let mock = start_mock().await;
        let proxy = Proxy::new(ProxyOptions::default());
        proxy.apply(&snapshot(mock));
        let addr = start_proxy(proxy.clone()).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            proxy,
            addr,
            mock,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a chat request with the recipe's demo key.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.chat_with(&[("authorization", "Bearer unused")], body)
            .await
    }

    /// POSTs a chat request with the recipe's demo key and these extra headers.
    pub async fn chat_with(&self, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/basic-llm-routing/chat/completions"))
            .header("apikey", DEMO_KEY);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.json(&body).send().await.unwrap()
    }

    /// What the mock provider received, oldest first.
    pub async fn upstream_requests(&self) -> Vec<Value> {
        let url = format!("http://{}/_mock/requests", self.mock);
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    pub async fn mock_stats(&self) -> Value {
        let url = format!("http://{}/_mock/stats", self.mock);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub const DEMO_KEY: &str = "demo-api-key";
pub const PROVIDER_TOKEN: &str = "Bearer sk-test-provider-token-123";
pub const CONSUMER_ID: &str = "8c7b1f7e-0000-4000-8000-000000000001";
pub const CREDENTIAL_ID: &str = "8c7b1f7e-0000-4000-8000-0000000000c1";
pub const SERVICE_ID: &str = "8c7b1f7e-0000-4000-8000-0000000000a1";
pub const ROUTE_ID: &str = "8c7b1f7e-0000-4000-8000-0000000000b1";

pub fn service(id: &str, url_host: &str, port: u16, path: Option<&str>) -> Service {
    serde_json::from_value(
        json!({"id": id, "name": id, "host": url_host, "port": port, "path": path}),
    )
    .unwrap()
}

pub fn route(v: Value) -> Route {
    serde_json::from_value(v).unwrap()
}

pub fn plugin(v: Value) -> Plugin {
    serde_json::from_value(v).unwrap()
}

pub fn demo_consumer() -> (Consumer, KeyAuthCredential) {
    let c = serde_json::from_value(
        json!({"id": CONSUMER_ID, "username": "demo-app", "custom_id": "app-42"}),
    )
    .unwrap();
    let k = serde_json::from_value(
        json!({"id": CREDENTIAL_ID, "consumer": {"id": CONSUMER_ID}, "key": DEMO_KEY}),
    )
    .unwrap();
    (c, k)
}

/// The recipe's two targets (fast → gpt-4o-mini, smart → gpt-4o) pointed at the mock.
pub fn recipe_ai_config(mock: SocketAddr) -> Value {
    let url = format!("http://{mock}/v1/chat/completions");
    let target = |alias: &str, name: &str| {
        json!({
            "route_type": "llm/v1/chat",
            "auth": {"header_name": "Authorization", "header_value": PROVIDER_TOKEN},
            "model": {"provider": "openai", "name": name, "model_alias": alias, "options": {"upstream_url": url}},
        })
    };
    json!({"targets": [target("fast", "gpt-4o-mini"), target("smart", "gpt-4o")]})
}

/// The recipe: service + `/basic-llm-routing` route + key-auth + ai-proxy-advanced + demo-app.
pub fn recipe_with(key_auth: Value, ai: Value) -> ConfigSnapshot {
    let (c, k) = demo_consumer();
    ConfigSnapshot {
        revision: 1,
        services: vec![service(SERVICE_ID, "localhost", 80, None)],
        routes: vec![route(
            json!({"id": ROUTE_ID, "name": "basic-llm-routing", "paths": ["/basic-llm-routing"], "service": {"id": SERVICE_ID}}),
        )],
        consumers: vec![c],
        key_auths: vec![k],
        plugins: vec![
            plugin(
                json!({"id": "p-key-auth", "name": "key-auth", "route": {"id": ROUTE_ID}, "config": key_auth}),
            ),
            plugin(
                json!({"id": "p-ai", "name": "ai-proxy-advanced", "route": {"id": ROUTE_ID}, "config": ai}),
            ),
        ],
    }
}

pub fn recipe(mock: SocketAddr) -> ConfigSnapshot {
    recipe_with(
        json!({"key_names": ["apikey"], "hide_credentials": true}),
        recipe_ai_config(mock),
    )
}

pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

/// Asserts the header is a 32-character lowercase hex request id.
pub fn assert_request_id(res: &reqwest::Response) {
    let id = res
        .headers()
        .get("x-kong-request-id")
        .expect("X-Kong-Request-Id")
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}
