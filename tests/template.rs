//! decK env templating through the real binary: unset and unprefixed variables, comments,
//! quoted positions, typed pipes, and awkward values that must not break or change the YAML.

use serde_json::Value;

use crate::util::{Workspace, minimal};

fn render_json(w: &Workspace, file: &str) -> Value {
    let run = w.run(&["render", "--format", "json", "--show-secrets", file]);
    run.assert_ok();
    serde_json::from_str(&run.stdout).expect("render prints JSON")
}

#[test]
fn an_unset_variable_names_the_variable_the_file_and_the_line() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    host: ${{ env \"DECK_UPSTREAM_HOST\" }}\n",
    );
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:4:11: environment variable 'DECK_UPSTREAM_HOST' present in state file but not set",
    ]);
}

#[test]
fn a_variable_without_the_deck_prefix_is_refused_by_name() {
    let w = Workspace::new().env("HOME", "/root");
    w.write("kong.yaml", &minimal("    tags: [${{ env \"HOME\" }}]\n"));
    w.run(&["validate", "kong.yaml"]).assert_fails_with(&[
        "kong.yaml:8:12: environment variables in the state file must be prefixed with 'DECK_', found: 'HOME'",
    ]);
    // --mock-env does not lift the rule.
    let run = w.run(&["validate", "--mock-env", "kong.yaml"]);
    assert_eq!(run.code, 1);
}

#[test]
fn templates_in_comments_are_not_evaluated() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("# host: ${{ env \"DECK_UNSET\" }}\n    # ${{ env \"NOT_DECK\" }}\n    retries: 3 # ${{ env \"DECK_ALSO_UNSET\" }}\n"),
    );
    w.run(&["validate", "kong.yaml"]).assert_ok();
}

#[test]
fn a_template_inside_a_quoted_string_works() {
    let w = Workspace::new().env("DECK_BASE", "http://127.0.0.1:9090");
    w.write(
        "kong.yaml",
        &minimal(concat!(
            "    plugins:\n",
            "      - name: ai-proxy-advanced\n",
            "        config:\n",
            "          targets:\n",
            "            - route_type: llm/v1/chat\n",
            "              model:\n",
            "                provider: openai\n",
            "                name: gpt-4o\n",
            "                options:\n",
            "                  upstream_url: \"${{ env \"DECK_BASE\" }}/v1/chat/completions\"\n",
        )),
    );
    let doc = render_json(&w, "kong.yaml");
    let target = &doc["services"][0]["plugins"][0]["config"]["targets"][0];
    assert_eq!(
        target["model"]["options"]["upstream_url"],
        "http://127.0.0.1:9090/v1/chat/completions"
    );
}

#[test]
fn typed_pipes_give_integers_booleans_and_numbers() {
    let w = Workspace::new()
        .env("DECK_PORT", "8443")
        .env("DECK_ON", "false")
        .env("DECK_RETRIES", "7")
        .env("DECK_SIZE", "2048");
    w.write(
        "kong.yaml",
        concat!(
            "_format_version: \"3.0\"\n",
            "services:\n",
            "  - name: svc\n",
            "    host: up\n",
            "    port: ${{ env \"DECK_PORT\" | toInt }}\n",
            "    enabled: ${{ env \"DECK_ON\" | toBool }}\n",
            "    retries: ${{ env \"DECK_RETRIES\" }}\n",
            "    plugins:\n",
            "      - name: ai-proxy-advanced\n",
            "        config:\n",
            "          max_request_body_size: ${{ env \"DECK_SIZE\" | toFloat }}\n",
            "          targets:\n",
            "            - route_type: llm/v1/chat\n",
            "              model: {provider: openai, name: gpt-4o}\n",
        ),
    );
    let doc = render_json(&w, "kong.yaml");
    let svc = &doc["services"][0];
    assert_eq!(svc["port"], 8443);
    assert_eq!(svc["enabled"], false);
    assert_eq!(svc["retries"], 7);
    assert_eq!(svc["plugins"][0]["config"]["max_request_body_size"], 2048);
}

#[test]
fn a_bad_typed_value_names_the_variable_but_never_the_value() {
    let w = Workspace::new().env("DECK_PORT", "sk-not-a-number");
    w.write(
        "kong.yaml",
        &minimal("    retries: ${{ env \"DECK_PORT\" | toInt }}\n"),
    );
    let run = w.run(&["validate", "kong.yaml"]);
    run.assert_fails_with(&[
        "kong.yaml:8:14: environment variable 'DECK_PORT' is not an integer (toInt)",
    ]);
    assert!(!run.stderr.contains("sk-not"));
}

/// Values that break decK (#616): each must arrive exactly, in every quoting context.
const AWKWARD: [&str; 7] = [
    "key: value",
    "before #after",
    "say \"hi\" and 'bye'",
    "line one\nline two",
    "C:\\path\\to",
    "- [not, a, list]",
    "{\"json\": true}",
];

#[test]
fn awkward_values_come_through_render_intact_in_every_context() {
    for value in AWKWARD {
        let w = Workspace::new().env("DECK_V", value);
        w.write(
            "kong.yaml",
            // Route header values take any text (tags would refuse `,` and newlines).
            &minimal(concat!(
                "        headers:\n",
                "          x-v:\n",
                "            - ${{ env \"DECK_V\" }}\n",
                "            - \"quoted: ${{ env \"DECK_V\" }}\"\n",
                "            - 'single: ${{ env \"DECK_V\" }}'\n",
                "consumers:\n",
                "  - username: ${{ env \"DECK_V\" }} # trailing comment\n",
                "    custom_id: [${{ env \"DECK_V\" }}]\n",
            ))
            .replace("    custom_id: [", "    custom_id: ")
            .replace("}}]\n", "}}\n"),
        );
        let doc = render_json(&w, "kong.yaml");
        let values = &doc["services"][0]["routes"][0]["headers"]["x-v"];
        let expected = vec![
            value.to_owned(),
            format!("quoted: {value}"),
            format!("single: {value}"),
        ];
        assert_eq!(values, &serde_json::json!(expected), "value {value:?}");
        assert_eq!(doc["consumers"][0]["username"], value, "value {value:?}");
        assert_eq!(doc["consumers"][0]["custom_id"], value, "value {value:?}");
    }
}

#[test]
fn awkward_values_stay_intact_in_json_files() {
    for value in AWKWARD {
        let w = Workspace::new().env("DECK_V", value);
        w.write(
            "kong.json",
            r#"{"_format_version": "3.0", "consumers": [{"username": "${{ env "DECK_V" }}", "custom_id": ${{ env "DECK_V" }}}]}"#,
        );
        let doc = render_json(&w, "kong.json");
        assert_eq!(doc["consumers"][0]["username"], value, "value {value:?}");
        assert_eq!(doc["consumers"][0]["custom_id"], value, "value {value:?}");
    }
}

#[test]
fn mock_env_renders_decks_placeholders() {
    let w = Workspace::new();
    w.write(
        "kong.yaml",
        &minimal("    retries: ${{ env \"DECK_RETRIES\" | toInt }}\n    enabled: ${{ env \"DECK_ON\" | toBool }}\n    tags: [${{ env \"DECK_TAG\" }}]\n"),
    );
    let run = w.run(&["render", "--mock-env", "--format", "json", "kong.yaml"]);
    run.assert_ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["services"][0]["retries"], 42);
    assert_eq!(doc["services"][0]["enabled"], false);
    assert_eq!(doc["services"][0]["tags"], serde_json::json!(["DECK_TAG"]));
}

#[test]
fn awkward_values_survive_a_yaml_render_and_reload() {
    for value in AWKWARD {
        let w = Workspace::new().env("DECK_V", value);
        w.write(
            "kong.yaml",
            &minimal("consumers:\n  - username: ${{ env \"DECK_V\" }}\n    keyauth_credentials:\n      - key: \"${{ env \"DECK_V\" }}\"\n"),
        );
        let run = w.run(&["render", "--show-secrets", "kong.yaml"]);
        run.assert_ok();
        w.write("rendered.yaml", &run.stdout);
        let doc = render_json(&w, "rendered.yaml");
        assert_eq!(doc["consumers"][0]["username"], value, "value {value:?}");
        assert_eq!(doc["consumers"][0]["keyauth_credentials"][0]["key"], value);
    }
}

#[test]
fn angle_templates_render_like_decks_and_survive_a_helm_style_pass() {
    let w = Workspace::new()
        .env("DECK_PORT", "8443")
        .env("DECK_HOST", "api.example.com")
        .env("DECK_TAG", "a: b #c");
    // The same file written with decK's delimiters and with `$<< >>`.
    let deck = "_format_version: \"3.0\"\nservices:\n  - name: svc\n    port: ${{ env \"DECK_PORT\" | toInt }}\n    host: ${{ env \"DECK_HOST\" }}\n    tags: [\"t-${{ env \"DECK_TAG\" }}\", '${{ env \"DECK_TAG\" }}']\n".to_owned();
    w.write("deck.yaml", &deck);
    w.write(
        "angle.yaml",
        &deck.replace("${{", "$<<").replace("}}", ">>"),
    );
    let expected = render_json(&w, "deck.yaml");
    assert_eq!(render_json(&w, "angle.yaml"), expected);
    let svc = &expected["services"][0];
    assert_eq!(svc["port"], 8443);
    assert_eq!(svc["tags"], serde_json::json!(["a: b #c", "t-a: b #c"]));
    // An unset variable in the angle form names the variable and its place.
    w.write(
        "unset.yaml",
        &minimal("    host: $<< env \"DECK_NOPE\" >>\n"),
    );
    w.run(&["validate", "unset.yaml"]).assert_fails_with(&[
        "unset.yaml:8:11: environment variable 'DECK_NOPE' present in state file but not set",
    ]);
}
