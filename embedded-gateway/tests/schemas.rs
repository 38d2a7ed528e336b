//! The committed plugin schemas under `schemas/plugins/` are exactly what the Rust types generate.

use std::path::PathBuf;

use embedded_gateway::plugins;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/plugins")
}

#[test]
fn committed_plugin_schemas_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    for (name, _) in plugins::SUPPORTED {
        let generated = plugins::generate_schema(name).expect("supported plugin has a schema");
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        let path = schema_dir().join(format!("{name}.schema.json"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} drifted from the Rust types; run `UPDATE_SCHEMAS=1 cargo test` and commit the result",
            path.display()
        );
    }
}

#[test]
fn plugin_configs_get_kongs_defaults() {
    let cfg = plugins::normalize_config("key-auth", &serde_json::json!({})).unwrap();
    assert_eq!(cfg["key_names"], serde_json::json!(["apikey"]));
    assert_eq!(cfg["hide_credentials"], true);
    assert_eq!(cfg["key_in_body"], false);

    let cfg = plugins::normalize_config(
        "ai-proxy-advanced",
        &serde_json::json!({"targets":[{"route_type":"llm/v1/chat","model":{"provider":"openai","name":"gpt-4o"}}]}),
    )
    .unwrap();
    assert_eq!(cfg["response_streaming"], "allow");
    assert_eq!(cfg["max_request_body_size"], 1048576);
    assert_eq!(cfg["model_name_header"], true);
    assert_eq!(cfg["balancer"]["algorithm"], "round-robin");
    assert_eq!(cfg["targets"][0]["weight"], 100);
}

#[test]
fn anthropic_without_version_is_rejected_with_kongs_message() {
    let errs = plugins::normalize_config(
        "ai-proxy-advanced",
        &serde_json::json!({"targets":[{"route_type":"llm/v1/chat","model":{"provider":"anthropic","name":"claude"}}]}),
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "targets[0].model.options.anthropic_version");
    assert_eq!(
        errs[0].message,
        "must set 'model.options.anthropic_version' for anthropic provider"
    );
}

#[test]
fn unknown_config_fields_are_named() {
    let errs = plugins::normalize_config("key-auth", &serde_json::json!({"key_namez": ["x"]}))
        .unwrap_err();
    assert_eq!(errs[0].to_string(), "key_namez: unknown field");
}

#[test]
fn secrets_are_masked_by_schema_field() {
    let mut cfg = serde_json::json!({"targets":[{"route_type":"llm/v1/chat",
        "auth":{"header_name":"Authorization","header_value":"Bearer sk-canary"},
        "model":{"provider":"openai","name":"Bearer sk-canary"}}]});
    plugins::mask_secrets("ai-proxy-advanced", &mut cfg);
    assert_eq!(cfg["targets"][0]["auth"]["header_value"], "[masked]");
    assert_eq!(cfg["targets"][0]["auth"]["header_name"], "Authorization");
    // Same text in a non-secret field stays: masking is by field, never by value.
    assert_eq!(cfg["targets"][0]["model"]["name"], "Bearer sk-canary");
}

#[test]
fn normalising_twice_changes_nothing() {
    // Both sides of a diff are normalised; a second pass must not add or change defaults.
    for (name, config) in [
        ("key-auth", serde_json::json!({})),
        (
            "ai-proxy-advanced",
            serde_json::json!({"targets":[{"route_type":"llm/v1/chat","model":{"provider":"azure","name":"gpt-4o",
                "options":{"azure_instance":"i","azure_deployment_id":"d"}}},
                {"route_type":"llm/v1/chat","model":{"provider":"openai"}}]}),
        ),
        (
            "ai-proxy",
            serde_json::json!({"route_type":"llm/v1/chat","model":{"provider":"openai","name":"m"}}),
        ),
    ] {
        let once = plugins::normalize_config(name, &config).unwrap();
        let twice = plugins::normalize_config(name, &once).unwrap();
        assert_eq!(once, twice, "{name}");
    }
}
