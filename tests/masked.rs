//! A mask is never written back: a masked `dump` (or a decK `--sanitize` dump) applied with
//! `sync`/`apply` is refused before anything is sent, with the file place and a hint, and an
//! update of a secret shows that it changed through fingerprints, never the value.

use serde_json::Value;

use crate::util::{Gateway, Run, Workspace};

/// A service with an AI proxy whose provider credential comes from `DECK_TOKEN`, and a
/// consumer with a key.
const FILE: &str = r#"_format_version: "3.0"
services:
  - name: llm
    url: http://127.0.0.1:9
    routes:
      - name: chat
        paths: [/chat]
    plugins:
      - name: key-auth
      - name: ai-proxy-advanced
        config:
          targets:
            - route_type: llm/v1/chat
              auth:
                header_name: Authorization
                header_value: ${{ env "DECK_TOKEN" }}
              model: {provider: openai, name: gpt-4o-mini}
consumers:
  - username: app
    keyauth_credentials:
      - key: real-key-5c1d
"#;

const TOKEN: &str = "Bearer sk-canary-0b7e";

fn ws(gw: &Gateway, token: &str) -> Workspace {
    gw.workspace().env("DECK_TOKEN", token)
}

#[track_caller]
fn refused(run: &Run) {
    assert_eq!(
        run.code, 1,
        "expected a refusal\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

/// The stored key and provider credential, read straight from the admin API.
fn stored_secrets(gw: &Gateway) -> (Value, Value) {
    let keys = gw.get("/key-auths")["data"].clone();
    let plugins = gw.get("/plugins")["data"].clone();
    let header = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ai-proxy-advanced")
        .map(|p| p["config"]["targets"][0]["auth"]["header_value"].clone())
        .unwrap_or_default();
    (keys, header)
}

#[test]
fn a_masked_dump_synced_back_is_refused_and_the_stored_secrets_stay() {
    let gw = Gateway::start(None);
    let ws = ws(&gw, TOKEN);
    ws.write("kong.yaml", FILE);
    ws.run(&["sync", "kong.yaml"]).assert_ok();
    let before = stored_secrets(&gw);
    assert_eq!(before.1, TOKEN);
    let revision = gw.get("/status")["store_revision"].clone();

    let dump = ws.run(&["dump"]);
    dump.assert_ok();
    let dump = dump.stdout;
    assert!(
        dump.contains("[masked]") && !dump.contains("real-key-5c1d"),
        "{dump}"
    );
    ws.write("dump.yaml", &dump);

    let commands: [&[&str]; 6] = [
        &["validate", "dump.yaml"],
        &["diff", "dump.yaml"],
        &["plan", "dump.yaml", "-o", "p.json"],
        &["apply", "dump.yaml"],
        &["sync", "dump.yaml"],
        &["gateway", "sync", "dump.yaml"],
    ];
    for args in commands {
        let run = ws.run(args);
        refused(&run);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("[masked]"))
            .collect();
        assert_eq!(
            lines.len(),
            2,
            "`gantry {}`:\n{}",
            args.join(" "),
            run.stderr
        );
        // Each refusal names the file, line and column, the entity path and the way out.
        assert!(
            lines.iter().any(|l| l.starts_with("dump.yaml:")
                && l.contains("consumers[0].keyauth_credentials[0].key: ")),
            "{}",
            run.stderr
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(".config.targets[0].auth.header_value: ")),
            "{}",
            run.stderr
        );
        assert!(lines.iter().all(|l| l.contains("--show-secrets")));
    }
    assert_eq!(stored_secrets(&gw), before);
    assert_eq!(gw.get("/status")["store_revision"], revision);

    // The way out the hint names works: a dump with secrets syncs back as no change.
    ws.run(&["dump", "--show-secrets", "-o", "full.yaml", "--yes"])
        .assert_ok();
    let run = ws.run(&["sync", "full.yaml", "--no-color"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("Created: 0\n  Updated: 0\n  Deleted: 0")
    );
}

#[test]
fn a_decks_sanitized_dump_cannot_replace_real_secrets() {
    let gw = Gateway::start(None);
    let ws = ws(&gw, TOKEN);
    ws.write("kong.yaml", FILE);
    ws.run(&["sync", "kong.yaml"]).assert_ok();
    let before = stored_secrets(&gw);
    // What `deck gateway dump --sanitize` writes: every string a salted SHA-256.
    let h = |n: u8| format!("{:064x}", u128::from(n) * 0x0123_4567_89ab_cdef);
    let sanitized = format!(
        r#"_format_version: "3.0"
consumers:
  - username: "{}"
    keyauth_credentials:
      - key: "{}"
plugins:
  - name: ai-proxy-advanced
    config:
      targets:
        - route_type: llm/v1/chat
          auth: {{header_name: "{}", header_value: "{}"}}
          model: {{provider: openai, name: "{}"}}
"#,
        h(1),
        h(2),
        h(3),
        h(4),
        h(5)
    );
    ws.write("sanitized.yaml", &sanitized);
    for cmd in ["validate", "diff", "apply", "sync"] {
        let run = ws.run(&[cmd, "sanitized.yaml"]);
        refused(&run);
        let hits = run.stderr.matches("sanitized dump").count();
        assert_eq!(hits, 2, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("sanitized.yaml:5:9: consumers[0].keyauth_credentials[0].key: "),
            "{}",
            run.stderr
        );
    }
    assert_eq!(stored_secrets(&gw), before);
}

#[test]
fn an_updated_secret_shows_two_fingerprints_never_the_values() {
    let gw = Gateway::start(None);
    let first = ws(&gw, TOKEN);
    first.write("kong.yaml", FILE);
    first.run(&["sync", "kong.yaml"]).assert_ok();
    let rotated = ws(&gw, "Bearer sk-canary-rotated-44");
    rotated.write("kong.yaml", FILE);
    let text = rotated.run(&["diff", "kong.yaml", "--no-color"]);
    text.assert_ok();
    let line = text
        .stdout
        .lines()
        .find(|l| l.contains("config.targets[0].auth.header_value: "))
        .unwrap_or_else(|| panic!("the change is listed:\n{}", text.stdout));
    let (old, new) = line
        .split_once(": ")
        .and_then(|(_, v)| v.split_once(" → "))
        .expect("old → new");
    assert!(
        old.starts_with("\"[masked:") && new.starts_with("\"[masked:"),
        "{line}"
    );
    assert_ne!(old, new, "{line}");
    let json = rotated.run(&["diff", "kong.yaml", "--json-output"]);
    json.assert_ok();
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let field = &report["changes"]["updating"][0]["changed_fields"][0];
    assert_eq!(field["field"], "config.targets[0].auth.header_value");
    assert_ne!(field["old"], field["new"]);
    assert!(field["old"].as_str().unwrap().starts_with("[masked:"));
    for out in [&text.stdout, &text.stderr, &json.stdout, &json.stderr] {
        assert!(!out.contains("sk-canary"), "a secret leaked:\n{out}");
    }
    // With no change, nothing is listed.
    first
        .run(&["diff", "kong.yaml", "--non-zero-exit-code"])
        .assert_ok();
}
