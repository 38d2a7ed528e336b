//! decK's config file (`--config`, `~/.gantry.yaml`, `~/.deck.yaml`) and `DECK_<FLAG>`
//! variables, through the real binary against a real gateway.

use crate::util::{Gateway, Workspace};

const TEAM_A: &str =
    "_format_version: \"3.0\"\nservices:\n  - name: a-svc\n    url: http://a.internal\n";

/// A workspace whose HOME is its own directory (where `.deck.yaml` is looked up).
fn with_home() -> Workspace {
    let ws = Workspace::new();
    let home = ws.write(".keep", "");
    let home = home.parent().unwrap().display().to_string();
    ws.env("HOME", &home)
}

fn tags_of(gw: &Gateway) -> serde_json::Value {
    gw.get("/services")["data"][0]["tags"].clone()
}

#[test]
fn deck_yaml_in_home_supplies_flags() {
    let gw = Gateway::start(None);
    let ws = with_home();
    ws.write(
        ".deck.yaml",
        &format!(
            "kong-addr: {}\nselect-tag:\n  - team-a\nsilence-events: true\n",
            gw.admin_url()
        ),
    );
    ws.write("a.yaml", TEAM_A);
    let run = ws.run(&["sync", "a.yaml"]);
    run.assert_ok();
    assert_eq!(run.stdout, "", "silence-events came from the file");
    assert_eq!(tags_of(&gw), serde_json::json!(["team-a"]));
}

#[test]
fn gantry_yaml_wins_over_deck_yaml_and_explicit_config_wins_over_both() {
    let gw = Gateway::start(None);
    let ws = with_home();
    ws.write(".deck.yaml", "kong-addr: http://127.0.0.1:9\n");
    ws.write(".gantry.yaml", &format!("kong-addr: {}\n", gw.admin_url()));
    ws.write("a.yaml", TEAM_A);
    ws.run(&["diff", "a.yaml"]).assert_ok();
    ws.write("other.yaml", "kong-addr: http://127.0.0.1:9\ntimeout: 1\n");
    let run = ws.run(&["--config", "other.yaml", "diff", "a.yaml"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("http://127.0.0.1:9"), "{}", run.stderr);
    let run = ws.run(&["diff", "a.yaml", "--config=other.yaml"]);
    assert_eq!(run.code, 1);
    let missing = ws.run(&["diff", "--config", "nope.yaml", "a.yaml"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("cannot read config file nope.yaml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn variables_win_over_the_file_and_flags_win_over_variables() {
    let gw = Gateway::start(None);
    let ws = with_home()
        .env("DECK_KONG_ADDR", &gw.admin_url())
        .env("DECK_SELECT_TAG", "from-env,second");
    ws.write(".deck.yaml", "select-tag: [from-file]\n");
    ws.write("a.yaml", TEAM_A);
    ws.run(&["sync", "a.yaml"]).assert_ok();
    assert_eq!(tags_of(&gw), serde_json::json!(["from-env", "second"]));
    let run = ws.run(&[
        "diff",
        "a.yaml",
        "--select-tag",
        "from-flag",
        "--json-output",
    ]);
    run.assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON report");
    assert_eq!(
        doc["changes"]["creating"][0]["body"]["new"]["tags"],
        serde_json::json!(["from-flag"]),
        "{doc}"
    );
}

#[test]
fn every_flag_has_a_deck_variable() {
    let gw = Gateway::start(None);
    let ws = gw.workspace().env("DECK_NON_ZERO_EXIT_CODE", "true");
    ws.write("a.yaml", TEAM_A);
    assert_eq!(ws.run(&["diff", "a.yaml"]).code, 2);
    let json = gw
        .workspace()
        .env("DECK_JSON_OUTPUT", "1")
        .run_with_stdin(&["diff"], Some(TEAM_A));
    json.assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON report");
    assert_eq!(doc["summary"]["creating"], 1);
    // A bad value is reported by clap like a bad flag.
    let bad = gw
        .workspace()
        .env("DECK_TIMEOUT", "soon")
        .run_with_stdin(&["diff"], Some(TEAM_A));
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid value 'soon' for '--timeout"),
        "{}",
        bad.stderr
    );
}

#[test]
fn unknown_config_keys_are_refused_by_name() {
    let ws = with_home();
    ws.write(".deck.yaml", "konnect-token: x\n");
    let run = ws.run(&["validate", "-"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown key 'konnect-token'"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(".deck.yaml"), "{}", run.stderr);
}
