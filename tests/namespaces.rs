//! Control planes and namespaces against a real `gantry serve`: create and list, adopt (foreign,
//! overwrite, no-op), the namespace guard on apply/sync/reset, protected control planes, and
//! `delete control-plane` removing one control plane without touching another.

use serde_json::{Value, json};

use crate::util::{Gateway, Run, Workspace, recipe};

const CP: &str = "basic-llm-routing-recipe";
const NS: &str = "basic-llm-routing-recipe";

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

#[track_caller]
fn refused(run: Run, message: &str) -> Run {
    assert_eq!(run.code, 1, "expected exit 1; stdout:\n{}", run.stdout);
    assert!(
        run.stderr.contains(message),
        "wanted {message:?} in:\n{}",
        run.stderr
    );
    run
}

fn labels(gw: &Gateway, name: &str) -> Value {
    let id = gw.control_plane_id(name);
    gw.get(&format!("/v2/control-planes/{id}"))["labels"].clone()
}

/// A file for one control plane: a service and a consumer tagged `tag`.
fn file_for(cp: &str, tag: &str) -> String {
    format!(
        "_format_version: \"3.0\"\n_info:\n  select_tags: [{tag}]\n_konnect:\n  control_plane_name: {cp}\nservices:\n  - name: {tag}-svc\n    url: http://{tag}.internal:80\n    routes:\n      - name: {tag}-route\n        paths: [/{tag}]\nconsumers:\n  - username: {tag}-user\n    keyauth_credentials:\n      - key: {tag}-key\n"
    )
}

#[test]
fn create_lists_control_planes_in_text_and_json_and_refuses_a_taken_name() {
    let gw = Gateway::start(Some("served"));
    let ws = gw.workspace();
    let created = ok(ws.run(&["create", "control-plane", "team-x", "--label", "env=dev"]));
    let id = gw.control_plane_id("team-x");
    assert_eq!(
        created.stdout,
        format!("Created control plane \"team-x\" ({id})\n")
    );
    refused(
        ws.run(&["create", "control-plane", "team-x"]),
        "control plane `team-x` already exists",
    );
    ok(ws.run(&[
        "adopt",
        "control-plane",
        "team-x",
        "--namespace",
        "team-x-ns",
    ]));

    let text = ok(ws.run(&["get", "control-planes"])).stdout;
    let header = text.lines().next().unwrap();
    for col in ["NAME", "ID", "NAMESPACE", "LABELS"] {
        assert!(header.contains(col), "{text}");
    }
    let row = text
        .lines()
        .find(|l| l.starts_with("team-x "))
        .expect(&text);
    assert!(
        row.contains(&id) && row.contains("team-x-ns") && row.contains("env=dev"),
        "{row}"
    );
    assert!(text.lines().any(|l| l.starts_with("served ")), "{text}");

    let doc: Value =
        serde_json::from_str(&ok(ws.run(&["get", "control-planes", "-o", "json"])).stdout)
            .expect("json");
    let data = doc["data"].as_array().expect("{\"data\":[…]}");
    assert_eq!(data.len(), 2);
    let x = data.iter().find(|cp| cp["name"] == "team-x").unwrap();
    assert_eq!(x["id"], id.as_str());
    assert_eq!(x["namespace"], "team-x-ns");
    assert_eq!(x["labels"]["env"], "dev");
}

#[test]
fn writes_to_an_unadopted_control_plane_are_refused_with_the_adopt_command_and_reads_warn() {
    let gw = Gateway::start(Some(CP));
    let ws = gw.recipe_workspace();
    let recipe = recipe();
    let hint = format!(
        "control plane `{CP}` is not adopted into any namespace\n\nhint: run `gantry adopt control-plane {CP} --namespace {NS}` first"
    );
    refused(ws.run(&["apply", &recipe]), &hint);
    refused(ws.run(&["sync", &recipe]), &hint);
    refused(
        ws.run(&[
            "reset",
            "--select-tag",
            NS,
            "--control-plane",
            CP,
            "--namespace",
            NS,
            "--yes",
        ]),
        &hint,
    );
    assert_eq!(
        gw.get("/services")["data"],
        json!([]),
        "nothing was written"
    );

    let diff = ok(ws.run(&["diff", &recipe]));
    assert!(
        diff.stderr
            .contains(&format!("control plane `{CP}` is not adopted")),
        "{}",
        diff.stderr
    );
    let dump = ok(ws.run(&["dump", "--control-plane", CP, "--namespace", NS]));
    assert!(dump.stderr.contains("is not adopted"), "{}", dump.stderr);
}

#[test]
fn adopt_sets_only_the_namespace_label_and_then_apply_works() {
    let gw = Gateway::start(Some("served"));
    let ws = gw.recipe_workspace();
    ok(ws.run(&["create", "control-plane", CP, "--label", "team=ai"]));
    let id = gw.control_plane_id(CP);
    let adopted = ok(ws.run(&["adopt", "control-plane", &id, "--namespace", NS]));
    assert_eq!(
        adopted.stdout,
        format!("Adopted control plane \"{CP}\" ({id}) into namespace \"{NS}\"\n")
    );
    assert_eq!(
        labels(&gw, CP),
        json!({"KONGCTL-namespace": NS, "team": "ai"})
    );

    let applied = ok(ws.run(&["apply", &recipe(), "--no-color"]));
    assert!(
        applied.stdout.contains("  Created: 6\n"),
        "{}",
        applied.stdout
    );
    let services = gw.get(&format!("/v2/control-planes/{id}/core-entities/services"));
    assert_eq!(services["data"][0]["name"], "basic-llm-routing");
    assert_eq!(
        gw.get("/services")["data"],
        json!([]),
        "the served plane is untouched"
    );
}

#[test]
fn adopt_into_a_foreign_namespace_is_refused_unless_overwritten_and_the_same_namespace_is_a_no_op()
{
    let gw = Gateway::start(Some("served"));
    let ws = gw.workspace();
    ok(ws.run(&[
        "create",
        "control-plane",
        "shared",
        "--label",
        "KONGCTL-namespace=team-a",
    ]));
    refused(
        ws.run(&["adopt", "control-plane", "shared", "--namespace", "team-b"]),
        "control plane `shared` already belongs to namespace `team-a`",
    );
    assert_eq!(labels(&gw, "shared")["KONGCTL-namespace"], "team-a");

    let same = ok(ws.run(&["adopt", "control-plane", "shared", "--namespace", "team-a"]));
    assert!(
        same.stdout.contains("is already in namespace \"team-a\""),
        "{}",
        same.stdout
    );

    ok(ws.run(&[
        "adopt",
        "control-plane",
        "shared",
        "--namespace",
        "team-b",
        "--overwrite-namespace",
    ]));
    assert_eq!(
        labels(&gw, "shared"),
        json!({"KONGCTL-namespace": "team-b"})
    );

    ws.write("a.yaml", &file_for("shared", "a"));
    refused(
        ws.run(&["apply", "a.yaml", "--namespace", "team-a"]),
        "control plane `shared` belongs to namespace `team-b`, not `team-a`",
    );
    ok(ws.run(&["apply", "a.yaml", "--namespace", "team-b"]));
}

#[test]
fn a_protected_control_plane_refuses_apply_sync_reset_and_delete_but_can_be_read() {
    let gw = Gateway::start(Some("served"));
    let ws = gw.workspace();
    ok(ws.run(&[
        "create",
        "control-plane",
        "prod",
        "--label",
        "KONGCTL-namespace=ops",
    ]));
    ws.write("a.yaml", &file_for("prod", "a"));
    ok(ws.run(&["apply", "a.yaml", "--namespace", "ops"]));
    let id = gw.control_plane_id("prod");
    let (status, _) = gw.call(
        "PATCH",
        &format!("/v2/control-planes/{id}"),
        Some(json!({"labels": {"KONGCTL-protected": "true"}})),
    );
    assert_eq!(status, 200);
    let before = ok(ws.run(&["dump", "--control-plane", "prod", "--show-secrets"])).stdout;

    let protected = "control plane `prod` is protected (label `KONGCTL-protected: true`)";
    ws.write(
        "a2.yaml",
        &file_for("prod", "a").replace("a.internal", "a2.internal"),
    );
    refused(
        ws.run(&["apply", "a2.yaml", "--namespace", "ops"]),
        protected,
    );
    refused(ws.run(&["apply", "a2.yaml"]), protected);
    refused(
        ws.run(&["sync", "a2.yaml", "--namespace", "ops"]),
        protected,
    );
    refused(
        ws.run(&[
            "reset",
            "--select-tag",
            "a",
            "--control-plane",
            "prod",
            "--yes",
        ]),
        protected,
    );
    refused(
        ws.run(&[
            "delete",
            "control-plane",
            "prod",
            "--namespace",
            "ops",
            "--yes",
        ]),
        "refusing to delete it",
    );
    ok(ws.run(&["diff", "a2.yaml", "--namespace", "ops"]));
    let after = ok(ws.run(&["dump", "--control-plane", "prod", "--show-secrets"])).stdout;
    assert_eq!(after, before, "nothing changed");
}

#[test]
fn delete_is_refused_for_a_foreign_namespace() {
    let gw = Gateway::start(Some("served"));
    let ws = gw.workspace();
    ok(ws.run(&[
        "create",
        "control-plane",
        "theirs",
        "--label",
        "KONGCTL-namespace=team-a",
    ]));
    refused(
        ws.run(&[
            "delete",
            "control-plane",
            "theirs",
            "--namespace",
            "team-b",
            "--yes",
        ]),
        "control plane `theirs` belongs to namespace `team-a`, not `team-b`",
    );
    refused(
        ws.run(&["delete", "control-plane", "theirs", "--namespace", "team-a"]),
        "hint: pass `--yes`",
    );
    gw.control_plane_id("theirs");
    let deleted = ok(ws.run(&[
        "delete",
        "control-plane",
        "theirs",
        "--namespace",
        "team-a",
        "--yes",
    ]));
    assert!(
        deleted.stdout.contains("Deleted control plane \"theirs\""),
        "{}",
        deleted.stdout
    );
}

#[test]
fn deleting_one_control_plane_leaves_another_and_its_entities_intact() {
    let gw = Gateway::start(Some("served"));
    let ws: Workspace = gw.workspace();
    for cp in ["one", "two"] {
        ok(ws.run(&["create", "control-plane", cp]));
        ws.write(&format!("{cp}.yaml"), &file_for(cp, "shared-tag"));
        ok(ws.run(&["apply", &format!("{cp}.yaml")]));
    }
    // The same tag on two control planes: syncing one to empty never reaches the other.
    ws.write(
        "one-empty.yaml",
        "_format_version: \"3.0\"\n_info:\n  select_tags: [shared-tag]\n_konnect:\n  control_plane_name: one\n",
    );
    let dump_two = || {
        ok(ws.run(&[
            "dump",
            "--control-plane",
            "two",
            "--show-secrets",
            "--with-id",
        ]))
        .stdout
    };
    let before = dump_two();
    assert!(before.contains("shared-tag-svc"), "{before}");
    let synced = ok(ws.run(&["sync", "one-empty.yaml", "--no-color"]));
    assert!(
        synced.stdout.contains("  Deleted: 4\n"),
        "{}",
        synced.stdout
    );
    assert_eq!(dump_two(), before);

    ok(ws.run(&["apply", "one.yaml"]));
    let one = gw.control_plane_id("one");
    ok(ws.run(&["delete", "control-plane", "one", "--yes"]));
    assert_eq!(
        gw.call("GET", &format!("/v2/control-planes/{one}"), None).0,
        404
    );
    assert_eq!(dump_two(), before, "control plane two is byte-identical");
    ok(ws.run(&["diff", "two.yaml", "--non-zero-exit-code"]));
}
