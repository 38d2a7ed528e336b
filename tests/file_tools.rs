//! `gantry file merge|patch|add-tags|remove-tags|list-tags` through the real binary; merge is
//! checked against go-apiops' own test files (fixtures/deck-file-tools/merge, Apache-2.0).

use std::path::Path;

use serde_json::{Value, json};

use crate::util::Workspace;

fn merge_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/deck-file-tools/merge")
        .join(name)
        .display()
        .to_string()
}

fn json_out(ws: &Workspace, args: &[&str]) -> Value {
    let run = ws.run(args);
    run.assert_ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(merge_fixture(name)).unwrap()).unwrap()
}

#[test]
fn merge_matches_decks_expected_files_in_both_orders() {
    let ws = Workspace::new();
    let (f1, f2, f3) = (
        merge_fixture("file1.yml"),
        merge_fixture("file2.yml"),
        merge_fixture("file3.yml"),
    );
    let got = json_out(&ws, &["file", "merge", "--format", "json", &f1, &f2, &f3]);
    assert_eq!(got, expected("test1_expected.json"));
    let got = json_out(&ws, &["file", "merge", "--format", "JSON", &f3, &f2, &f1]);
    assert_eq!(got, expected("test2_expected.json"));
    // YAML output to a file reads back the same.
    ws.run(&["file", "merge", "-o", "merged.yaml", &f1, &f2, &f3])
        .assert_ok();
    let yaml = ws.write("probe", "");
    let text = std::fs::read_to_string(yaml.with_file_name("merged.yaml")).unwrap();
    let back: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(back, expected("test1_expected.json"));
}

#[test]
fn merge_refuses_incompatible_files_with_decks_messages() {
    let ws = Workspace::new();
    let f1 = merge_fixture("file1.yml");
    for (other, message) in [
        (
            "badversion.yml",
            "files are incompatible; major versions are incompatible; 3.0 and 1.0",
        ),
        (
            "transform_false.yml",
            "files are incompatible; files with '_transform: true' (default) and '_transform: false' are not compatible",
        ),
    ] {
        let path = merge_fixture(other);
        let run = ws.run(&["file", "merge", &f1, &path]);
        assert_eq!(run.code, 1);
        assert!(
            run.stderr
                .contains(&format!("failed to merge {path}: {message}")),
            "{}",
            run.stderr
        );
    }
    let missing = ws.run(&["file", "merge"]);
    assert_eq!(missing.code, 1);
}

const FILE: &str = r#"_format_version: "3.0"
services:
  - name: svc
    url: http://example.com
    tags: [keep]
    routes:
      - name: r
        paths: [/r]
    plugins:
      - name: key-auth
consumers:
  - username: alice
    keyauth_credentials:
      - key: k1
"#;

#[test]
fn add_tags_tags_every_entity_or_only_selected_ones() {
    let ws = Workspace::new();
    ws.write("kong.yaml", FILE);
    let all = json_out(
        &ws,
        &[
            "file",
            "add-tags",
            "-s",
            "kong.yaml",
            "--format",
            "json",
            "team-a",
            "keep",
        ],
    );
    assert_eq!(all["services"][0]["tags"], json!(["keep", "team-a"]));
    assert_eq!(
        all["services"][0]["routes"][0]["tags"],
        json!(["team-a", "keep"])
    );
    assert_eq!(
        all["services"][0]["plugins"][0]["tags"],
        json!(["team-a", "keep"])
    );
    assert_eq!(all["consumers"][0]["tags"], json!(["team-a", "keep"]));
    assert_eq!(
        all["consumers"][0]["keyauth_credentials"][0]["tags"],
        json!(["team-a", "keep"])
    );
    // From stdin, only services.
    let run = ws.run_with_stdin(
        &[
            "file",
            "add-tags",
            "--selector",
            "$.services[*]",
            "--format",
            "json",
            "x",
        ],
        Some(FILE),
    );
    run.assert_ok();
    let some: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(some["services"][0]["tags"], json!(["keep", "x"]));
    assert!(some["consumers"][0].get("tags").is_none());
    // The result is still a valid state file.
    ws.run(&[
        "file",
        "add-tags",
        "-s",
        "kong.yaml",
        "-o",
        "tagged.yaml",
        "t",
    ])
    .assert_ok();
    ws.run(&["validate", "tagged.yaml"]).assert_ok();
    let bad = ws.run(&[
        "file",
        "add-tags",
        "-s",
        "kong.yaml",
        "--selector",
        "$.services[",
        "t",
    ]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("selector '$.services[' is not a valid JSONpath expression"),
        "{}",
        bad.stderr
    );
}

#[test]
fn remove_tags_and_keep_only_and_list_tags() {
    let ws = Workspace::new();
    ws.write("kong.yaml", FILE);
    ws.run(&[
        "file",
        "add-tags",
        "-s",
        "kong.yaml",
        "-o",
        "t.yaml",
        "a",
        "b",
    ])
    .assert_ok();
    let removed = json_out(
        &ws,
        &[
            "file",
            "remove-tags",
            "-s",
            "t.yaml",
            "--format",
            "json",
            "a",
        ],
    );
    assert_eq!(removed["services"][0]["tags"], json!(["keep", "b"]));
    assert_eq!(removed["services"][0]["routes"][0]["tags"], json!(["b"]));
    let only = json_out(
        &ws,
        &[
            "file",
            "remove-tags",
            "-s",
            "t.yaml",
            "--format",
            "json",
            "--keep-only",
            "keep",
        ],
    );
    assert_eq!(only["services"][0]["tags"], json!(["keep"]));
    assert!(only["services"][0]["routes"][0].get("tags").is_none());
    let kept = json_out(
        &ws,
        &[
            "file",
            "remove-tags",
            "-s",
            "t.yaml",
            "--format",
            "json",
            "--keep-only",
            "--keep-empty-array",
        ],
    );
    assert_eq!(kept["services"][0]["routes"][0]["tags"], json!([]));
    let none = ws.run(&["file", "remove-tags", "-s", "t.yaml"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no tags to remove"), "{}", none.stderr);
    let listed = ws.run(&["file", "list-tags", "-s", "t.yaml"]);
    listed.assert_ok();
    assert_eq!(listed.stdout, "a\nb\nkeep\n");
    let as_json = json_out(
        &ws,
        &["file", "list-tags", "-s", "t.yaml", "--format", "json"],
    );
    assert_eq!(as_json, json!(["a", "b", "keep"]));
}

#[test]
fn patch_with_selector_and_values_and_with_patch_files() {
    let ws = Workspace::new();
    ws.write("kong.yaml", FILE);
    let set = json_out(
        &ws,
        &[
            "file",
            "patch",
            "-s",
            "kong.yaml",
            "--format",
            "json",
            "--selector",
            "$..services[*]",
            "--value",
            "read_timeout:10000",
            "--value",
            "_comment:\"injected\"",
            "--value",
            "tags:",
        ],
    );
    assert_eq!(set["services"][0]["read_timeout"], 10000);
    assert_eq!(set["services"][0]["_comment"], "injected");
    assert!(set["services"][0].get("tags").is_none());
    let appended = json_out(
        &ws,
        &[
            "file",
            "patch",
            "-s",
            "kong.yaml",
            "--format",
            "json",
            "--selector",
            "$.services[0].routes[0].paths",
            "--value",
            "[\"/more\"]",
        ],
    );
    assert_eq!(
        appended["services"][0]["routes"][0]["paths"],
        json!(["/r", "/more"])
    );
    ws.write(
        "patch.yaml",
        "_format_version: \"1.0\"\npatches:\n  - selectors: [\"$.services[?(@.name == 'svc')]\"]\n    values: {retries: 3}\n    remove: [tags]\n  - selectors: [\"$.consumers[*]\"]\n    values: {custom_id: c-1}\n",
    );
    let filed = json_out(
        &ws,
        &[
            "file",
            "patch",
            "-s",
            "kong.yaml",
            "--format",
            "json",
            "patch.yaml",
        ],
    );
    assert_eq!(filed["services"][0]["retries"], 3);
    assert!(filed["services"][0].get("tags").is_none());
    assert_eq!(filed["consumers"][0]["custom_id"], "c-1");
    // Errors name the problem.
    let bare = ws.run(&[
        "file",
        "patch",
        "-s",
        "kong.yaml",
        "--selector",
        "$",
        "--value",
        "name:bare",
    ]);
    assert_eq!(bare.code, 1);
    assert!(
        bare.stderr
            .contains("did you forget to wrap a json-string-value in quotes?"),
        "{}",
        bare.stderr
    );
    let lonely = ws.run(&["file", "patch", "-s", "kong.yaml", "--selector", "$"]);
    assert_eq!(lonely.code, 1);
    ws.write(
        "bad-patch.yaml",
        "patches:\n  - values: {a: 1}\n    remove: [a]\n",
    );
    let contra = ws.run(&["file", "patch", "-s", "kong.yaml", "bad-patch.yaml"]);
    assert_eq!(contra.code, 1);
    assert!(
        contra.stderr.contains(
            "bad-patch.yaml: patches[0] is trying to change and remove 'a' at the same time"
        ),
        "{}",
        contra.stderr
    );
}

const UNSAFE: &str = r#"_format_version: "3.0"
services:
  - name: llm
    url: http://localhost:32000
    routes:
      - name: chat
        paths: [/chat]
    plugins:
      - name: ai-proxy-advanced
        config:
          targets:
            - route_type: llm/v1/chat
              auth:
                header_name: Authorization
                header_value: Bearer sk-live-literal
              model: {provider: openai, name: gpt-4o, model_alias: fast}
            - route_type: llm/v1/chat
              auth:
                header_name: Authorization
                header_value: $<< env "DECK_OPENAI_TOKEN" >>
              model: {provider: openai, name: gpt-4o-mini, model_alias: fast}
"#;

#[test]
fn lint_passes_the_recipe_and_reports_each_rule_with_its_place() {
    let ws = Workspace::new();
    let recipe = crate::util::recipe();
    let ok = ws.run(&["file", "lint", "-s", &recipe]);
    ok.assert_ok();
    assert!(
        ok.stdout.ends_with("0 findings, 0 at or above 'error'\n"),
        "{}",
        ok.stdout
    );

    ws.write("unsafe.yaml", UNSAFE);
    let run = ws.run(&["file", "lint", "-s", "unsafe.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "unsafe.yaml:6:9: error route-without-auth: services[0].routes[0]: route 'chat' has no authentication plugin (key-auth, key-auth-enc, basic-auth, …) on it, on its service or global",
            "unsafe.yaml:15:17: error plaintext-secret: services[0].plugins[0].config.targets[0].auth.header_value: secret field holds a literal value; use a template such as ${{ env \"DECK_…\" }} (or $<< env \"DECK_…\" >>) or a {vault://…} reference",
            "unsafe.yaml:21:60: warn duplicate-model-alias: services[0].plugins[0].config.targets[1].model.model_alias: model_alias 'fast' is given to targets[0], targets[1]: requests for it are balanced across them; give each its own alias if that is not meant",
            "3 findings, 2 at or above 'error'",
        ]
    );
    // The secret itself is never printed.
    assert!(!run.stdout.contains("sk-live-literal"));
    let json = ws.run(&[
        "file",
        "lint",
        "-s",
        "unsafe.yaml",
        "--format",
        "json",
        "-D",
    ]);
    assert_eq!(json.code, 1);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["fail_count"], 2);
    assert_eq!(doc["total_count"], 2, "-D hides the warning");
    assert_eq!(doc["results"][1]["rule"], "plaintext-secret");
    assert_eq!(doc["results"][1]["line"], 15);
    assert_eq!(doc["results"][1]["column"], 17);
    // The warning alone fails only with -F warn.
    let warn_only = UNSAFE
        .replace("Bearer sk-live-literal", "${{ env \"DECK_OPENAI_TOKEN\" }}")
        .replace("    plugins:\n", "    plugins:\n      - name: key-auth\n");
    ws.write("warn.yaml", &warn_only);
    ws.run(&["file", "lint", "-s", "warn.yaml"]).assert_ok();
    assert_eq!(
        ws.run(&["file", "lint", "-s", "warn.yaml", "-F", "warn"])
            .code,
        1
    );
    // decK's ruleset argument is refused clearly.
    let ruleset = ws.run(&["file", "lint", "-s", "warn.yaml", "ruleset.yaml"]);
    assert_eq!(ruleset.code, 1);
    assert!(
        ruleset
            .stderr
            .contains("custom lint rulesets are not supported"),
        "{}",
        ruleset.stderr
    );
}

fn o2k_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/deck-file-tools/openapi2kong")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn openapi2kong_matches_decks_expected_output() {
    let ws = Workspace::new();
    for (base, expected, extra) in [
        ("01-names-inferred", "01-names-inferred.expected.json", None),
        ("02-names-set", "02-names-set.expected.json", None),
        (
            "04-servers-upstream",
            "04-servers-upstream.expected.json",
            None,
        ),
        (
            "07-service-defaults-overrides",
            "07-service-defaults-overrides.expected.json",
            None,
        ),
        (
            "09-generic-plugins",
            "09-generic-plugins.expected.json",
            None,
        ),
        ("11-references", "11-references.expected.json", None),
        (
            "12-path-parameter-regex",
            "12-path-parameter-regex.expected.json",
            None,
        ),
        ("21-no-doc-servers", "21-no-doc-servers.expected.json", None),
        (
            "21-nullable-path-param",
            "21-nullable-path-param.expected.json",
            None,
        ),
        (
            "25-routes-with-headers",
            "25-routes-with-headers.expected_skip_header.json",
            Some("--skip-route-by-header"),
        ),
    ] {
        let spec = o2k_fixture(&format!("{base}.yaml"));
        let file_tag = format!("OAS3file_{base}.yaml");
        let mut args = vec![
            "file",
            "openapi2kong",
            "-s",
            &spec,
            "--format",
            "json",
            "--select-tag",
            "OAS3_import",
            "--select-tag",
            &file_tag,
        ];
        args.extend(extra);
        let got = json_out(&ws, &args);
        let mut want: Value =
            serde_json::from_str(&std::fs::read_to_string(o2k_fixture(expected)).unwrap()).unwrap();
        // Gantry leaves out decK's empty `upstreams: []`.
        if want["upstreams"] == json!([]) {
            want.as_object_mut().unwrap().remove("upstreams");
        }
        assert_eq!(got, want, "{base}");
    }
}

#[test]
fn openapi2kong_options_and_refusals() {
    let ws = Workspace::new();
    let spec = o2k_fixture("01-names-inferred.yaml");
    // --no-id drops every id; --uuid-base changes them all.
    let plain = json_out(
        &ws,
        &["file", "openapi2kong", "-s", &spec, "--format", "json"],
    );
    let no_id = json_out(
        &ws,
        &[
            "file",
            "openapi2kong",
            "-s",
            &spec,
            "--format",
            "json",
            "--no-id",
        ],
    );
    assert!(plain["services"][0]["id"].is_string());
    assert!(no_id["services"][0].get("id").is_none());
    assert!(no_id["services"][0]["routes"][0].get("id").is_none());
    let based = json_out(
        &ws,
        &[
            "file",
            "openapi2kong",
            "-s",
            &spec,
            "--format",
            "json",
            "--uuid-base",
            "8e1b4ab2-4b4c-4f3b-9c53-3c1f0d6f2f10",
        ],
    );
    assert_ne!(based["services"][0]["id"], plain["services"][0]["id"]);
    // Without tags, no entity is tagged (x-kong-tags absent).
    assert_eq!(plain["services"][0]["tags"], json!([]));
    // A spec with header enums is refused without --skip-route-by-header, naming the header.
    let headers = o2k_fixture("25-routes-with-headers.yaml");
    let refused = ws.run(&["file", "openapi2kong", "-s", &headers]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("--skip-route-by-header"),
        "{}",
        refused.stderr
    );
    // Swagger 2 is refused.
    ws.write(
        "swagger.yaml",
        "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n",
    );
    let old = ws.run(&["file", "openapi2kong", "-s", "swagger.yaml"]);
    assert_eq!(old.code, 1);
    assert!(
        old.stderr.contains("only OpenAPI 3 specs are supported"),
        "{}",
        old.stderr
    );
    // The output is a state file Gantry loads (with a single server, no upstream).
    ws.write(
        "one.yaml",
        "openapi: 3.0.0\ninfo: {title: Echo API, version: '1'}\nservers: [{url: 'http://echo.internal:8080/v1'}]\npaths:\n  /echo/{id}:\n    get: {operationId: getEcho, responses: {'200': {description: ok}}}\n",
    );
    ws.run(&[
        "file",
        "openapi2kong",
        "-s",
        "one.yaml",
        "-o",
        "kong.yaml",
        "--no-id",
    ])
    .assert_ok();
    ws.run(&["validate", "kong.yaml"]).assert_ok();
    let text = std::fs::read_to_string(ws.write("probe", "").with_file_name("kong.yaml")).unwrap();
    assert!(text.contains("name: echo-api_getecho"), "{text}");
    assert!(text.contains("~/echo/(?<id>[^#?/]+)$"), "{text}");
}
