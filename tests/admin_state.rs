//! State made through the admin API reads back as a file: entities without names are dumped
//! with their ids (their only key, as decK does), and a dump of them validates and diffs clean.

use serde_json::json;

use crate::util::Gateway;

#[test]
fn a_dump_of_unnamed_admin_made_entities_carries_their_ids_and_reads_back() {
    let gw = Gateway::start(None);
    let (s, svc) = gw.call("POST", "/services", Some(json!({"host": "up.internal"})));
    assert_eq!(s, 201, "{svc}");
    let sid = svc["id"].as_str().unwrap().to_owned();
    let (s, route) = gw.call(
        "POST",
        &format!("/services/{sid}/routes"),
        Some(json!({"paths": ["/chat", "~/v[0-9]+/chat"]})),
    );
    assert_eq!(s, 201, "{route}");
    let rid = route["id"].as_str().unwrap().to_owned();
    let (s, loose) = gw.call("POST", "/routes", Some(json!({"hosts": ["x.example"]})));
    assert_eq!(s, 201, "{loose}");
    let (s, plugin) = gw.call(
        "POST",
        &format!("/routes/{rid}/plugins"),
        Some(json!({"name": "key-auth"})),
    );
    assert_eq!(s, 201, "{plugin}");
    // What Kong refuses, the admin API refuses too, so a dump never holds it.
    let (s, _) = gw.call("POST", "/routes", Some(json!({"paths": ["chat"]})));
    assert_eq!(s, 400);

    let ws = gw.workspace();
    let dump = ws.run(&["dump"]);
    dump.assert_ok();
    for id in [&sid, &rid, loose["id"].as_str().unwrap()] {
        assert!(
            dump.stdout.contains(&format!("id: {id}")),
            "{id} missing:\n{}",
            dump.stdout
        );
    }
    ws.write("dump.yaml", &dump.stdout);
    ws.run(&["validate", "dump.yaml"]).assert_ok();
    let diff = ws.run(&["diff", "dump.yaml", "--non-zero-exit-code", "--no-color"]);
    assert_eq!(diff.code, 0, "{}\n{}", diff.stdout, diff.stderr);
    let sync = ws.run(&["sync", "dump.yaml", "--no-color"]);
    sync.assert_ok();
    assert!(
        sync.stdout
            .contains("Created: 0\n  Updated: 0\n  Deleted: 0"),
        "{}",
        sync.stdout
    );
    assert_eq!(gw.get(&format!("/routes/{rid}"))["id"], rid.as_str());
}
