//! The admin API over a real server on 127.0.0.1:0 and a real store (SQLite, or PostgreSQL
//! when compiled into `postgres::`): entity CRUD, nested paths, pagination, tag filters, Kong
//! error shapes and plugin schema validation.

use std::path::Path;
use std::time::Duration;

use embedded_gateway::{Gateway, GatewayConfig};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A gateway running in this test process.
pub struct TestGateway {
    pub base: String,
    /// `http://127.0.0.1:PORT` of the proxy listener (read by the SQLite-only suites).
    #[allow(dead_code)]
    pub proxy_base: String,
    pub gateway_proxy: embedded_gateway::proxy::Proxy,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A gateway config on this suite's backend: for PostgreSQL, a schema of its own named after
/// `dir` (so a restart on the same dir finds the same data).
pub fn config(dir: &Path) -> GatewayConfig {
    let mut c = GatewayConfig::new(dir);
    c.proxy_listen = "127.0.0.1:0".parse().unwrap();
    c.admin_listen = "127.0.0.1:0".parse().unwrap();
    if super::BACKEND == crate::Backend::Postgres {
        c.store_url = crate::pg::schema_url(&crate::pg::schema_for(&dir.display().to_string()));
    }
    c
}

/// A store handle on the same data a gateway started with `config(dir)` uses.
pub fn same_store(dir: &Path) -> Option<embedded_gateway::store::Store> {
    match config(dir).store_url {
        Some(url) => Some(embedded_gateway::store::Store::postgres(&url).unwrap()),
        None if super::BACKEND == crate::Backend::Postgres => None,
        None => Some(embedded_gateway::store::Store::open(dir).unwrap()),
    }
}

pub async fn start(dir: &Path) -> Option<TestGateway> {
    start_with(config(dir)).await
}

/// Starts the gateway; `None` when the suite's backend is not available here.
pub async fn start_with(config: GatewayConfig) -> Option<TestGateway> {
    if super::BACKEND == crate::Backend::Postgres
        && config.store_url.is_none()
        && config.dbless.is_none()
    {
        return None;
    }
    let gw: Gateway = embedded_gateway::bind(config).await.expect("gateway binds");
    let base = format!("http://{}", gw.admin_addr());
    let proxy_base = format!("http://{}", gw.proxy_addr());
    let gateway_proxy = gw.proxy().clone();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(gw.run(async {
        let _ = rx.await;
    }));
    Some(TestGateway {
        base,
        proxy_base,
        gateway_proxy,
        http: reqwest::Client::new(),
        stop: Some(tx),
        task: Some(task),
    })
}

impl TestGateway {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("admin answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    /// Creates and returns an entity, asserting 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 201, "POST {path}: {v}");
        v
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("gateway drains")
                .unwrap();
        }
    }
}

fn tmp() -> TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn services_support_create_get_by_id_and_name_patch_put_and_delete() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let svc = gw
        .create(
            "/services",
            json!({"name": "llm", "host": "example.com", "tags": ["a"]}),
        )
        .await;
    assert_eq!(svc["port"], 80);
    assert_eq!(svc["retries"], 5);
    assert_eq!(svc["protocol"], "http");
    assert_eq!(svc["connect_timeout"], 60000);
    assert!(svc["created_at"].is_i64() && svc["updated_at"].is_i64());
    let id = svc["id"].as_str().unwrap();
    assert_eq!(gw.get(&format!("/services/{id}")).await.1, svc);
    assert_eq!(gw.get("/services/llm").await.1, svc);

    let (s, patched) = gw
        .call("PATCH", "/services/llm", Some(json!({"port": 8080})))
        .await;
    assert_eq!(
        (s, patched["port"].clone(), patched["id"].clone()),
        (200, json!(8080), json!(id))
    );

    let (s, put) = gw
        .call(
            "PUT",
            "/services/other",
            Some(json!({"host": "other.example"})),
        )
        .await;
    assert_eq!((s, put["name"].clone()), (200, json!("other")));
    let (s, replaced) = gw
        .call(
            "PUT",
            &format!("/services/{id}"),
            Some(json!({"name": "llm", "host": "new.example"})),
        )
        .await;
    assert_eq!(
        (s, replaced["port"].clone(), replaced["created_at"].clone()),
        (200, json!(80), svc["created_at"].clone())
    );

    let (s, _) = gw.call("DELETE", "/services/llm", None).await;
    assert_eq!(s, 204);
    assert_eq!(
        gw.get("/services/llm").await,
        (404, json!({"message": "Not found"}))
    );
    gw.stop().await;
}

#[tokio::test]
async fn service_url_shorthand_is_split_into_protocol_host_port_and_path() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let svc = gw
        .create(
            "/services",
            json!({"name": "s", "url": "https://api.openai.com:8443/v1"}),
        )
        .await;
    assert_eq!(
        (
            svc["protocol"].clone(),
            svc["host"].clone(),
            svc["port"].clone(),
            svc["path"].clone()
        ),
        (
            json!("https"),
            json!("api.openai.com"),
            json!(8443),
            json!("/v1")
        )
    );
    assert!(svc.get("url").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn routes_nest_under_services_and_a_service_with_routes_cannot_be_deleted() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let svc = gw
        .create("/services", json!({"name": "s", "host": "h"}))
        .await;
    let route = gw
        .create(
            "/services/s/routes",
            json!({"name": "r", "paths": ["/chat"]}),
        )
        .await;
    assert_eq!(route["service"], json!({"id": svc["id"]}));
    assert_eq!(route["protocols"], json!(["http", "https"]));
    assert_eq!(route["strip_path"], true);
    let (_, nested) = gw.get("/services/s/routes").await;
    assert_eq!(nested["data"].as_array().unwrap().len(), 1);
    assert_eq!(gw.get("/services/s/routes/r").await.0, 200);
    let (s, err) = gw.call("DELETE", "/services/s", None).await;
    assert_eq!(s, 400);
    assert_eq!(err["code"], 4);
    assert_eq!(
        err["message"],
        "an existing 'routes' entity references this 'services' entity"
    );

    let (s, err) = gw
        .post(
            "/routes",
            json!({"paths": ["/x"], "service": {"id": "00000000-0000-0000-0000-000000000001"}}),
        )
        .await;
    assert_eq!((s, err["code"].clone()), (400, json!(4)));
    gw.stop().await;
}

#[tokio::test]
async fn consumers_own_key_auth_credentials_and_deleting_a_consumer_cascades() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let consumer = gw.create("/consumers", json!({"username": "alice"})).await;
    let cred = gw
        .create("/consumers/alice/key-auth", json!({"key": "s3cret-key"}))
        .await;
    assert_eq!(cred["consumer"], json!({"id": consumer["id"]}));
    let generated = gw.create("/consumers/alice/key-auth", json!({})).await;
    assert_eq!(generated["key"].as_str().unwrap().len(), 32);
    assert_eq!(
        gw.get("/key-auths").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(gw.get("/key-auths/s3cret-key").await.1["id"], cred["id"]);
    let odd = gw
        .create("/consumers/alice/key-auth", json!({"key": "a b+c"}))
        .await;
    assert_eq!(gw.get("/key-auths/a%20b%2Bc").await.1["id"], odd["id"]);
    assert_eq!(gw.call("DELETE", "/key-auths/a%20b%2Bc", None).await.0, 204);
    let (s, err) = gw
        .post("/consumers/alice/plugins", json!({"name": "key-auth"}))
        .await;
    assert_eq!(
        (s, err["fields"]["consumer"].clone()),
        (400, json!("value must be null"))
    );
    let model = json!({"provider": "openai", "name": "gpt-4o"});
    let targets = json!([{"route_type": "llm/v1/chat", "model": model}]);
    gw.create(
        "/consumers/alice/plugins",
        json!({"name": "ai-proxy-advanced", "config": {"targets": targets}}),
    )
    .await;

    let (s, dup) = gw
        .post("/consumers/alice/key-auth", json!({"key": "s3cret-key"}))
        .await;
    assert_eq!((s, dup["code"].clone()), (409, json!(5)));
    assert!(
        !dup.to_string().contains("s3cret-key"),
        "a key never appears in an error: {dup}"
    );

    let (s, err) = gw.post("/consumers", json!({"tags": ["x"]})).await;
    assert_eq!(s, 400);
    assert_eq!(
        err["fields"]["@entity"],
        "at least one of these fields must be non-empty: 'custom_id', 'username'"
    );

    assert_eq!(gw.call("DELETE", "/consumers/alice", None).await.0, 204);
    assert_eq!(gw.get("/key-auths").await.1["data"], json!([]));
    assert_eq!(gw.get("/plugins").await.1["data"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn plugins_are_validated_and_normalised_with_the_committed_schemas() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    gw.create("/services", json!({"name": "s", "host": "h"}))
        .await;
    let plugin = gw
        .create(
            "/services/s/plugins",
            json!({"name": "key-auth", "config": {"key_names": ["apikey"]}}),
        )
        .await;
    assert_eq!(plugin["config"]["hide_credentials"], true);
    assert_eq!(plugin["config"]["key_in_body"], false);
    assert_eq!(plugin["enabled"], true);

    let (s, dup) = gw
        .post("/services/s/plugins", json!({"name": "key-auth"}))
        .await;
    assert_eq!((s, dup["code"].clone()), (409, json!(5)));
    let other = gw
        .create(
            "/services/s/plugins",
            json!({"name": "key-auth", "instance_name": "second"}),
        )
        .await;
    assert_eq!(gw.get("/plugins/second").await.1["id"], other["id"]);

    let (s, err) = gw
        .post(
            "/plugins",
            json!({"name": "key-auth", "config": {"bogus": 1}}),
        )
        .await;
    assert_eq!((s, err["code"].clone()), (400, json!(2)));
    assert_eq!(err["fields"]["config"]["bogus"], "unknown field");

    let (s, err) = gw
        .post("/plugins", json!({"name": "rate-limiting-advanced"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        err["fields"]["name"],
        "plugin 'rate-limiting-advanced' not enabled; add it to the 'plugins' configuration property"
    );

    let (s, patched) = gw
        .call(
            "PATCH",
            &format!("/plugins/{}", plugin["id"].as_str().unwrap()),
            Some(json!({"config": {"hide_credentials": false}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(patched["config"]["hide_credentials"], false);
    assert_eq!(patched["config"]["key_names"], json!(["apikey"]));
    gw.stop().await;
}

#[tokio::test]
async fn errors_use_kong_shapes_for_schema_unique_not_found_and_bad_json() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let (s, err) = gw
        .post(
            "/services",
            json!({"name": "s", "host": "h", "colour": "red"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err["code"], 2);
    assert_eq!(err["name"], "schema violation");
    assert_eq!(err["fields"]["colour"], "unknown field");
    assert_eq!(err["message"], "schema violation (colour: unknown field)");

    let (s, err) = gw.post("/services", json!({"name": "s"})).await;
    assert_eq!(
        (s, err["fields"]["host"].clone()),
        (400, json!("required field missing"))
    );
    let (_, err) = gw
        .post("/services", json!({"name": "s", "host": "h", "port": "x"}))
        .await;
    assert_eq!(err["fields"]["port"], "expected an integer");

    gw.create("/services", json!({"name": "svc", "host": "h"}))
        .await;
    let (s, err) = gw
        .post("/services", json!({"name": "svc", "host": "h"}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        err,
        json!({"code": 5, "name": "unique constraint violation",
               "message": "UNIQUE violation detected on '{name=\"svc\"}'", "fields": {"name": "svc"}})
    );

    let res = gw
        .http
        .post(format!("{}/services", gw.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(gw.get("/nothing-here").await.0, 404);
    gw.stop().await;
}

#[tokio::test]
async fn lists_paginate_with_size_offset_and_next() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    for i in 0..5 {
        gw.create("/consumers", json!({"username": format!("u{i}")}))
            .await;
    }
    let (_, page) = gw.get("/consumers?size=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let mut names: Vec<Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["username"].clone())
        .collect();
    let mut next = page["next"].as_str().map(str::to_owned);
    assert!(page["offset"].is_string());
    while let Some(link) = next {
        let (s, page) = gw.get(&link).await;
        assert_eq!(s, 200);
        names.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["username"].clone()),
        );
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(
        names,
        vec![
            json!("u0"),
            json!("u1"),
            json!("u2"),
            json!("u3"),
            json!("u4")
        ]
    );
    assert_eq!(gw.get("/consumers").await.1["next"], Value::Null);
    assert_eq!(gw.get("/consumers?size=1001").await.0, 400);
    assert_eq!(gw.get("/consumers?size=abc").await.1["code"], 9);
    gw.stop().await;
}

#[tokio::test]
async fn tag_filters_use_comma_for_and_slash_for_or_and_refuse_mixing() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    gw.create(
        "/services",
        json!({"name": "ab", "host": "h", "tags": ["a", "b"]}),
    )
    .await;
    gw.create(
        "/services",
        json!({"name": "a", "host": "h", "tags": ["a"]}),
    )
    .await;
    gw.create(
        "/services",
        json!({"name": "c", "host": "h", "tags": ["c"]}),
    )
    .await;
    let names = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(gw.get("/services?tags=a,b").await.1), ["ab"]);
    assert_eq!(names(gw.get("/services?tags=a").await.1), ["ab", "a"]);
    assert_eq!(names(gw.get("/services?tags=b/c").await.1), ["ab", "c"]);
    let (s, err) = gw.get("/services?tags=a,b/c").await;
    assert_eq!((s, err["code"].clone()), (400, json!(11)));
    assert_eq!(
        err["message"],
        "invalid option (tags: invalid filter syntax)"
    );
    gw.stop().await;
}

#[tokio::test]
async fn schema_endpoints_serve_plugin_schemas_and_validate_entities() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let (s, schema) = gw.get("/schemas/plugins/key-auth").await;
    assert_eq!(s, 200);
    assert_eq!(
        &schema,
        embedded_gateway::plugins::json_schema("key-auth").unwrap()
    );
    assert_eq!(
        gw.get("/schemas/plugins/nope").await,
        (404, json!({"message": "No plugin named 'nope'"}))
    );
    assert_eq!(
        gw.post("/schemas/services/validate", json!({"host": "h"}))
            .await,
        (200, json!({"message": "schema validation successful"}))
    );
    let (s, err) = gw
        .post("/schemas/routes/validate", json!({"pathz": []}))
        .await;
    assert_eq!(
        (s, err["fields"]["pathz"].clone()),
        (400, json!("unknown field"))
    );
    let (s, err) = gw
        .post(
            "/schemas/plugins/validate",
            json!({"name": "key-auth", "config": {"key_names": "x"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err["fields"]["config"]["key_names"], "expected an array");
    gw.stop().await;
}

#[tokio::test]
async fn root_and_status_report_version_database_and_served_revision() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let (s, root) = gw.get("/").await;
    assert_eq!(s, 200);
    assert_eq!(root["version"], embedded_gateway::admin::KONG_VERSION);
    assert_eq!(root["configuration"]["database"], super::BACKEND.name());
    assert!(root["plugins"]["available_on_server"]["ai-proxy-advanced"].is_object());
    gw.create("/services", json!({"name": "s", "host": "h"}))
        .await;
    let (_, status) = gw.get("/status").await;
    assert_eq!(status["config_revision"], 1);
    assert_eq!(status["database"]["reachable"], true);
    gw.stop().await;
}

#[tokio::test]
async fn every_write_to_the_served_control_plane_reaches_the_proxy_at_once() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    assert_eq!(gw.gateway_proxy.revision(), 0);
    gw.create("/services", json!({"name": "s", "host": "h"}))
        .await;
    gw.create("/services/s/routes", json!({"paths": ["/"]}))
        .await;
    assert_eq!(gw.gateway_proxy.revision(), 2);
    assert_eq!(
        gw.call("DELETE", "/services/s/routes/nothing", None)
            .await
            .0,
        204
    );
    gw.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    gw.create("/services", json!({"name": "kept", "host": "h"}))
        .await;
    gw.stop().await;
    let gw = gateway!(start(dir.path()));
    assert_eq!(gw.get("/services/kept").await.0, 200);
    assert_eq!(
        gw.gateway_proxy.revision(),
        1,
        "the proxy boots on the stored snapshot"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_admin_token_is_required_on_every_call_when_set() {
    let dir = tmp();
    let mut c = config(dir.path());
    c.admin_token = Some("t0ken".into());
    let gw = gateway!(start_with(c));
    let (s, body) = gw.get("/").await;
    assert_eq!(s, 401);
    assert!(body["message"].as_str().unwrap().contains("credentials"));
    let res = gw
        .http
        .get(format!("{}/services", gw.base))
        .header("Kong-Admin-Token", "t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = gw
        .http
        .get(format!("{}/services", gw.base))
        .header("Kong-Admin-Token", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    gw.stop().await;
}

#[tokio::test]
async fn a_non_loopback_admin_address_without_a_token_is_refused() {
    let dir = tmp();
    let mut c = config(dir.path());
    c.admin_listen = "0.0.0.0:0".parse().unwrap();
    let err = embedded_gateway::bind(c).await.unwrap_err();
    assert!(err.to_string().contains("without a token"), "{err}");
}

#[tokio::test]
async fn admin_bodies_over_the_limit_are_refused() {
    let dir = tmp();
    let mut c = config(dir.path());
    c.admin_body_limit = 1024;
    let gw = gateway!(start_with(c));
    let big = "x".repeat(4096);
    let (s, _) = gw
        .post("/services", json!({"name": big, "host": "h"}))
        .await;
    assert_eq!(s, 413);
    gw.stop().await;
}

#[tokio::test]
async fn writes_by_another_process_reach_the_proxy_within_a_second() {
    use embedded_gateway::model::EntityKind;
    use embedded_gateway::store;
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let other = same_store(dir.path()).unwrap();
    other
        .call(|c| {
            let cp = store::ensure_control_plane(c, "default")?;
            store::write_tx(c, &cp.id, None, |tx| {
                store::create(
                    tx,
                    &cp.id,
                    EntityKind::Consumer,
                    json!({"username": "remote"}),
                )
            })
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while gw.gateway_proxy.revision() != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not visible within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.get("/consumers/remote").await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn routes_must_match_on_something_and_tags_and_ranges_are_checked() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let (s, err) = gw.post("/routes", json!({"name": "empty"})).await;
    assert_eq!(s, 400);
    assert_eq!(
        err["fields"]["@entity"],
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
    );
    let (s, err) = gw
        .post("/consumers", json!({"username": "u", "tags": ["a/b"]}))
        .await;
    assert_eq!(s, 400);
    assert!(
        err["fields"]["tags[0]"]
            .as_str()
            .unwrap()
            .starts_with("invalid tag")
    );
    let (_, err) = gw
        .post("/services", json!({"host": "h", "retries": 40000}))
        .await;
    assert_eq!(err["fields"]["retries"], "value should be at most 32767");
    gw.stop().await;
}

#[tokio::test]
async fn a_mask_is_never_stored_as_a_secret() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    let (s, app) = gw.post("/consumers", json!({"username": "app"})).await;
    assert_eq!(s, 201);
    let app_id = app["id"].as_str().unwrap().to_owned();
    for key in ["[masked]", "[masked:1a2b3c4d]"] {
        let (s, err) = gw
            .post("/consumers/app/key-auth", json!({"key": key}))
            .await;
        assert_eq!(s, 400, "{err}");
        assert_eq!(err["name"], "schema violation");
        assert_eq!(
            err["fields"]["key"],
            "is the mask '[masked]', not a secret: send the real value"
        );
    }
    let plugin = json!({
        "name": "ai-proxy-advanced",
        "config": {"targets": [{
            "route_type": "llm/v1/chat",
            "auth": {"header_name": "Authorization", "header_value": "[masked]"},
            "model": {"provider": "openai", "name": "gpt-4o-mini"},
        }]},
    });
    let (s, err) = gw.post("/plugins", plugin).await;
    assert_eq!(s, 400, "{err}");
    assert_eq!(
        err["fields"]["config"]["targets[0]"]["auth"]["header_value"],
        "is the mask '[masked]', not a secret: send the real value"
    );
    // In a batch too, and the batch leaves nothing behind.
    let ops = json!([
        {"op": "create", "kind": "consumer", "entity": {"username": "other"}},
        {"op": "create", "kind": "key_auth", "entity": {"key": "[masked]", "consumer": {"id": app_id}}},
    ]);
    let (s, err) = gw
        .post("/batch", json!({"expected_revision": 1, "operations": ops}))
        .await;
    assert_eq!(s, 400, "{err}");
    assert!(err.to_string().contains("is the mask '[masked]'"), "{err}");
    assert_eq!(gw.get("/consumers/other").await.0, 404);
    // A real value next to the word "masked" is a secret like any other.
    let (s, _) = gw
        .post(
            "/consumers/app/key-auth",
            json!({"key": "not-[masked]-really"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        gw.get("/key-auths").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    gw.stop().await;
}

#[tokio::test]
async fn route_and_service_paths_follow_kongs_rules_as_state_files_do() {
    let dir = tmp();
    let gw = gateway!(start(dir.path()));
    for bad in ["chat", "", "~chat"] {
        let (s, err) = gw.post("/routes", json!({"paths": ["/ok", bad]})).await;
        assert_eq!(s, 400, "{bad:?}: {err}");
        assert_eq!(
            err["fields"]["paths[1]"],
            "should start with: / (fixed path) or ~/ (regex path)"
        );
    }
    let (s, err) = gw
        .post("/services", json!({"host": "up", "path": "v1"}))
        .await;
    assert_eq!(s, 400, "{err}");
    assert_eq!(err["fields"]["path"], "should start with: /");
    for good in ["/chat", "~/v[0-9]+/chat"] {
        let (s, err) = gw.post("/routes", json!({"paths": [good]})).await;
        assert_eq!(s, 201, "{good}: {err}");
    }
    gw.stop().await;
}
