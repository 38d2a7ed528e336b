//! The seed's whole flow as a user runs it: `quickstart --mock-llm` → `adopt` → `apply` the
//! recipe → the unchanged `demo.py` through the proxy with the real `openai` SDK → `reset` →
//! `quickstart -d`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::{Run, Workspace, free_port, http, python, recipe, recipe_workspace};

const CP: &str = "basic-llm-routing-recipe";

/// The seed's demo script, committed unchanged so a clone anywhere runs it.
fn demo_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/demo.py")
}

#[test]
fn the_committed_demo_py_is_the_seeds_byte_for_byte() {
    // The seed's copy lies beside the checkout on the project's machines; a clone elsewhere
    // has only the committed one.
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/demo.py");
    if let Ok(original) = std::fs::read(&seed) {
        assert_eq!(
            std::fs::read(demo_py()).unwrap(),
            original,
            "demo.py differs from the seed's"
        );
    }
}

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

/// `export NAME='value'` from quickstart's stdout.
fn export(stdout: &str, name: &str) -> String {
    let prefix = format!("export {name}='");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
        .to_owned()
}

#[test]
fn the_seed_recipe_runs_end_to_end_and_tears_down_completely() {
    let python = python();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
    let listen = [
        format!("127.0.0.1:{proxy}"),
        format!("127.0.0.1:{admin}"),
        format!("127.0.0.1:{mock}"),
    ];
    let boot = Workspace::new();
    let started = ok(boot.run(&[
        "quickstart",
        "--control-plane",
        CP,
        "--mock-llm",
        "--data-dir",
        data_dir,
        "--proxy-listen",
        &listen[0],
        "--admin-listen",
        &listen[1],
        "--mock-llm-listen",
        &listen[2],
    ]));
    let proxy_url = export(&started.stdout, "PROXY_URL");
    let admin_url = export(&started.stdout, "DECK_KONG_ADDR");
    let guard = Teardown { data_dir };

    let ws = recipe_workspace().env("DECK_KONG_ADDR", &admin_url);
    let recipe = recipe();
    ok(ws.run(&["adopt", "control-plane", CP, "--namespace", CP]));
    let applied = ok(ws.run(&["apply", &recipe, "--no-color"]));
    assert!(
        applied.stdout.contains("  Created: 6\n"),
        "{}",
        applied.stdout
    );
    ok(ws.run(&["diff", &recipe, "--non-zero-exit-code"]));

    let demo = Command::new(python)
        .arg(demo_py())
        .env("PROXY_URL", &proxy_url)
        .env("NO_COLOR", "1")
        .output()
        .expect("run demo.py");
    let out = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for line in [
        "[ROUTED TO] alias='fast' -> upstream model=openai/gpt-4o-mini",
        "[ROUTED TO] alias='smart' -> upstream model=openai/gpt-4o",
        "[RESPONSE] The capital of France is Paris.",
        "[BLOCKED] 401 Error code: 401 - {'message': 'No credentials found for given apikey'}",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let (_, seen) = http("GET", &format!("http://{}/_mock/requests", listen[2]), None);
    let chats: Vec<&Value> = seen
        .as_array()
        .or_else(|| seen["requests"].as_array())
        .or_else(|| seen["data"].as_array())
        .unwrap_or_else(|| panic!("request log: {seen}"))
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/chat/completions"))
        })
        .collect();
    assert_eq!(
        chats.len(),
        2,
        "exactly the two authorised requests: {seen}"
    );
    for chat in chats {
        let h = &chat["headers"];
        assert_eq!(h["authorization"], "Bearer sk-canary-7f3a", "{chat}");
        assert!(
            h.get("apikey").is_none(),
            "hide_credentials strips the key: {chat}"
        );
        assert_eq!(h["x-consumer-username"], "demo-app", "{chat}");
    }

    let reset = ok(ws.run(&["reset", "--select-tag", CP, "--yes", "--no-color"]));
    assert!(reset.stdout.contains("  Deleted: 6\n"), "{}", reset.stdout);
    let dump = ok(ws.run(&["dump", "--control-plane", CP, "--format", "json"]));
    let left: Value = serde_json::from_str(&dump.stdout).unwrap();
    for kind in ["services", "routes", "consumers", "plugins"] {
        assert!(
            left.get(kind).is_none_or(|v| v == &Value::Array(vec![])),
            "{kind}: {left}"
        );
    }
    drop(guard);
    let admin_port = listen[1].clone();
    assert!(
        std::net::TcpStream::connect(&admin_port).is_err(),
        "quickstart -d stopped the gateway"
    );
    assert!(
        std::net::TcpStream::connect(&listen[2]).is_err(),
        "and the mock LLM"
    );
}

/// Runs `quickstart -d` when the test ends, even when it fails half-way.
struct Teardown<'a> {
    data_dir: &'a str,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let down = Workspace::new().run(&[
            "quickstart",
            "-d",
            "--control-plane",
            CP,
            "--data-dir",
            self.data_dir,
        ]);
        if !std::thread::panicking() {
            down.assert_ok();
            assert!(
                down.stderr
                    .contains(&format!("deleted control plane '{CP}'")),
                "{}",
                down.stderr
            );
        }
    }
}

/// A throwaway Google service account with a freshly generated RSA key; its `token_uri` is
/// Google's, so reaching the simulator proves quickstart redirected the token exchange.
fn service_account_json() -> String {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use base64::Engine as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = key.as_der().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    serde_json::json!({"type": "service_account", "project_id": "my-proj",
        "client_email": "gantry@my-proj.iam.gserviceaccount.com", "private_key": pem,
        "token_uri": "https://oauth2.googleapis.com/token"})
    .to_string()
}

/// One provider tab of the recipe: its file, its variables, and the models demo.py must see.
struct Tab {
    file: &'static str,
    provider: &'static str,
    models: (&'static str, &'static str),
    env: Vec<(&'static str, String)>,
}

fn tabs() -> Vec<Tab> {
    vec![
        Tab {
            file: "kong.yaml",
            provider: "openai",
            models: ("gpt-4o-mini", "gpt-4o"),
            env: vec![("DECK_OPENAI_TOKEN", "Bearer sk-canary-7f3a".into())],
        },
        Tab {
            file: "providers/anthropic.yaml",
            provider: "anthropic",
            models: ("claude-haiku-4-5", "claude-sonnet-4-5"),
            env: vec![("DECK_ANTHROPIC_API_KEY", "sk-ant-canary".into())],
        },
        Tab {
            file: "providers/azure.yaml",
            provider: "azure",
            models: ("gpt-4o-mini", "gpt-4o"),
            env: vec![
                ("DECK_AZURE_API_KEY", "azure-canary".into()),
                ("DECK_AZURE_INSTANCE", "my-openai".into()),
            ],
        },
        Tab {
            file: "providers/bedrock.yaml",
            provider: "bedrock",
            models: (
                "anthropic.claude-3-haiku-20240307-v1:0",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
            ),
            env: vec![
                ("DECK_AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
                (
                    "DECK_AWS_SECRET_ACCESS_KEY",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                ),
                ("DECK_AWS_REGION", "us-east-1".into()),
            ],
        },
        Tab {
            file: "providers/vertex.yaml",
            provider: "gemini",
            models: ("gemini-2.0-flash", "gemini-2.5-pro"),
            env: vec![
                ("DECK_GCP_SERVICE_ACCOUNT_JSON", service_account_json()),
                ("DECK_GCP_PROJECT_ID", "my-proj".into()),
                ("DECK_GCP_LOCATION", "us-central1".into()),
            ],
        },
        Tab {
            file: "providers/mistral.yaml",
            provider: "mistral",
            models: ("mistral-small-latest", "mistral-large-latest"),
            env: vec![("DECK_MISTRAL_API_KEY", "Bearer mistral-canary".into())],
        },
    ]
}

#[test]
fn every_provider_tab_runs_demo_py_offline_with_mock_llm() {
    let python = python();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
    let mock_addr = format!("127.0.0.1:{mock}");
    let started = ok(Workspace::new().run(&[
        "quickstart",
        "--control-plane",
        CP,
        "--mock-llm",
        "--data-dir",
        data_dir,
        "--proxy-listen",
        &format!("127.0.0.1:{proxy}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--mock-llm-listen",
        &mock_addr,
    ]));
    let proxy_url = export(&started.stdout, "PROXY_URL");
    let admin_url = export(&started.stdout, "DECK_KONG_ADDR");
    let guard = Teardown { data_dir };
    ok(Workspace::new().env("DECK_KONG_ADDR", &admin_url).run(&[
        "adopt",
        "control-plane",
        CP,
        "--namespace",
        CP,
    ]));
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/basic-llm-routing");
    for tab in tabs() {
        let mut ws = Workspace::new()
            .env("DECK_KONG_ADDR", &admin_url)
            .env("DECK_CHAT_MODEL_1", tab.models.0)
            .env("DECK_CHAT_MODEL_2", tab.models.1);
        for (k, v) in &tab.env {
            ws = ws.env(k, v);
        }
        let file = fixtures.join(tab.file);
        ok(ws.run(&["sync", file.to_str().unwrap(), "--no-color"]));
        let (_, before) = http("GET", &format!("http://{mock_addr}/_mock/requests"), None);
        let seen_before = before.as_array().map_or(0, Vec::len);
        let demo = Command::new(python)
            .arg(demo_py())
            .env("PROXY_URL", &proxy_url)
            .env("NO_COLOR", "1")
            .output()
            .expect("run demo.py");
        let out = String::from_utf8_lossy(&demo.stdout);
        assert!(
            demo.status.success(),
            "{}: {out}\n{}",
            tab.file,
            String::from_utf8_lossy(&demo.stderr)
        );
        for line in [
            format!(
                "[ROUTED TO] alias='fast' -> upstream model={}/{}",
                tab.provider, tab.models.0
            ),
            format!(
                "[ROUTED TO] alias='smart' -> upstream model={}/{}",
                tab.provider, tab.models.1
            ),
            "[RESPONSE] The capital of France is Paris.".to_owned(),
            "[BLOCKED] 401".to_owned(),
        ] {
            assert!(out.contains(&line), "{}: {line}\n{out}", tab.file);
        }
        // Every upstream call of this tab went to the simulator (nothing left the machine).
        let (_, after) = http("GET", &format!("http://{mock_addr}/_mock/requests"), None);
        let calls = after.as_array().map_or(0, Vec::len) - seen_before;
        assert!(calls >= 2, "{}: {calls} simulator calls: {after}", tab.file);
        if tab.provider == "gemini" {
            let paths: Vec<&str> = after.as_array().unwrap()[seen_before..]
                .iter()
                .filter_map(|r| r["path"].as_str())
                .collect();
            assert!(
                paths.contains(&"/token"),
                "the token exchange was redirected: {paths:?}"
            );
        }
    }
    drop(guard);
}
