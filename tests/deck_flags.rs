//! decK's flags that Gantry accepts, each through the real binary against a real gateway:
//! `-s/--state`, `diff --yes`, `--silence-events`, `--verbose`, `-w/--workspace` and
//! `--no-mask-deck-env-vars-value`.

use serde_json::Value;

use crate::util::{Gateway, Run};

const FILE_A: &str = "_format_version: \"3.0\"\nservices:\n  - name: a-svc\n    url: http://a.internal:8080\n    routes:\n      - name: a-route\n        paths: [/a]\nconsumers:\n  - username: alice\n    keyauth_credentials:\n      - key: alice-secret-key\n";
const FILE_B: &str =
    "_format_version: \"3.0\"\nservices:\n  - name: b-svc\n    url: http://b.internal:8080\n";

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

fn names(gw: &Gateway, collection: &str) -> Vec<String> {
    let mut v: Vec<String> = gw.get(&format!("/{collection}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[test]
fn state_flag_names_files_like_positional_arguments() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", FILE_A);
    ws.write("b.yaml", FILE_B);
    let positional = ok(ws.run(&["diff", "a.yaml", "b.yaml"]));
    let flagged = ok(ws.run(&["diff", "-s", "a.yaml", "--state", "b.yaml"]));
    assert_eq!(flagged.stdout, positional.stdout);
    assert!(
        flagged.stdout.contains("creating service b-svc"),
        "{}",
        flagged.stdout
    );
    ok(ws.run(&["sync", "-s", "a.yaml", "-s", "b.yaml"]));
    assert_eq!(names(&gw, "services"), ["a-svc", "b-svc"]);
    ok(ws.run(&["apply", "--state", "a.yaml"]));
    // validate and render take it too; a bad file named by -s is reported by name.
    ws.write(
        "bad.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: x\n    hots: y\n",
    );
    let bad = ws.run(&["validate", "-s", "bad.yaml"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("bad.yaml:4:5: services[0].hots: unknown field"),
        "{}",
        bad.stderr
    );
    ok(ws.run(&["render", "-s", "b.yaml"]));
    // With neither, stdin is read as before.
    let stdin = ws.run_with_stdin(&["diff"], Some(FILE_B));
    stdin.assert_ok();
    assert!(
        stdin.stdout.contains("deleting service a-svc"),
        "{}",
        stdin.stdout
    );
}

#[test]
fn diff_accepts_yes_as_deck_does() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("b.yaml", FILE_B);
    let plain = ok(ws.run(&["diff", "b.yaml"]));
    let yes = ok(ws.run(&["diff", "--yes", "b.yaml"]));
    assert_eq!(yes.stdout, plain.stdout);
    assert!(names(&gw, "services").is_empty(), "diff changed nothing");
}

#[test]
fn silence_events_prints_nothing_but_still_applies_and_still_reports_json() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", FILE_A);
    let silent = ok(ws.run(&["sync", "--silence-events", "a.yaml"]));
    assert_eq!(silent.stdout, "");
    assert_eq!(names(&gw, "services"), ["a-svc"]);
    ws.write("b.yaml", FILE_B);
    let diff = ok(ws.run(&["diff", "--silence-events", "b.yaml"]));
    assert_eq!(diff.stdout, "");
    let json = ok(ws.run(&["diff", "--silence-events", "--json-output", "b.yaml"]));
    let doc: Value = serde_json::from_str(&json.stdout).expect("JSON report");
    assert_eq!(doc["summary"]["creating"], 1);
    // Exit codes are unchanged by it.
    assert_eq!(
        ws.run(&["diff", "--silence-events", "--non-zero-exit-code", "b.yaml"])
            .code,
        2
    );
}

#[test]
fn verbose_logs_each_request_without_secrets() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("b.yaml", FILE_B);
    let run = ok(ws.run(&[
        "sync",
        "--verbose",
        "1",
        "--kong-admin-token",
        "tok-canary-91",
        "--headers",
        "x-team:secret-header-canary",
        "b.yaml",
    ]));
    let admin = gw.admin_url();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with(&format!("> GET {admin}/"))),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().any(|l| l.starts_with("< 200 GET ")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[kong-admin-token: [masked]]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(JSON body not logged)"),
        "{}",
        run.stderr
    );
    for secret in ["tok-canary-91", "secret-header-canary", "b.internal"] {
        assert!(
            !run.stderr.contains(secret),
            "{secret} leaked:\n{}",
            run.stderr
        );
    }
    // Without it, nothing is logged.
    ws.write("b2.yaml", &FILE_B.replace("8080", "8081"));
    let quiet = ok(ws.run(&["sync", "b2.yaml"]));
    assert!(!quiet.stderr.contains("> GET"), "{}", quiet.stderr);
}

#[test]
fn workspace_flag_selects_the_control_plane_of_that_name() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ok(ws.run(&["create", "control-plane", "team-w"]));
    ws.write("b.yaml", FILE_B);
    ok(ws.run(&["sync", "-w", "team-w", "b.yaml"]));
    // The served (default) control plane is untouched; team-w has the service.
    assert!(names(&gw, "services").is_empty());
    let dump = ok(ws.run(&["dump", "--workspace", "team-w"]));
    assert!(dump.stdout.contains("name: b-svc"), "{}", dump.stdout);
    let dump_cp = ok(ws.run(&["dump", "--control-plane", "team-w", "-w", "team-w"]));
    assert_eq!(dump_cp.stdout, dump.stdout);
    let clash = ws.run(&["diff", "-w", "team-w", "--control-plane", "other", "b.yaml"]);
    assert_eq!(clash.code, 1);
    assert!(
        clash.stderr.contains(
            "--workspace 'team-w' and --control-plane 'other' name different control planes"
        ),
        "{}",
        clash.stderr
    );
    let missing = ws.run(&["diff", "-w", "nope", "b.yaml"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
    // ping -w checks the control plane exists, as decK's checks the workspace.
    let ping = ok(ws.run(&["ping", "-w", "team-w"]));
    assert!(
        ping.stdout.ends_with("Control plane:  team-w\n"),
        "{}",
        ping.stdout
    );
    let absent = ws.run(&["ping", "-w", "nope"]);
    assert_eq!(absent.code, 1);
    assert!(absent.stderr.contains("nope"), "{}", absent.stderr);
}

#[test]
fn no_mask_deck_env_vars_value_shows_secret_values() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("a.yaml", FILE_A);
    let masked = ok(ws.run(&["diff", "--json-output", "a.yaml"]));
    assert!(
        !masked.stdout.contains("alice-secret-key"),
        "{}",
        masked.stdout
    );
    assert!(masked.stdout.contains("[masked]"), "{}", masked.stdout);
    for cmd in ["diff", "sync"] {
        let shown = ok(ws.run(&[
            cmd,
            "--json-output",
            "--no-mask-deck-env-vars-value",
            "a.yaml",
        ]));
        assert!(
            shown.stdout.contains("alice-secret-key"),
            "{cmd}: {}",
            shown.stdout
        );
    }
}
