//! The batch endpoint: all operations in one transaction, all or none, guarded by the
//! control plane's revision.

use serde_json::{Value, json};

use super::admin::start;

const SVC_ID: &str = "7a1c2d3e-0000-4000-8000-000000000001";

fn ops_creating_service_route_then(third: Value) -> Value {
    json!([
        {"op": "create", "kind": "service", "entity": {"id": SVC_ID, "name": "s", "host": "h"}},
        {"op": "create", "kind": "route", "entity": {"name": "r", "paths": ["/"], "service": {"id": SVC_ID}}},
        third,
    ])
}

#[tokio::test]
async fn a_batch_applies_every_operation_and_bumps_the_revision_once() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let ops = ops_creating_service_route_then(
        json!({"op": "create", "kind": "plugin", "entity": {"name": "key-auth", "service": {"id": SVC_ID}}}),
    );
    let (s, res) = gw
        .post("/batch", json!({"expected_revision": 0, "operations": ops}))
        .await;
    assert_eq!(s, 200, "{res}");
    assert_eq!(res["revision"], 1);
    assert_eq!(res["results"].as_array().unwrap().len(), 3);
    assert_eq!(res["results"][0]["id"], SVC_ID);
    assert_eq!(gw.gateway_proxy.revision(), 1);

    let ops = json!([
        {"op": "update", "kind": "service", "id": "s", "entity": {"name": "s", "host": "new"}},
        {"op": "delete", "kind": "route", "id": "r"},
    ]);
    let (s, res) = gw
        .post("/batch", json!({"expected_revision": 1, "operations": ops}))
        .await;
    assert_eq!((s, res["revision"].clone()), (200, json!(2)));
    assert_eq!(gw.get("/services/s").await.1["host"], "new");
    assert_eq!(gw.get("/routes/r").await.0, 404);
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_whose_third_operation_fails_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let ops = ops_creating_service_route_then(
        json!({"op": "create", "kind": "plugin", "entity": {"name": "key-auth", "config": {"nope": true}}}),
    );
    let (s, res) = gw
        .post(
            "/batch",
            json!({"expected_revision": null, "operations": ops}),
        )
        .await;
    assert_eq!(s, 400, "{res}");
    assert_eq!(res["operation_index"], 2);
    assert_eq!(res["error"]["code"], 2);
    assert_eq!(res["error"]["fields"]["config"]["nope"], "unknown field");
    assert_eq!(gw.get("/services").await.1["data"], json!([]));
    assert_eq!(gw.get("/routes").await.1["data"], json!([]));
    assert_eq!(gw.get("/status").await.1["store_revision"], 0);
    assert_eq!(gw.gateway_proxy.revision(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_made_against_an_old_revision_is_refused_with_409() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    gw.create("/consumers", json!({"username": "a"})).await;
    gw.create("/consumers", json!({"username": "b"})).await;
    let ops = json!([{"op": "delete", "kind": "consumer", "id": "a"}]);
    let (s, res) = gw
        .post("/batch", json!({"expected_revision": 1, "operations": ops}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        (
            res["current_revision"].clone(),
            res["expected_revision"].clone()
        ),
        (json!(2), json!(1))
    );
    assert!(
        res["message"]
            .as_str()
            .unwrap()
            .contains("revision 2, expected 1")
    );
    assert_eq!(gw.get("/consumers/a").await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_control_plane_batch_writes_only_to_that_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let cp = gw
        .create("/v2/control-planes", json!({"name": "other"}))
        .await;
    let id = cp["id"].as_str().unwrap();
    let ops = json!([{"op": "create", "kind": "consumer", "entity": {"username": "x"}}]);
    let (s, res) = gw
        .post(
            &format!("/v2/control-planes/{id}/core-entities/batch"),
            json!({"operations": ops}),
        )
        .await;
    assert_eq!((s, res["revision"].clone()), (200, json!(1)));
    assert_eq!(gw.get("/consumers").await.1["data"], json!([]));
    assert_eq!(gw.gateway_proxy.revision(), 0);
    let (_, list) = gw
        .get(&format!("/v2/control-planes/{id}/core-entities/consumers"))
        .await;
    assert_eq!(list["data"][0]["username"], "x");
    gw.stop().await;
}
