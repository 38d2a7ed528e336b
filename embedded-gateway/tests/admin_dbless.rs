//! DB-less mode: the gateway serves a snapshot given at boot and its admin API is read-only.

use embedded_gateway::model::{Consumer, KeyAuthCredential, Service};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::json;

use crate::admin::{config, start_with};

fn snapshot() -> ConfigSnapshot {
    let service: Service =
        serde_json::from_value(json!({"name": "llm", "host": "example.com"})).unwrap();
    let consumer: Consumer = serde_json::from_value(json!({
        "id": "5c4e0e3a-0000-4000-8000-00000000000c", "username": "alice"
    }))
    .unwrap();
    let cred: KeyAuthCredential = serde_json::from_value(json!({
        "key": "k", "consumer": {"id": "5c4e0e3a-0000-4000-8000-00000000000c"}
    }))
    .unwrap();
    ConfigSnapshot {
        services: vec![service],
        consumers: vec![consumer],
        key_auths: vec![cred],
        ..Default::default()
    }
}

#[tokio::test]
async fn dbless_mode_serves_the_given_config_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.dbless = Some(snapshot());
    let gw = gateway!(start_with(c));
    assert_eq!(gw.get("/").await.1["configuration"]["database"], "off");
    let (s, svc) = gw.get("/services/llm").await;
    assert_eq!((s, svc["port"].clone()), (200, json!(80)));
    assert_eq!(
        gw.get("/consumers/alice/key-auth").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(gw.gateway_proxy.revision(), 1);

    for (method, path) in [
        ("POST", "/services"),
        ("PATCH", "/services/llm"),
        ("DELETE", "/services/llm"),
        ("POST", "/v2/control-planes"),
    ] {
        let (s, body) = gw
            .call(method, path, Some(json!({"name": "x", "host": "h"})))
            .await;
        assert_eq!(s, 405, "{method} {path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("cannot change configuration in DB-less mode;"),
            "{body}"
        );
    }
    assert_eq!(gw.get("/services/llm").await.0, 200);
    assert!(
        !dir.path().join(embedded_gateway::store::DB_FILE).exists(),
        "DB-less writes no store"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_invalid_dbless_config_fails_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    let mut snap = snapshot();
    snap.key_auths[0].consumer = Some(embedded_gateway::model::ForeignKey::new(
        "5c4e0e3a-0000-4000-8000-0000000000ff",
    ));
    let mut c = config(dir.path());
    c.dbless = Some(snap);
    let err = embedded_gateway::bind(c).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not reference an existing 'consumers'"),
        "{err}"
    );
}
