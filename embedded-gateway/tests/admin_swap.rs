//! Config changes through the admin API reach the real proxy at once, and a request already in
//! flight finishes on the config it started with.

use std::time::Duration;

use serde_json::json;

use crate::admin::start;

/// An upstream that answers `slow` after `delay`.
async fn slow_upstream(delay: Duration) -> String {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "slow"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_in_flight_request_finishes_on_its_config_while_new_requests_see_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway!(start(dir.path()));
    let upstream = slow_upstream(Duration::from_millis(800)).await;
    gw.create("/services", json!({"name": "up", "url": upstream}))
        .await;
    gw.create(
        "/services/up/routes",
        json!({"name": "r", "paths": ["/slow"]}),
    )
    .await;

    let url = format!("{}/slow", gw.proxy_base);
    let client = gw.http.clone();
    let in_flight = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(gw.call("DELETE", "/routes/r", None).await.0, 204);
    let res = gw
        .http
        .get(format!("{}/slow", gw.proxy_base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        404,
        "new requests use the new config"
    );

    let res = in_flight.await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "the in-flight request kept its route"
    );
    assert_eq!(res.text().await.unwrap(), "slow");
    gw.stop().await;
}

#[tokio::test]
async fn proxy_workers_on_their_own_threads_serve_and_see_every_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::admin::config(dir.path());
    config.proxy_workers = 2;
    let gw = gateway!(crate::admin::start_with(config));
    let upstream = slow_upstream(Duration::from_millis(0)).await;
    gw.create("/services", json!({"name": "up", "url": upstream}))
        .await;
    gw.create("/services/up/routes", json!({"name": "r", "paths": ["/w"]}))
        .await;
    // Fresh connections spread over the accept loops; every one must see the route…
    let url = format!("{}/w", gw.proxy_base);
    for _ in 0..24 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "slow");
    }
    // …and, after one delete, none may still serve it.
    assert_eq!(gw.call("DELETE", "/routes/r", None).await.0, 204);
    for _ in 0..24 {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        assert_eq!(client.get(&url).send().await.unwrap().status(), 404);
    }
    gw.stop().await;
}
