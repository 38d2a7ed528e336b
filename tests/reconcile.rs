//! `diff`, `apply`, `sync`, `plan`, `dump` and `reset` against a real `gantry serve`: the
//! create/update/delete paths, scope safety, round trips, output shapes, exit codes, secret
//! masking, stale plans, concurrent applies and all-or-nothing batches.

use serde_json::{Value, json};

use crate::util::{Gateway, RECIPE_ENV, Run, Workspace, recipe};

/// Team A's file: a service with a route and a key-auth plugin, two consumers, one key.
const TEAM_A: &str = r#"_format_version: "3.0"
_info:
  select_tags: [team-a]
services:
  - name: a-svc
    url: http://a.internal:8080
    routes:
      - name: a-route
        paths: [/a]
    plugins:
      - name: key-auth
        config: {key_names: [apikey]}
consumers:
  - username: a1
    keyauth_credentials:
      - key: a1-key
  - username: a2
"#;

/// Team B's file, the same shape under its own tag and names.
fn team_b() -> String {
    TEAM_A
        .replace("team-a", "team-b")
        .replace("a-svc", "b-svc")
        .replace("a-route", "b-route")
        .replace("[/a]", "[/b]")
        .replace("a1", "b1")
        .replace("a2", "b2")
        .replace("a.internal", "b.internal")
}

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

#[track_caller]
fn fails(run: Run) -> Run {
    assert_eq!(
        run.code, 1,
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", run.stdout))
}

/// Names of the entities of `collection` at the root (the served control plane).
fn names(gw: &Gateway, collection: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> = gw.get(&format!("/{collection}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_str().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

fn revision(gw: &Gateway) -> Value {
    gw.get("/status")["store_revision"].clone()
}

#[test]
fn apply_creates_then_updates_and_sync_deletes_what_the_file_dropped() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let a = ws.write("a.yaml", TEAM_A);

    let created = ok(ws.run(&["apply", a.to_str().unwrap(), "--no-color"]));
    for line in [
        "creating service a-svc",
        "creating route a-route",
        "creating consumer a1",
        "creating consumer a2",
        "creating key-auth for consumer a1",
        "creating plugin key-auth for service a-svc",
        "Summary:\n  Created: 6\n  Updated: 0\n  Deleted: 0",
    ] {
        assert!(created.stdout.contains(line), "{line}\n{}", created.stdout);
    }
    assert_eq!(gw.get("/services/a-svc")["host"], "a.internal");
    assert_eq!(gw.get("/services/a-svc")["tags"], json!(["team-a"]));

    ws.write("a.yaml", &TEAM_A.replace("a.internal", "a2.internal"));
    let updated = ok(ws.run(&["apply", a.to_str().unwrap(), "--no-color"]));
    assert!(
        updated
            .stdout
            .contains("updating service a-svc\n  host: \"a.internal\" → \"a2.internal\"\n"),
        "{}",
        updated.stdout
    );
    assert!(
        updated.stdout.contains("  Updated: 1\n"),
        "{}",
        updated.stdout
    );
    assert_eq!(gw.get("/services/a-svc")["host"], "a2.internal");

    let without_a2 = TEAM_A
        .replace("a.internal", "a2.internal")
        .replace("  - username: a2\n", "");
    ws.write("a.yaml", &without_a2);
    let applied = ok(ws.run(&["apply", a.to_str().unwrap(), "--no-color"]));
    assert!(
        applied.stdout.contains("  Deleted: 0\n"),
        "apply never deletes"
    );
    assert_eq!(names(&gw, "consumers", "username"), ["a1", "a2"]);

    let synced = ok(ws.run(&["sync", a.to_str().unwrap(), "--no-color"]));
    assert!(
        synced.stdout.contains("deleting consumer a2\n"),
        "{}",
        synced.stdout
    );
    assert!(
        synced.stdout.contains("  Deleted: 1\n"),
        "{}",
        synced.stdout
    );
    assert_eq!(names(&gw, "consumers", "username"), ["a1"]);
}

#[test]
fn sync_and_reset_of_one_team_never_touch_another_team_or_untagged_entities() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let a = ws.write("a.yaml", TEAM_A);
    let b = ws.write("b.yaml", &team_b());
    ok(ws.run(&["sync", a.to_str().unwrap()]));
    ok(ws.run(&["sync", b.to_str().unwrap()]));
    let (status, _) = gw.call(
        "POST",
        "/services",
        Some(json!({"name": "loose", "url": "http://loose.internal:1"})),
    );
    assert_eq!(status, 201);
    let dump_b = || {
        ok(ws.run(&[
            "dump",
            "--select-tag",
            "team-b",
            "--show-secrets",
            "--with-id",
        ]))
        .stdout
    };
    let before = dump_b();

    let only_svc = "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: a-svc\n    url: http://a.internal:8080\n";
    ws.write("a-small.yaml", only_svc);
    let synced = ok(ws.run(&["sync", "a-small.yaml", "--no-color"]));
    assert!(
        synced.stdout.contains("  Deleted: 5\n"),
        "{}",
        synced.stdout
    );
    assert!(!synced.stdout.contains("b-svc") && !synced.stdout.contains("loose"));
    assert_eq!(
        dump_b(),
        before,
        "team B is byte-identical after team A's sync"
    );

    let reset = ok(ws.run(&["reset", "--select-tag", "team-a", "--yes", "--no-color"]));
    assert!(
        reset.stdout.contains("deleting service a-svc"),
        "{}",
        reset.stdout
    );
    assert_eq!(
        dump_b(),
        before,
        "team B is byte-identical after team A's reset"
    );
    assert_eq!(names(&gw, "services", "name"), ["b-svc", "loose"]);
    assert_eq!(gw.get("/services/loose")["tags"], json!([]));
}

#[test]
fn a_dump_with_secrets_diffs_back_to_no_changes() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ws.write("b.yaml", &team_b());
    ok(ws.run(&["apply", "a.yaml"]));
    ok(ws.run(&["apply", "b.yaml"]));
    for (tag, out) in [("team-a", "dump-a.yaml"), ("team-b", "dump-b.yaml")] {
        ok(ws.run(&["dump", "--select-tag", tag, "--show-secrets", "-o", out]));
        let diff = ok(ws.run(&["diff", out, "--non-zero-exit-code", "--no-color"]));
        assert!(
            diff.stdout
                .contains("Created: 0\n  Updated: 0\n  Deleted: 0"),
            "{}",
            diff.stdout
        );
    }
    ok(ws.run(&[
        "dump",
        "--show-secrets",
        "--format",
        "json",
        "-o",
        "all.json",
    ]));
    ok(ws.run(&["diff", "all.json", "--non-zero-exit-code"]));
}

#[test]
fn tags_in_the_file_and_by_flag_must_agree() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    let run = fails(ws.run(&["diff", "a.yaml", "--select-tag", "team-b"]));
    assert!(
        run.stderr.contains(
            "tags specified in the state file ([\"team-a\"]) and via --select-tag ([\"team-b\"]) are different"
        ),
        "{}",
        run.stderr
    );
    ok(ws.run(&["diff", "a.yaml", "--select-tag", "team-a"]));
}

#[test]
fn json_output_is_one_document_with_changes_summary_warnings_and_errors() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    let run = ok(ws.run(&["diff", "a.yaml", "--json-output"]));
    let doc = json_of(&run);
    assert_eq!(
        doc["summary"],
        json!({"creating": 6, "updating": 0, "deleting": 0, "total": 6})
    );
    assert_eq!(doc["changes"]["creating"].as_array().unwrap().len(), 6);
    assert_eq!(doc["changes"]["updating"], json!([]));
    assert_eq!(doc["changes"]["deleting"], json!([]));
    assert_eq!(doc["warnings"], json!([]));
    assert_eq!(doc["errors"], json!([]));
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["changes", "summary", "warnings", "errors"]);

    ok(ws.run(&["apply", "a.yaml"]));
    ws.write("a.yaml", &TEAM_A.replace("a.internal", "a2.internal"));
    let doc = json_of(&ok(ws.run(&["diff", "a.yaml", "--json-output"])));
    assert_eq!(doc["summary"]["updating"], 1);
    let update = &doc["changes"]["updating"][0];
    assert_eq!(update["kind"], "service", "{update}");
    assert_eq!(update["name"], "a-svc", "{update}");
}

#[test]
fn exit_codes_are_0_ok_1_error_and_2_for_drift_with_the_flag() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ws.write(
        "bad.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: x\n    colour: red\n",
    );

    assert_eq!(ws.run(&["diff", "a.yaml"]).code, 0, "drift alone is exit 0");
    assert_eq!(ws.run(&["diff", "a.yaml", "--non-zero-exit-code"]).code, 2);
    let both = ws.run(&["diff", "a.yaml", "--non-zero-exit-code", "--json-output"]);
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert_eq!(
        json_of(&both)["summary"]["creating"],
        6,
        "JSON is printed too"
    );
    assert_eq!(ws.run(&["apply", "a.yaml", "--non-zero-exit-code"]).code, 2);
    assert_eq!(ws.run(&["diff", "a.yaml", "--non-zero-exit-code"]).code, 0);
    assert_eq!(ws.run(&["sync", "a.yaml", "--non-zero-exit-code"]).code, 0);

    for cmd in ["diff", "apply", "sync"] {
        fails(ws.run(&[cmd, "bad.yaml"]));
        let down = fails(ws.run(&[
            cmd,
            "a.yaml",
            "--kong-addr",
            "http://127.0.0.1:9",
            "--timeout",
            "2",
        ]));
        assert!(
            down.stderr
                .contains("cannot reach the admin API at http://127.0.0.1:9"),
            "{cmd}: {}",
            down.stderr
        );
    }
    let json_err = fails(ws.run(&["apply", "bad.yaml", "--json-output", "--non-zero-exit-code"]));
    let doc = json_of(&json_err);
    // One object per validation problem.
    assert_eq!(doc["errors"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["errors"][1]["path"], "services[0].colour", "{doc}");
    fails(ws.run(&[
        "dump",
        "--kong-addr",
        "http://127.0.0.1:9",
        "--timeout",
        "2",
    ]));
    fails(ws.run(&["reset", "--select-tag", "team-a"]));
}

/// Every command's stdout and stderr, without `--show-secrets`, never holds the secrets.
#[test]
fn secrets_never_appear_in_any_output_without_show_secrets() {
    let gw = Gateway::start(Some("basic-llm-routing-recipe"));
    let ws = gw.recipe_workspace();
    let recipe = recipe();
    let cp = ["--control-plane", "basic-llm-routing-recipe"];
    ok(ws.run(&[
        "adopt",
        "control-plane",
        "basic-llm-routing-recipe",
        "--namespace",
        "basic-llm-routing-recipe",
    ]));
    let token = RECIPE_ENV[0].1;
    let canaries = [token, "sk-canary-7f3a", "demo-api-key"];
    let mut runs = vec![
        ws.run(&["diff", &recipe]),
        ws.run(&["diff", &recipe, "--json-output"]),
        ws.run(&["plan", &recipe, "-o", "p.json"]),
        ws.run(&["apply", &recipe]),
    ];
    // Rotate both secrets so that an update shows old and new values, masked.
    let rotated = ws.write(
        "rotated.yaml",
        &std::fs::read_to_string(&recipe)
            .unwrap()
            .replace("demo-api-key", "demo-api-key-2"),
    );
    let rotated = rotated.to_str().unwrap();
    let ws2 = recipe_ws_with(&gw, "Bearer sk-canary-7f3a-rotated");
    runs.push(ws2.run(&["diff", rotated]));
    runs.push(ws2.run(&["diff", rotated, "--json-output"]));
    runs.push(ws2.run(&["sync", rotated]));
    runs.push(ws.run(&["sync", &recipe, "--json-output"]));
    let mut dump = vec!["dump"];
    dump.extend(cp);
    runs.push(ws.run(&dump));
    dump.extend(["--format", "json"]);
    runs.push(ws.run(&dump));
    let mut reset = vec!["reset", "--select-tag", "basic-llm-routing-recipe", "--yes"];
    reset.extend(cp);
    runs.push(ws.run(&reset));
    for run in &runs {
        assert!(run.code == 0, "every run succeeds: {}", run.stderr);
        for canary in canaries {
            assert!(
                !run.stdout.contains(canary) && !run.stderr.contains(canary),
                "{canary} leaked:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    assert!(runs[0].stdout.contains("[masked]") || runs[1].stdout.contains("[masked]"));
    // A rotated secret shows as two fingerprints, never as its value.
    assert!(runs[4].stdout.contains("\"[masked:"), "{}", runs[4].stdout);
    assert!(runs[8].stdout.contains("[masked]"), "{}", runs[8].stdout);
}

fn recipe_ws_with(gw: &Gateway, token: &str) -> Workspace {
    Workspace::new()
        .env("DECK_KONG_ADDR", &gw.admin_url())
        .env("DECK_OPENAI_TOKEN", token)
        .env("DECK_CHAT_MODEL_1", RECIPE_ENV[1].1)
        .env("DECK_CHAT_MODEL_2", RECIPE_ENV[2].1)
}

#[test]
fn a_saved_plan_is_refused_as_stale_after_a_change_and_accepted_when_nothing_changed() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ok(ws.run(&["plan", "a.yaml", "-o", "p.json"]));
    let (status, _) = gw.call(
        "POST",
        "/consumers",
        Some(json!({"username": "someone-else"})),
    );
    assert_eq!(status, 201);
    let before = revision(&gw);
    let stale = fails(ws.run(&["apply", "--plan", "p.json"]));
    assert!(stale.stderr.contains("stale plan"), "{}", stale.stderr);
    assert_eq!(revision(&gw), before, "nothing was applied");
    assert!(gw.call("GET", "/services/a-svc", None).0 == 404);

    ok(ws.run(&["plan", "a.yaml", "-o", "p.json"]));
    let applied = ok(ws.run(&["apply", "--plan", "p.json", "--no-color"]));
    assert!(
        applied.stdout.contains("  Created: 6\n"),
        "{}",
        applied.stdout
    );
    ok(ws.run(&["diff", "a.yaml", "--non-zero-exit-code"]));
}

#[test]
fn a_batch_planned_against_an_old_revision_is_a_conflict_and_changes_nothing() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ok(ws.run(&["apply", "a.yaml"]));
    let stale = revision(&gw);
    gw.call("POST", "/consumers", Some(json!({"username": "racer"})));
    let (status, body) = gw.call(
        "POST",
        "/batch",
        Some(json!({
            "expected_revision": stale,
            "operations": [{"op": "delete", "kind": "consumers", "id": "a1"}],
        })),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["current_revision"], revision(&gw), "{body}");
    assert_eq!(names(&gw, "consumers", "username"), ["a1", "a2", "racer"]);
}

/// Two files that set the same entities to different values.
fn racer(n: usize) -> String {
    let mut s = format!(
        "_format_version: \"3.0\"\n_info:\n  select_tags: [race]\nservices:\n  - name: svc\n    url: http://host-{n}.internal:80\nconsumers:\n"
    );
    for i in 0..40 {
        s.push_str(&format!(
            "  - username: c{i}\n    custom_id: file-{n}-{i}\n"
        ));
    }
    s
}

#[test]
fn concurrent_applies_leave_exactly_one_file_applied_and_the_loser_reports_a_conflict() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("one.yaml", &racer(1));
    ws.write("two.yaml", &racer(2));
    let mut conflicts = 0;
    for round in 0..6 {
        let (first, second) = std::thread::scope(|s| {
            let one = s.spawn(|| ws.run(&["apply", "one.yaml"]));
            let two = s.spawn(|| ws.run(&["apply", "two.yaml"]));
            (one.join().unwrap(), two.join().unwrap())
        });
        for run in [&first, &second] {
            assert!(matches!(run.code, 0 | 1), "round {round}: {}", run.stderr);
            if run.code == 0 {
                assert_eq!(
                    run.stderr, "",
                    "41 changes, but no progress bar in a pipeline"
                );
            }
            if run.code == 1 {
                conflicts += 1;
                assert!(
                    run.stderr.contains("conflict:") || run.stderr.contains("changed while"),
                    "round {round}: {}",
                    run.stderr
                );
            }
        }
        assert!(first.code == 0 || second.code == 0, "one apply wins");
        let matches = |f: &str| ws.run(&["diff", f, "--non-zero-exit-code"]).code == 0;
        assert!(
            matches("one.yaml") ^ matches("two.yaml"),
            "round {round}: the state is exactly one of the files"
        );
        // Reset the scope so that the next round races from empty again.
        ok(ws.run(&["reset", "--select-tag", "race", "--yes"]));
    }
    eprintln!("{conflicts} conflicts in 6 rounds");
}

#[test]
fn a_batch_with_a_rejected_operation_leaves_the_state_unchanged() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let (status, _) = gw.call(
        "POST",
        "/services",
        Some(json!({"name": "taken", "url": "http://taken.internal:1"})),
    );
    assert_eq!(status, 201);
    let before = revision(&gw);
    // Valid offline, but the gateway rejects the last create: `taken` exists outside the scope.
    let file = TEAM_A.to_owned() + "  - username: a3\n";
    let file = file.replace(
        "services:\n",
        "services:\n  - name: taken\n    url: http://other.internal:1\n",
    );
    ws.write("a.yaml", &file);
    let run = fails(ws.run(&["apply", "a.yaml"]));
    assert!(
        run.stderr
            .contains("creating service taken failed, so nothing was applied"),
        "{}",
        run.stderr
    );
    assert_eq!(revision(&gw), before);
    assert_eq!(names(&gw, "services", "name"), ["taken"]);
    assert!(names(&gw, "consumers", "username").is_empty());
    assert_eq!(gw.get("/services/taken")["host"], "taken.internal");
}

#[test]
fn the_recipe_diffs_empty_after_apply_and_a_model_change_is_one_field() {
    let gw = Gateway::start(Some("basic-llm-routing-recipe"));
    let ws = gw.recipe_workspace();
    let recipe = recipe();
    ok(ws.run(&[
        "adopt",
        "control-plane",
        "basic-llm-routing-recipe",
        "--namespace",
        "basic-llm-routing-recipe",
    ]));
    ok(ws.run(&["apply", &recipe]));
    let clean = ok(ws.run(&["diff", &recipe, "--non-zero-exit-code", "--no-color"]));
    assert!(
        clean
            .stdout
            .contains("Created: 0\n  Updated: 0\n  Deleted: 0")
    );

    let ws = Workspace::new()
        .env("DECK_KONG_ADDR", &gw.admin_url())
        .env("DECK_OPENAI_TOKEN", RECIPE_ENV[0].1)
        .env("DECK_CHAT_MODEL_1", "gpt-4.1-mini")
        .env("DECK_CHAT_MODEL_2", RECIPE_ENV[2].1);
    let drift = ws.run(&["diff", &recipe, "--non-zero-exit-code", "--no-color"]);
    assert_eq!(drift.code, 2, "{}", drift.stderr);
    let changed: Vec<&str> = drift
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains('→'))
        .collect();
    assert_eq!(
        changed,
        ["  config.targets[0].model.name: \"gpt-4o-mini\" → \"gpt-4.1-mini\""],
        "{}",
        drift.stdout
    );
    assert!(drift.stdout.contains(
        "updating plugin ai-proxy-advanced (basic-llm-routing-proxy) for service basic-llm-routing\n"
    ));
    let doc = json_of(&ws.run(&["diff", &recipe, "--json-output"]));
    assert_eq!(doc["summary"]["total"], 1, "{doc}");
}

#[test]
fn sync_can_rename_entities_that_keep_a_unique_value_or_move_a_child() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let head = "_format_version: \"3.0\"\n_info:\n  select_tags: [moves]\n";
    let before = format!(
        "{head}services:\n  - name: old-svc\n    url: http://old.internal:80\n    routes:\n      - name: r\n        paths: [/r]\n    plugins:\n      - name: key-auth\n        instance_name: auth\n        config: {{key_names: [apikey]}}\nconsumers:\n  - username: u1\n    custom_id: shared-id\n  - username: k1\n    keyauth_credentials:\n      - key: moving-key\n"
    );
    // old-svc → new-svc (the route and the plugin instance move), u1 → u2 keeping its
    // custom_id, k1 → k2 keeping its key.
    let after = format!(
        "{head}services:\n  - name: new-svc\n    url: http://new.internal:80\n    routes:\n      - name: r\n        paths: [/r]\n    plugins:\n      - name: key-auth\n        instance_name: auth\n        config: {{key_names: [apikey]}}\nconsumers:\n  - username: u2\n    custom_id: shared-id\n  - username: k2\n    keyauth_credentials:\n      - key: moving-key\n"
    );
    ws.write("before.yaml", &before);
    ws.write("after.yaml", &after);
    ok(ws.run(&["sync", "before.yaml"]));
    let synced = ok(ws.run(&["sync", "after.yaml", "--no-color"]));
    assert!(
        synced.stdout.contains("deleting consumer u1\n"),
        "{}",
        synced.stdout
    );
    ok(ws.run(&["diff", "after.yaml", "--non-zero-exit-code"]));
    assert_eq!(names(&gw, "services", "name"), ["new-svc"]);
    assert_eq!(names(&gw, "consumers", "username"), ["k2", "u2"]);
    assert_eq!(
        gw.get("/routes/r")["service"]["id"],
        gw.get("/services/new-svc")["id"]
    );
}

#[test]
fn a_batch_with_a_plugin_the_gateway_rejects_changes_nothing() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ok(ws.run(&["apply", "a.yaml"]));
    let before = ok(ws.run(&["dump", "--show-secrets", "--with-id"])).stdout;
    let revision_before = revision(&gw);
    // Valid offline, but Kong's key-auth cannot be scoped to a consumer (`no_consumer`).
    let file = TEAM_A.replace("a.internal", "a2.internal")
        + "  - username: a3\n    plugins:\n      - name: key-auth\n        config: {key_names: [apikey]}\n";
    ws.write("a.yaml", &file);
    let run = fails(ws.run(&["sync", "a.yaml"]));
    assert!(
        run.stderr
            .contains("creating plugin key-auth for consumer a3 failed, so nothing was applied")
            && run.stderr.contains("consumer: value must be null"),
        "{}",
        run.stderr
    );
    assert_eq!(revision(&gw), revision_before);
    let after = ok(ws.run(&["dump", "--show-secrets", "--with-id"])).stdout;
    assert_eq!(
        after, before,
        "the service update and consumer create were rolled back"
    );
}

#[test]
fn an_admin_token_is_required_sent_with_the_flag_and_never_printed() {
    let gw = Gateway::start_with(&["--admin-token", "tok-canary-55"]);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    let denied = fails(ws.run(&["sync", "a.yaml"]));
    assert!(denied.stderr.contains("401"), "{}", denied.stderr);
    let ws = ws.env("DECK_KONG_ADMIN_TOKEN", "tok-canary-55");
    let runs = [
        ws.run(&["sync", "a.yaml"]),
        ws.run(&["diff", "a.yaml", "--non-zero-exit-code"]),
        ws.run(&["dump"]),
        ws.run(&["reset", "--select-tag", "team-a", "--yes"]),
    ];
    for run in runs {
        run.assert_ok();
        assert!(!format!("{}{}", run.stdout, run.stderr).contains("tok-canary-55"));
    }
}

#[test]
fn skip_consumers_leaves_consumers_and_their_keys_alone() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ok(ws.run(&["sync", "a.yaml"]));
    let services_only = "_format_version: \"3.0\"\n_info:\n  select_tags: [team-a]\nservices:\n  - name: a-svc\n    url: http://a.internal:8080\n    routes:\n      - name: a-route\n        paths: [/a]\n    plugins:\n      - name: key-auth\n        config: {key_names: [apikey]}\n";
    ws.write("svc.yaml", services_only);
    let synced = ok(ws.run(&["sync", "svc.yaml", "--skip-consumers", "--no-color"]));
    assert!(
        synced.stdout.contains("  Deleted: 0\n"),
        "{}",
        synced.stdout
    );
    assert_eq!(names(&gw, "consumers", "username"), ["a1", "a2"]);
    assert_eq!(names(&gw, "key-auths", "key"), ["a1-key"]);
    let full = ok(ws.run(&["diff", "svc.yaml", "--no-color"]));
    assert!(
        full.stdout.contains("deleting consumer a1"),
        "{}",
        full.stdout
    );
}

#[test]
fn apply_refuses_a_plan_saved_in_sync_mode_because_apply_never_deletes() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", TEAM_A);
    ok(ws.run(&["plan", "a.yaml", "--mode", "sync", "-o", "p.json"]));
    let run = fails(ws.run(&["apply", "--plan", "p.json"]));
    assert!(
        run.stderr.contains("was made in `sync` mode"),
        "{}",
        run.stderr
    );
    assert_eq!(names(&gw, "services", "name"), Vec::<String>::new());
}
