//! Control planes: Konnect-shaped CRUD, labels, name filter, per-control-plane isolation and
//! deletion of a control plane's entities.

use serde_json::json;

use super::admin::start;

#[tokio::test]
async fn control_planes_are_created_listed_filtered_patched_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let cp = gw
        .create(
            "/v2/control-planes",
            json!({"name": "recipe", "labels": {"team": "ai"}}),
        )
        .await;
    assert_eq!(cp["labels"], json!({"team": "ai"}));
    assert_eq!(cp["revision"], 0);
    assert_eq!(cp["config"]["cluster_type"], "CLUSTER_TYPE_CONTROL_PLANE");
    let (s, dup) = gw
        .post("/v2/control-planes", json!({"name": "recipe"}))
        .await;
    assert_eq!(s, 409);
    assert!(dup["message"].as_str().unwrap().contains("already exists"));

    let (_, list) = gw.get("/v2/control-planes?filter[name][eq]=recipe").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["meta"]["page"]["total"], 1);
    let (_, all) = gw.get("/v2/control-planes").await;
    assert_eq!(
        all["meta"]["page"]["total"], 2,
        "the served `default` plane and `recipe`"
    );

    let id = cp["id"].as_str().unwrap();
    let (s, patched) = gw
        .call(
            "PATCH",
            &format!("/v2/control-planes/{id}"),
            Some(json!({"labels": {"KONGCTL-namespace": "ns", "team": null}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(patched["labels"], json!({"KONGCTL-namespace": "ns"}));
    assert_eq!(
        gw.get(&format!("/v2/control-planes/{id}")).await.1["labels"],
        patched["labels"]
    );

    let (s, _) = gw
        .post("/v2/control-planes", json!({"name": "x", "colour": 1}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        gw.call("DELETE", &format!("/v2/control-planes/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(gw.get(&format!("/v2/control-planes/{id}")).await.0, 404);
    gw.stop().await;
}

#[tokio::test]
async fn each_control_plane_keeps_its_own_entities() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let a = gw.create("/v2/control-planes", json!({"name": "a"})).await;
    let b = gw.create("/v2/control-planes", json!({"name": "b"})).await;
    let pa = format!(
        "/v2/control-planes/{}/core-entities",
        a["id"].as_str().unwrap()
    );
    let pb = format!(
        "/v2/control-planes/{}/core-entities",
        b["id"].as_str().unwrap()
    );
    gw.create(
        &format!("{pa}/services"),
        json!({"name": "same", "host": "a"}),
    )
    .await;
    gw.create(
        &format!("{pb}/services"),
        json!({"name": "same", "host": "b"}),
    )
    .await;
    gw.create(
        &format!("{pa}/services/same/routes"),
        json!({"paths": ["/a"]}),
    )
    .await;
    assert_eq!(gw.get(&format!("{pa}/services/same")).await.1["host"], "a");
    assert_eq!(gw.get(&format!("{pb}/services/same")).await.1["host"], "b");
    assert_eq!(gw.get(&format!("{pb}/routes")).await.1["data"], json!([]));
    assert_eq!(
        gw.get("/services").await.1["data"],
        json!([]),
        "root paths are the served plane"
    );
    assert_eq!(
        gw.get(&format!("/v2/control-planes/{}", a["id"].as_str().unwrap()))
            .await
            .1["revision"],
        2
    );

    assert_eq!(
        gw.call(
            "DELETE",
            &format!("/v2/control-planes/{}", a["id"].as_str().unwrap()),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(gw.get(&format!("{pa}/services")).await.0, 404);
    let again = gw.create("/v2/control-planes", json!({"name": "a"})).await;
    let pa2 = format!(
        "/v2/control-planes/{}/core-entities",
        again["id"].as_str().unwrap()
    );
    assert_eq!(
        gw.get(&format!("{pa2}/services")).await.1["data"],
        json!([])
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_served_control_plane_cannot_be_deleted_while_served() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let (s, res) = gw.call("DELETE", "/v2/control-planes/default", None).await;
    assert_eq!(s, 409);
    assert!(res["message"].as_str().unwrap().contains("served"));
    gw.stop().await;
}

#[tokio::test]
async fn label_keys_follow_konnect_rules() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let (s, err) = gw
        .post(
            "/v2/control-planes",
            json!({"name": "x", "labels": {"konnect-owned": "1"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("invalid label key 'konnect-owned'")
    );
    gw.create(
        "/v2/control-planes",
        json!({"name": "y", "labels": {"KONGCTL-protected": "true"}}),
    )
    .await;
    gw.stop().await;
}
