//! Live references: a file may name a service, route or consumer that it does not define but
//! the gateway has, as decK's own apply tests expect (Kong/deck
//! `tests/integration/apply_test.go`, cases 003, 005 and 006, with Gantry's plugins standing
//! in for `request-termination`). Outside the select tags, only through
//! `_info.default_lookup_tags`.

use serde_json::Value;

use crate::util::{Gateway, Run, Workspace};

const AI_PROXY_CONFIG: &str = r#"
    config:
      route_type: llm/v1/chat
      auth: {header_name: Authorization, header_value: Bearer sk-test}
      model: {provider: openai, name: gpt-4o-mini}"#;

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

fn only(gw: &Gateway, collection: &str) -> Value {
    let data = gw.get(&format!("/{collection}"))["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1, "{collection}: {data}");
    data[0].clone()
}

/// decK's pattern: apply the first file, apply the second, then the gateway holds both and
/// applying the second again changes nothing.
fn apply_both(ws: &Workspace, first: &str, second: &str) {
    ws.write("first.yaml", first);
    ws.write("second.yaml", second);
    ok(ws.run(&["apply", "first.yaml"]));
    let run = ok(ws.run(&["apply", "second.yaml", "--no-color"]));
    assert!(
        run.stdout
            .contains("Created: 1\n  Updated: 0\n  Deleted: 0"),
        "{}",
        run.stdout
    );
    let again = ok(ws.run(&["apply", "second.yaml", "--no-color"]));
    assert!(
        again
            .stdout
            .contains("Created: 0\n  Updated: 0\n  Deleted: 0"),
        "{}",
        again.stdout
    );
    ok(ws.run(&[
        "diff",
        "second.yaml",
        "--mode",
        "apply",
        "--non-zero-exit-code",
    ]));
}

#[test]
fn deck_003_a_plugin_names_a_consumer_that_only_the_gateway_has() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let plugin = format!(
        "_format_version: \"3.0\"\nplugins:\n  - name: ai-proxy\n    consumer: alice{AI_PROXY_CONFIG}\n"
    );
    apply_both(
        &ws,
        "_format_version: \"3.0\"\nconsumers:\n  - username: alice\n",
        &plugin,
    );
    let alice = only(&gw, "consumers");
    assert_eq!(only(&gw, "plugins")["consumer"]["id"], alice["id"]);
}

#[test]
fn deck_005_a_plugin_names_a_service_that_only_the_gateway_has() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    apply_both(
        &ws,
        "_format_version: \"3.0\"\nservices:\n  - name: example-service\n    url: http://httpbin.konghq.com\n",
        "_format_version: \"3.0\"\nplugins:\n  - name: key-auth\n    service: example-service\n",
    );
    let svc = only(&gw, "services");
    assert_eq!(only(&gw, "plugins")["service"]["id"], svc["id"]);
    // The dump puts the plugin under its service, as decK's expected state does.
    let dump = ok(ws.run(&["dump"]));
    assert!(
        dump.stdout.contains("  plugins:\n  - name: key-auth"),
        "{}",
        dump.stdout
    );
}

#[test]
fn deck_006_a_plugin_names_a_route_that_only_the_gateway_has() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    apply_both(
        &ws,
        "_format_version: \"3.0\"\nroutes:\n - name: example-route\n   paths:\n   - \"/mock\"\n",
        "_format_version: \"3.0\"\nplugins:\n  - name: key-auth\n    route: example-route\n",
    );
    let route = only(&gw, "routes");
    assert_eq!(only(&gw, "plugins")["route"]["id"], route["id"]);
}

#[test]
fn references_by_id_and_from_routes_resolve_too_and_unknown_ones_are_located() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write(
        "svc.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    url: http://up:80\n",
    );
    ok(ws.run(&["apply", "svc.yaml"]));
    let id = only(&gw, "services")["id"].as_str().unwrap().to_owned();
    ws.write(
        "more.yaml",
        &format!(
            "_format_version: \"3.0\"\nroutes:\n  - name: r\n    paths: [/r]\n    service: {{id: {id}}}\nplugins:\n  - name: key-auth\n    service: svc\n  - name: key-auth\n    route: ghost\n"
        ),
    );
    let run = ws.run(&["apply", "more.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.stderr.trim(),
        "error: more.yaml:10:5: plugins[1].route: route 'ghost' not found in the files or on the served control plane"
    );
    ws.write(
        "more.yaml",
        &format!(
            "_format_version: \"3.0\"\nroutes:\n  - name: r\n    paths: [/r]\n    service: {{id: {id}}}\nplugins:\n  - name: key-auth\n    service: svc\n"
        ),
    );
    ok(ws.run(&["apply", "more.yaml"]));
    assert_eq!(only(&gw, "routes")["service"]["id"], id.as_str());
    // Offline, nothing can be looked up: validate still reports the reference.
    let offline = ws.run(&["validate", "more.yaml"]);
    assert_eq!(offline.code, 1);
    assert!(
        offline
            .stderr
            .contains("routes[0].service: service with id"),
        "{}",
        offline.stderr
    );
}

#[test]
fn sync_refuses_a_reference_to_an_entity_it_would_delete() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write(
        "first.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: example-service\n    url: http://up:80\n",
    );
    ws.write(
        "second.yaml",
        "_format_version: \"3.0\"\nplugins:\n  - name: key-auth\n    service: example-service\n",
    );
    ok(ws.run(&["apply", "first.yaml"]));
    for cmd in ["sync", "diff"] {
        let run = ws.run(&[cmd, "second.yaml"]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stdout);
        assert!(
            run.stderr.contains("second.yaml:4:5: plugins[0].service: service 'example-service' is on the gateway but in none of the files, so this sync would delete it"),
            "{cmd}: {}",
            run.stderr
        );
    }
    assert_eq!(gw.get("/plugins")["data"], serde_json::json!([]));
}

#[test]
fn outside_its_select_tags_a_file_references_only_through_default_lookup_tags() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write(
        "shared.yaml",
        "_format_version: \"3.0\"\n_info:\n  select_tags: [platform]\nservices:\n  - name: shared-llm\n    url: http://up:80\n",
    );
    ok(ws.run(&["sync", "shared.yaml"]));
    let team = "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nroutes:\n  - name: team-a-chat\n    paths: [/team-a]\n    service: shared-llm\n";
    ws.write("team.yaml", team);
    let run = ws.run(&["sync", "team.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("team.yaml:7:5: routes[0].service: service 'shared-llm' not found in the files or among the entities tagged [\"team-a\"] on the served control plane; to reference an entity outside the select tags, list its tags in `_info.default_lookup_tags.services`"),
        "{}",
        run.stderr
    );
    let with_lookup = team.replace(
        "select_tags: [team-a]\n",
        "select_tags: [team-a]\n  default_lookup_tags:\n    services: [platform]\n",
    );
    ws.write("team.yaml", &with_lookup);
    ok(ws.run(&["sync", "team.yaml"]));
    ok(ws.run(&["sync", "team.yaml", "--non-zero-exit-code"]));
    let shared = only(&gw, "services");
    assert_eq!(only(&gw, "routes")["service"]["id"], shared["id"]);
    // The looked-up service is read, never changed: it keeps its own tags only.
    assert_eq!(shared["tags"], serde_json::json!(["platform"]));
    // And the platform team's sync still owns it.
    ok(ws.run(&["sync", "shared.yaml", "--non-zero-exit-code"]));
}
