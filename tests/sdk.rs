//! The gateway through the real Python SDKs: streaming with the `openai` SDK for an OpenAI and
//! an Anthropic target, and a native-format route with the `anthropic` SDK.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{Proc, free_port, python, start_gantry};

const CONFIG: &str = r#"_format_version: "3.0"
services:
  - name: llm
    url: http://localhost:32000
    routes:
      - {name: openai-chat, paths: [/openai-chat]}
      - {name: anthropic-chat, paths: [/anthropic-chat]}
      - {name: anthropic-native, paths: [/anthropic-native]}
    plugins:
      - name: key-auth
        config: {key_names: [apikey]}
plugins:
  - name: ai-proxy-advanced
    route: openai-chat
    config:
      targets:
        - route_type: llm/v1/chat
          auth: {header_name: Authorization, header_value: Bearer sk-sdk-test}
          model: {provider: openai, name: gpt-4o-mini, model_alias: fast}
  - name: ai-proxy-advanced
    route: anthropic-chat
    config:
      targets:
        - route_type: llm/v1/chat
          auth: {header_name: x-api-key, header_value: sk-ant-sdk-test}
          model: {provider: anthropic, name: claude-sonnet-4-5, model_alias: fast, options: {anthropic_version: "2023-06-01"}}
  - name: ai-proxy-advanced
    route: anthropic-native
    config:
      llm_format: anthropic
      targets:
        - route_type: llm/v1/chat
          auth: {header_name: x-api-key, header_value: sk-ant-sdk-test}
          model: {provider: anthropic, name: claude-sonnet-4-5, options: {anthropic_version: "2023-06-01"}}
consumers:
  - username: demo-app
    keyauth_credentials: [{key: demo-api-key}]
"#;

fn start(args: &[&str], ready: &str) -> Proc {
    start_gantry(args, &[], ready)
}

/// A DB-less `serve` of a config whose `MOCK` is a started mock-llm's address.
struct Served {
    _dir: tempfile::TempDir,
    /// The mock and the gateway, stopped when dropped.
    _procs: [Proc; 2],
    proxy: u16,
    mock_addr: String,
}

fn serve_with_mock(config: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
    let mock_addr = format!("127.0.0.1:{mock}");
    let file = dir.path().join("kong.yaml");
    std::fs::write(&file, config.replace("MOCK", &mock_addr)).unwrap();
    let mock = start(&["mock-llm", "--listen", &mock_addr], "listening");
    let gateway = start(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--proxy-listen",
            &format!("127.0.0.1:{proxy}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ],
        "proxy listening",
    );
    Served {
        _dir: dir,
        _procs: [mock, gateway],
        proxy,
        mock_addr,
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name)
}

#[test]
fn the_real_sdks_chat_and_stream_through_the_gateway_for_openai_and_anthropic_targets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kong.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
    let mock_addr = format!("127.0.0.1:{mock}");
    let _mock = start(&["mock-llm", "--listen", &mock_addr], "listening");
    let mock_url = format!("http://{mock_addr}");
    let _gateway = start(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--proxy-listen",
            &format!("127.0.0.1:{proxy}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
            "--upstream-override",
            &format!("openai={mock_url}"),
            "--upstream-override",
            &format!("anthropic={mock_url}"),
        ],
        "proxy listening",
    );
    let base = format!("http://127.0.0.1:{proxy}");
    let run = |args: &[String]| {
        let out = Command::new(python())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run python");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stdout.starts_with("ok The capital of France is Paris."),
            "{stdout}"
        );
    };
    let stream = script("openai_stream.py").to_str().unwrap().to_owned();
    run(&[
        stream.clone(),
        format!("{base}/openai-chat"),
        "fast".into(),
        "openai/gpt-4o-mini".into(),
    ]);
    run(&[
        stream,
        format!("{base}/anthropic-chat"),
        "fast".into(),
        "anthropic/claude-sonnet-4-5".into(),
    ]);
    run(&[
        script("anthropic_native.py").to_str().unwrap().to_owned(),
        format!("{base}/anthropic-native"),
    ]);
}

/// The recipe with a first `fast` target whose provider refuses connections.
const FAILOVER_CONFIG: &str = r#"_format_version: "3.0"
services:
  - name: basic-llm-routing
    url: http://localhost:32000
    routes:
      - {name: basic-llm-routing, paths: [/basic-llm-routing]}
    plugins:
      - name: key-auth
        config: {key_names: [apikey], hide_credentials: true}
      - name: ai-proxy-advanced
        config:
          balancer: {algorithm: priority, retries: 2}
          targets:
            - route_type: llm/v1/chat
              weight: 100
              auth: {header_name: Authorization, header_value: Bearer sk-sdk-test}
              model: {provider: openai, name: gpt-4o-mini, model_alias: fast, options: {upstream_url: "http://DEAD/v1/chat/completions"}}
            - route_type: llm/v1/chat
              weight: 10
              auth: {header_name: Authorization, header_value: Bearer sk-sdk-test}
              model: {provider: openai, name: gpt-4o-mini-backup, model_alias: fast, options: {upstream_url: "http://MOCK/v1/chat/completions"}}
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: Bearer sk-sdk-test}
              model: {provider: openai, name: gpt-4o, model_alias: smart, options: {upstream_url: "http://MOCK/v1/chat/completions"}}
consumers:
  - username: demo-app
    keyauth_credentials: [{key: demo-api-key}]
"#;

#[test]
fn demo_py_keeps_answering_fast_while_its_first_target_is_down() {
    // A bound socket that never listens: connects to it are refused while it lives.
    let dead = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    dead.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let dead_addr = dead.local_addr().unwrap().as_socket().unwrap();
    let served = serve_with_mock(&FAILOVER_CONFIG.replace("DEAD", &dead_addr.to_string()));
    let proxy = served.proxy;
    let out = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/demo.py"))
        .env("PROXY_URL", format!("http://127.0.0.1:{proxy}"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run demo.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("The capital of France is Paris."),
        "{stdout}"
    );
    assert!(
        stdout.contains("alias='fast' -> upstream model=openai/gpt-4o-mini-backup"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alias='smart' -> upstream model=openai/gpt-4o"),
        "{stdout}"
    );
}

/// The recipe with key-auth's `key_in_bearer` on, and no custom headers needed.
const BEARER_CONFIG: &str = r#"_format_version: "3.0"
services:
  - name: basic-llm-routing
    url: http://localhost:32000
    routes:
      - {name: basic-llm-routing, paths: [/basic-llm-routing]}
    plugins:
      - name: key-auth
        config: {key_names: [apikey], hide_credentials: true, key_in_bearer: true}
      - name: ai-proxy-advanced
        config:
          targets:
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: Bearer sk-provider-secret}
              model: {provider: openai, name: gpt-4o-mini, model_alias: fast, options: {upstream_url: "http://MOCK/v1/chat/completions"}}
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: Bearer sk-provider-secret}
              model: {provider: openai, name: gpt-4o, model_alias: smart, options: {upstream_url: "http://MOCK/v1/chat/completions"}}
consumers:
  - username: demo-app
    keyauth_credentials: [{key: demo-api-key}]
"#;

#[test]
fn the_openai_sdks_api_key_authenticates_with_key_in_bearer() {
    let served = serve_with_mock(BEARER_CONFIG);
    let (proxy, mock_addr) = (served.proxy, &served.mock_addr);
    let out = Command::new(python())
        .arg(script("bearer.py"))
        .arg(format!("http://127.0.0.1:{proxy}"))
        .output()
        .expect("run bearer.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "alias='fast' -> upstream model=openai/gpt-4o-mini The capital of France is Paris."
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("alias='smart' -> upstream model=openai/gpt-4o"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[BLOCKED] 401")
            && stdout.contains("No credentials found for given apikey"),
        "{stdout}"
    );
    // The provider got its own key, never the caller's.
    let (status, seen) =
        crate::util::http("GET", &format!("http://{mock_addr}/_mock/requests"), None);
    assert_eq!(status, 200);
    let text = seen.to_string();
    assert!(text.contains("sk-provider-secret"), "{text}");
    assert!(!text.contains("demo-api-key"), "{text}");
}
