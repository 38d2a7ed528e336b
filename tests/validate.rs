//! `gantry validate`: offline checks, every problem listed as `file:line:col: path: message`.

use std::path::Path;

use crate::util::{Workspace, gantry, minimal, recipe, recipe_workspace};

#[test]
fn every_invalid_fixture_prints_exactly_its_expected_problems() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/validate");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for yaml in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let name = yaml.file_name().unwrap().to_str().unwrap();
        let expected = std::fs::read_to_string(yaml.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{name} has no .expected file"));
        let expected: Vec<&str> = expected.lines().collect();
        gantry(&dir, &[], &["validate", "--mock-env", name], None).assert_fails_with(&expected);
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures found");
}

#[test]
fn the_recipe_is_valid_with_its_variables_set() {
    let run = recipe_workspace().run(&["validate", &recipe()]);
    run.assert_ok();
    assert_eq!(run.stderr, "");
}

#[test]
fn the_recipe_is_valid_with_mock_env_and_no_variables() {
    Workspace::new()
        .run(&["validate", "--mock-env", &recipe()])
        .assert_ok();
}

#[test]
fn the_deck_alias_file_validate_does_the_same() {
    Workspace::new()
        .run(&["file", "validate", "--mock-env", &recipe()])
        .assert_ok();
}

#[test]
fn an_unknown_field_is_named_with_file_line_col_and_path() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    url: http://localhost:9000\n    retriez: 3\n",
    );
    w.run(&["validate", "kong.yaml"])
        .assert_fails_with(&["kong.yaml:5:5: services[0].retriez: unknown field"]);
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("    retriez: 3\nconsumers:\n  - username: a\n    nickname: x\n  - username: a\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:8:5: services[0].retriez: unknown field",
        "kong.yaml:11:5: consumers[0].nickname: unknown field",
        "kong.yaml:12:5: consumers[1].username: duplicate consumer username 'a'; first defined at kong.yaml:10:5",
    ]);
}

#[test]
fn wrong_types_say_what_was_expected() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("    port: eighty\n")
            .replace("    url: http://localhost:9000\n", "    host: up\n"),
    );
    w.run(&["validate", "kong.yaml"])
        .assert_fails_with(&["kong.yaml:8:5: services[0].port: expected an integer"]);
}

#[test]
fn a_route_naming_a_missing_service_is_a_dangling_reference() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nroutes:\n  - name: r\n    service: nope\n    paths: [/r]\n",
    );
    w.run(&["validate", "kong.yaml"])
        .assert_fails_with(&["kong.yaml:4:5: routes[0].service: service 'nope' not found"]);
}

#[test]
fn plugins_naming_missing_routes_or_consumers_are_dangling_references() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("plugins:\n  - name: key-auth\n    route: ghost\n  - name: key-auth\n    service: svc\n    consumer: nobody\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:10:5: plugins[0].route: route 'ghost' not found",
        "kong.yaml:13:5: plugins[1].consumer: consumer 'nobody' not found",
    ]);
}

#[test]
fn duplicate_service_and_route_names_are_reported_with_the_first_place() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal(
            "  - name: svc\n    host: other\n    routes:\n      - name: r\n        paths: [/x]\n",
        ),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:8:5: services[1].name: duplicate service name 'svc'; first defined at kong.yaml:3:5",
        "kong.yaml:11:9: services[1].routes[0].name: duplicate route name 'r'; first defined at kong.yaml:6:9",
    ]);
}

#[test]
fn duplicate_credential_keys_are_reported_without_printing_the_key() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("consumers:\n  - username: a\n    keyauth_credentials:\n      - key: sekrit-123\n  - username: b\n    keyauth_credentials:\n      - key: sekrit-123\n"),
    );
    let run = w.run(&["validate", "kong.yaml"]);
    run.assert_fails_with(&[
        "kong.yaml:14:9: consumers[1].keyauth_credentials[0].key: duplicate key-auth credential key; first defined at kong.yaml:11:9",
    ]);
    assert!(!run.stderr.contains("sekrit"));
}

#[test]
fn the_same_plugin_twice_on_one_scope_is_a_duplicate() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("    plugins:\n      - name: key-auth\nplugins:\n  - name: key-auth\n    service: svc\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:11:5: plugins[0]: duplicate plugin 'key-auth' on service 'svc'; first defined at kong.yaml:9:9",
    ]);
}

#[test]
fn a_yaml_syntax_error_gives_its_line() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    paths: [/a, /b\n",
    );
    let run = w.run(&["validate", "kong.yaml"]);
    assert_eq!(run.code, 1);
    let problems = run.problems();
    assert_eq!(problems.len(), 1, "{}", run.stderr);
    assert!(
        problems[0].starts_with("kong.yaml:5:1: did not find expected ',' or ']'"),
        "{}",
        problems[0]
    );
}

#[test]
fn anthropic_without_a_version_gets_kongs_message_at_the_target() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal(concat!(
            "    plugins:\n",
            "      - name: key-auth\n",
            "      - name: ai-proxy-advanced\n",
            "        config:\n",
            "          targets:\n",
            "            - route_type: llm/v1/chat\n",
            "              model:\n",
            "                provider: anthropic\n",
            "                name: claude-sonnet-4-5\n",
        )),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:14:15: services[0].plugins[1].config.targets[0].model.options.anthropic_version: must set 'model.options.anthropic_version' for anthropic provider",
    ]);
}

#[test]
fn unknown_plugin_config_fields_and_plugin_names_are_errors() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("plugins:\n  - name: key-auth\n    config:\n      key_namez: [apikey]\n  - name: rate-limiting-advanced\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:11:7: plugins[0].config.key_namez: unknown field",
        "kong.yaml:12:5: plugins[1].name: unknown plugin 'rate-limiting-advanced'; Gantry supports: key-auth, ai-proxy-advanced, ai-proxy, file-log, rate-limiting, ai-rate-limiting-advanced, http-log, prometheus",
    ]);
}

#[test]
fn ai_proxy_is_accepted_as_well_as_ai_proxy_advanced() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("plugins:\n  - name: ai-proxy\n    route: r\n    config:\n      route_type: llm/v1/chat\n      model: {provider: openai, name: gpt-4o}\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_ok();
}

#[test]
fn several_files_and_directories_merge() {
    let w = Workspace::new();
    w.write(
        "conf/a.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    url: http://up\n",
    );
    w.write(
        "conf/sub/b.yml",
        "routes:\n  - name: r\n    service: svc\n    paths: [/r]\n",
    );
    w.write("conf/notes.txt", "not a state file: [");
    w.write(
        "c.yaml",
        "consumers:\n  - username: app\nplugins:\n  - name: key-auth\n    route: r\n",
    );
    w.run(&["validate", "conf", "c.yaml"]).assert_ok();
    // Without the directory, the route's service and the plugin's route are missing.
    w.run(&["validate", "c.yaml"]).assert_fails_with(&[
        "c.yaml:1:1: _format_version: required field missing (set _format_version: \"3.0\")",
        "c.yaml:5:5: plugins[0].route: route 'r' not found",
    ]);
}

#[test]
fn duplicates_across_files_name_both_files() {
    let w = Workspace::new();
    w.write("a.yaml", &minimal(""));
    w.write(
        "b.yaml",
        "services:\n  - name: svc\n    url: http://other\n",
    );
    w.run(&["validate", "a.yaml", "b.yaml"]).assert_fails_with(&[
        "b.yaml:2:5: services[0].name: duplicate service name 'svc'; first defined at a.yaml:3:5",
    ]);
}

#[test]
fn stdin_is_read_for_a_dash() {
    let w = Workspace::new();
    let run = w.run_with_stdin(&["validate", "-"], Some(&minimal("    retriez: 1\n")));
    run.assert_fails_with(&["<stdin>:8:5: services[0].retriez: unknown field"]);
    w.run_with_stdin(&["validate", "-"], Some(&minimal("")))
        .assert_ok();
}

#[test]
fn json_files_work_like_yaml_files() {
    let w = Workspace::new();
    w.write(
        "kong.json",
        "{\n  \"_format_version\": \"3.0\",\n  \"services\": [\n    {\"name\": \"svc\", \"url\": \"http://up\", \"retriez\": 1}\n  ]\n}\n",
    );
    w.run(&["validate", "kong.json"])
        .assert_fails_with(&["kong.json:4:41: services[0].retriez: unknown field"]);
    w.write(
        "ok.json",
        "{\"_format_version\": \"3.0\", \"services\": [{\"name\": \"svc\", \"url\": \"http://up\", \"routes\": [{\"name\": \"r\", \"paths\": [\"/r\"]}]}]}",
    );
    w.run(&["validate", "ok.json"]).assert_ok();
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let run = Workspace::new().run(&["validate", "nope.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.problems()[0].starts_with("nope.yaml: cannot read:"),
        "{}",
        run.stderr
    );
}

#[test]
fn route_and_service_rules_follow_kong() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n  - name: both\n    url: http://up\n    host: up\n    routes:\n      - name: r\n      - name: p\n        paths: [api]\n",
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:3:5: services[0]: must set 'url' or 'host'",
        "kong.yaml:6:5: services[1].host: cannot be combined with 'url'",
        "kong.yaml:8:9: services[1].routes[0]: must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'",
        "kong.yaml:10:17: services[1].routes[1].paths[0]: should start with: / (fixed path) or ~/ (regex path)",
    ]);
}

#[test]
fn an_unquoted_format_version_is_read_as_the_string_it_looks_like() {
    let w = Workspace::new();
    w.write("kong.yaml", &minimal("").replace("\"3.0\"", "3.0"));
    w.run(&["validate", "kong.yaml"]).assert_ok();
    w.write("old.yaml", &minimal("").replace("\"3.0\"", "1.1"));
    w.run(&["validate", "old.yaml"]).assert_fails_with(&[
        "old.yaml:1:1: _format_version: unsupported format version '1.1'; Gantry reads \"3.0\"",
    ]);
}

#[test]
fn a_key_written_twice_is_an_error_not_a_silent_overwrite() {
    let w = Workspace::new();
    w.write("kong.yaml", &minimal("    url: http://elsewhere\n"));
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:8:5: services[0].url: key written twice in the same mapping",
    ]);
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &format!("\u{feff}{}", minimal("    retriez: 1\n")),
    );
    w.run(&["validate", "kong.yaml"])
        .assert_fails_with(&["kong.yaml:8:5: services[0].retriez: unknown field"]);
}

#[test]
fn yaml_anchors_and_merge_keys_work_as_in_deck() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nx-base: &base\n  retries: 2\n",
    );
    // Top-level extension keys are still unknown fields...
    w.run(&["validate", "kong.yaml"])
        .assert_fails_with(&["kong.yaml:2:1: x-base: unknown field"]);
    // ...but anchors and merge keys inside entities are fine.
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - &svc\n    name: a\n    host: up\n    retries: 2\n  - <<: *svc\n    name: b\n",
    );
    let run = w.run(&["render", "--format", "json", "kong.yaml"]);
    run.assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["services"][1]["name"], "b");
    assert_eq!(doc["services"][1]["retries"], 2);
}

#[test]
fn json_output_lists_each_problem_as_its_own_object() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    host: example.com\n    retriez: 3\n    routes:\n      - name: r\n        pathz: [/r]\n",
    );
    let expected = serde_json::json!([
        {"file": "kong.yaml", "line": 5, "column": 5, "path": "services[0].retriez", "message": "unknown field"},
        {"file": "kong.yaml", "line": 7, "column": 9, "path": "services[0].routes[0]", "message": "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'"},
        {"file": "kong.yaml", "line": 8, "column": 9, "path": "services[0].routes[0].pathz", "message": "unknown field"},
    ]);
    let run = w.run(&["validate", "--json-output", "kong.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["problems"], expected);
    // The reconciling commands' report carries the same objects in `errors`, before any
    // connection is tried.
    for cmd in ["diff", "apply", "sync"] {
        let run = w.run(&[
            cmd,
            "--json-output",
            "--kong-addr",
            "http://127.0.0.1:9",
            "kong.yaml",
        ]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stderr);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
        assert_eq!(doc["errors"], expected, "{cmd}");
    }
    // A valid file gives an empty list and exit 0.
    w.write("ok.yaml", &crate::util::minimal(""));
    let ok = w.run(&["validate", "--json-output", "ok.yaml"]);
    ok.assert_ok();
    assert_eq!(ok.stdout.trim(), "{\n  \"problems\": []\n}");
}

#[test]
fn mock_env_does_not_report_templated_numbers_and_booleans_as_wrong_types() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: s\n    host: ${{ env \"DECK_HOST\" }}\n    port: ${{ env \"DECK_PORT\" }}\n    retries: $<< env \"DECK_RETRIES\" >>\n    enabled: ${{ env \"DECK_ON\" }}\n    routes:\n      - name: r\n        paths: [/r]\n",
    );
    w.run(&["validate", "--mock-env", "kong.yaml"]).assert_ok();
    // A quoted template is a string whatever its value, so that is still a type error...
    w.write(
        "quoted.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    port: \"${{ env \"DECK_PORT\" }}\"\n",
    );
    w.run(&["validate", "--mock-env", "quoted.yaml"])
        .assert_fails_with(&["quoted.yaml:5:5: services[0].port: expected an integer"]);
    // ...and so is a literal of the wrong type.
    w.write(
        "literal.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    port: eighty\n",
    );
    w.run(&["validate", "--mock-env", "literal.yaml"])
        .assert_fails_with(&["literal.yaml:5:5: services[0].port: expected an integer"]);
}

#[test]
fn validate_notes_that_key_in_bearer_is_a_gantry_extension() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("plugins:\n  - name: key-auth\n    config:\n      key_in_bearer: true\n"),
    );
    let run = w.run(&["validate", "kong.yaml"]);
    run.assert_ok();
    assert!(
        run.stderr
            .contains("note: plugins[0].config.key_in_bearer is a Gantry extension"),
        "{}",
        run.stderr
    );
    // A Kong file gets no note.
    w.write("plain.yaml", &minimal("plugins:\n  - name: key-auth\n"));
    let run = w.run(&["validate", "plain.yaml"]);
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
}
