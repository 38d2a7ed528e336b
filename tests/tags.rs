//! decK's tag lists: `--select-tag a,b` is the two tags `a` and `b`, and a tag the admin API
//! would refuse fails at `validate`/`diff`, named by its flag or file place, before anything
//! is sent.

use serde_json::Value;

use crate::util::{Gateway, minimal};

fn tags_of(gw: &Gateway, collection: &str) -> Vec<Value> {
    gw.get(&format!("/{collection}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tags"].clone())
        .collect()
}

#[test]
fn a_comma_list_of_select_tags_is_several_tags_as_in_deck() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("kong.yaml", &minimal(""));
    ws.run(&["apply", "kong.yaml", "--select-tag", "team-a,prod"])
        .assert_ok();
    assert_eq!(
        tags_of(&gw, "services"),
        [serde_json::json!(["prod", "team-a"])]
    );
    assert_eq!(
        tags_of(&gw, "routes"),
        [serde_json::json!(["prod", "team-a"])]
    );
    // The list, the repeated flag and the reversed order all name the same scope.
    for flags in [
        vec!["--select-tag", "team-a,prod"],
        vec!["--select-tag", "prod", "--select-tag", "team-a"],
        vec!["--select-tag", "prod,team-a"],
    ] {
        let mut args = vec!["diff", "kong.yaml", "--non-zero-exit-code"];
        args.extend(flags);
        ws.run(&args).assert_ok();
    }
    // A dump of that scope records both tags as its select_tags.
    let dump = ws.run(&["dump", "--select-tag", "team-a,prod"]);
    dump.assert_ok();
    assert!(
        dump.stdout.contains("select_tags:\n  - prod\n  - team-a"),
        "{}",
        dump.stdout
    );
}

#[test]
fn a_tag_the_admin_api_refuses_fails_at_validate_and_diff_with_its_place() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    let file = "_format_version: \"3.0\"\n_info:\n  select_tags: [\"team/a\"]\nservices:\n  - name: svc\n    url: http://localhost:9000\n    tags: [ok, \"a,b\"]\n    routes:\n      - name: r\n        paths: [/r]\n        tags: [\"\"]\n";
    ws.write("kong.yaml", file);
    let expected = [
        "kong.yaml:3:17: _info.select_tags[0]: invalid tag 'team/a': expected printable ascii (except `,` and `/`) or valid utf-8 sequences",
        "kong.yaml:7:16: services[0].tags[1]: invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences",
        "kong.yaml:11:16: services[0].routes[0].tags[0]: invalid tag '': expected printable ascii (except `,` and `/`) or valid utf-8 sequences",
    ];
    ws.run(&["validate", "kong.yaml"])
        .assert_fails_with(&expected);
    for cmd in ["diff", "apply", "sync"] {
        let run = ws.run(&[cmd, "kong.yaml"]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stdout);
        for line in expected {
            assert!(run.stderr.contains(line), "{cmd}:\n{}", run.stderr);
        }
    }
    assert_eq!(gw.get("/status")["store_revision"], 0);
}

#[test]
fn a_select_tag_flag_the_admin_api_would_refuse_names_the_flag() {
    let gw = Gateway::start(None);
    let ws = gw.workspace();
    ws.write("kong.yaml", &minimal(""));
    let runs: [&[&str]; 5] = [
        &["diff", "kong.yaml", "--select-tag", "team/a"],
        &["apply", "kong.yaml", "--select-tag", "team/a"],
        &["sync", "kong.yaml", "--select-tag", "ok,team/a"],
        &["dump", "--select-tag", "team/a"],
        &["reset", "--select-tag", "team/a", "--yes"],
    ];
    for args in runs {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("--select-tag: invalid tag 'team/a'"),
            "{args:?}:\n{}",
            run.stderr
        );
    }
    assert_eq!(gw.get("/status")["store_revision"], 0);
}
