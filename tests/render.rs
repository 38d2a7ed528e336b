//! `gantry render`: merged, expanded, defaults-filled state; secrets masked by field.

use serde_json::Value;

use crate::util::{RECIPE_ENV, Workspace, minimal, recipe, recipe_workspace};

const CANARY: &str = "sk-canary-7f3a";

#[test]
fn the_recipe_renders_with_kongs_defaults_filled() {
    let run = recipe_workspace().run(&["render", "--format", "json", &recipe()]);
    run.assert_ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["_info"]["select_tags"],
        serde_json::json!(["basic-llm-routing-recipe"])
    );
    assert_eq!(
        doc["_konnect"]["control_plane_name"],
        "basic-llm-routing-recipe"
    );
    assert_eq!(
        doc["_defaults"]["kongctl"]["namespace"],
        "basic-llm-routing-recipe"
    );
    let svc = &doc["services"][0];
    assert_eq!(svc["name"], "basic-llm-routing");
    assert_eq!(
        (svc["protocol"].as_str(), svc["host"].as_str()),
        (Some("http"), Some("localhost"))
    );
    assert_eq!(svc["port"], 32000);
    assert_eq!(svc["retries"], 5);
    assert_eq!(svc["tags"], serde_json::json!(["basic-llm-routing-recipe"]));
    let route = &svc["routes"][0];
    assert_eq!(route["paths"], serde_json::json!(["/basic-llm-routing"]));
    assert_eq!(route["strip_path"], true);
    let names: Vec<&str> = svc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["instance_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["basic-llm-routing-proxy", "basic-llm-routing-auth"]);
    let proxy = &svc["plugins"][0]["config"];
    assert_eq!(proxy["max_request_body_size"], 10485760);
    assert_eq!(proxy["balancer"]["algorithm"], "round-robin");
    assert_eq!(proxy["targets"][0]["model"]["name"], "gpt-4o-mini");
    assert_eq!(proxy["targets"][1]["model"]["model_alias"], "smart");
    assert_eq!(svc["plugins"][1]["config"]["key_in_body"], false);
    assert_eq!(doc["consumers"][0]["username"], "demo-app");
}

#[test]
fn secrets_never_appear_without_show_secrets() {
    let w = recipe_workspace();
    for format in ["yaml", "json"] {
        let run = w.run(&["render", "--format", format, &recipe()]);
        run.assert_ok();
        assert!(
            !run.stdout.contains(CANARY),
            "{format} output leaks the token"
        );
        assert!(
            !run.stdout.contains("demo-api-key"),
            "{format} output leaks the key"
        );
        assert!(run.stdout.contains("[masked]"));
    }
    let run = w.run(&["file", "render", "--format", "json", &recipe()]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let target = &doc["services"][0]["plugins"][0]["config"]["targets"][0];
    assert_eq!(target["auth"]["header_value"], "[masked]");
    assert_eq!(target["auth"]["header_name"], "Authorization");
    assert_eq!(
        doc["consumers"][0]["keyauth_credentials"][0]["key"],
        "[masked]"
    );
}

#[test]
fn show_secrets_prints_them() {
    let run = recipe_workspace().run(&["render", "--show-secrets", "--format", "json", &recipe()]);
    run.assert_ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let target = &doc["services"][0]["plugins"][0]["config"]["targets"][0];
    assert_eq!(target["auth"]["header_value"], RECIPE_ENV[0].1);
    assert_eq!(
        doc["consumers"][0]["keyauth_credentials"][0]["key"],
        "demo-api-key"
    );
}

#[test]
fn masking_is_by_field_so_the_same_text_elsewhere_stays() {
    let w = Workspace::new().env("DECK_TOKEN", CANARY);
    w.write(
        "kong.yaml",
        &minimal("consumers:\n  - username: ${{ env \"DECK_TOKEN\" }}\n    keyauth_credentials:\n      - key: ${{ env \"DECK_TOKEN\" }}\n"),
    );
    let run = w.run(&["render", "--format", "json", "kong.yaml"]);
    run.assert_ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["consumers"][0]["username"], CANARY);
    assert_eq!(
        doc["consumers"][0]["keyauth_credentials"][0]["key"],
        "[masked]"
    );
}

#[test]
fn render_output_is_itself_a_valid_state_file() {
    let w = recipe_workspace();
    let run = w.run(&["render", "--show-secrets", &recipe()]);
    run.assert_ok();
    w.write("rendered.yaml", &run.stdout);
    w.run(&["validate", "rendered.yaml"]).assert_ok();
    let again = w.run(&["render", "--show-secrets", "rendered.yaml"]);
    assert_eq!(again.stdout, run.stdout, "render is a fixed point");
}

#[test]
fn info_defaults_apply_where_entities_are_silent() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("  - name: explicit\n    url: http://other\n    retries: 1\n    routes:\n      - name: r2\n        paths: [/x]\n        strip_path: true\n_info:\n  defaults:\n    service:\n      retries: 9\n    route:\n      strip_path: false\n"),
    );
    let run = w.run(&["render", "--format", "json", "kong.yaml"]);
    run.assert_ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["services"][0]["name"], "explicit");
    assert_eq!(doc["services"][0]["retries"], 1);
    assert_eq!(doc["services"][0]["routes"][0]["strip_path"], true);
    assert_eq!(doc["services"][1]["retries"], 9);
    assert_eq!(doc["services"][1]["routes"][0]["strip_path"], false);
}

#[test]
fn render_reports_problems_like_validate() {
    let w = Workspace::new();
    w.write("kong.yaml", &minimal("    retriez: 1\n"));
    let run = w.run(&["render", "kong.yaml"]);
    run.assert_fails_with(&["kong.yaml:8:5: services[0].retriez: unknown field"]);
    assert_eq!(run.stdout, "");
}
