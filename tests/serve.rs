//! `gantry serve` and `gantry ping` as a user runs them: the real binary, port 0, a temp data
//! dir; ready lines, SIGTERM exits 0, and one-line errors with exit 1 for bad starts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn gantry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
    for var in [
        "GANTRY_DATA_DIR",
        "GANTRY_ADMIN_TOKEN",
        "DECK_KONG_ADDR",
        "DECK_KONG_ADMIN_TOKEN",
        "GANTRY_CONTROL_PLANE_NAME",
        "GANTRY_STORE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A running `gantry serve` with the addresses it printed.
pub struct Served {
    pub child: Child,
    pub proxy: String,
    pub admin: String,
}

pub fn serve(dir: &Path, extra: &[&str]) -> Served {
    let mut child = gantry()
        .args([
            "serve",
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut proxy, mut admin) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("gantry: proxy listening on ") {
            proxy = Some(a.to_owned());
        }
        if let Some(a) = line.strip_prefix("gantry: admin listening on ") {
            admin = Some(a.to_owned());
            break;
        }
    }
    Served {
        child,
        proxy: proxy.expect("proxy ready line"),
        admin: admin.expect("admin ready line"),
    }
}

fn sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

fn wait_exit(child: &mut Child) -> i32 {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("gantry serve did not exit");
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_prints_one_ready_line_per_listener_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &["--control-plane", "demo"]);
    let body = reqwest::blocking_get(&format!("http://{}/status", s.admin));
    assert_eq!(body["control_plane"]["name"], "demo");
    let proxied = std::net::TcpStream::connect(&s.proxy);
    assert!(proxied.is_ok(), "the proxy listens on {}", s.proxy);
    assert!(dir.path().join("gantry.db").exists());
    sigterm(s.child.id());
    assert_eq!(wait_exit(&mut s.child), 0);
}

#[test]
fn ping_prints_the_admin_api_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &[]);
    let out = gantry()
        .args(["ping", "--kong-addr", &format!("http://{}", s.admin)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.starts_with("Successfully connected to Kong!\nKong version:  3.14.0\n"),
        "{text}"
    );
    sigterm(s.child.id());
    assert_eq!(wait_exit(&mut s.child), 0);
}

#[test]
fn with_an_admin_token_ping_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &["--admin-token", "sekrit"]);
    let addr = format!("http://{}", s.admin);
    let out = gantry()
        .args(["ping", "--kong-addr", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("401"), "{}", stderr_of(&out));
    let out = gantry()
        .args(["ping", "--kong-addr", &addr, "--kong-admin-token", "sekrit"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    sigterm(s.child.id());
    assert_eq!(wait_exit(&mut s.child), 0);
}

#[test]
fn ping_against_nothing_fails_with_one_line() {
    let out = gantry()
        .args([
            "ping",
            "--kong-addr",
            "http://127.0.0.1:9",
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach the admin API at http://127.0.0.1:9"),
        "{err}"
    );
}

fn failed_start(args: &[&str], data_dir: &Path) -> String {
    let out = gantry()
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr_of(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_bad_bind_address_exits_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = failed_start(
        &[
            "--proxy-listen",
            "not-an-address",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(
        err.contains("invalid --proxy-listen address 'not-an-address'"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_exits_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = failed_start(
        &["--proxy-listen", "127.0.0.1:0", "--admin-listen", &addr],
        dir.path(),
    );
    assert!(
        err.contains(&format!("cannot listen on {addr} (admin)")),
        "{err}"
    );
    assert_eq!(err.matches("in use").count(), 1, "said once: {err}");
    assert!(err.contains("--admin-listen"), "{err}");
}

#[test]
fn a_second_gateway_on_a_running_gateways_proxy_port_is_refused() {
    // The proxy workers share their port through SO_REUSEPORT; another process must still
    // get "address in use" rather than silently taking part of the traffic.
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = serve(first_dir.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let err = failed_start(
        &[
            "--proxy-listen",
            &first.proxy,
            "--admin-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(
        err.contains(&format!("cannot listen on {} (proxy)", first.proxy)),
        "{err}"
    );
    sigterm(first.child.id());
    assert_eq!(wait_exit(&mut first.child), 0);
}

#[test]
fn an_unusable_data_dir_exits_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = failed_start(
        &[
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &file,
    );
    assert!(err.contains("cannot open the store in"), "{err}");
}

#[test]
fn a_public_admin_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = failed_start(
        &[
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
        ],
        dir.path(),
    );
    assert!(err.contains("without a token"), "{err}");
}

/// Tiny blocking GET helper for tests (reqwest's async client on a throwaway runtime).
mod reqwest {
    pub fn blocking_get(url: &str) -> serde_json::Value {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}

#[test]
fn state_survives_a_restart_and_sigint_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &["--control-plane", "keep"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let created = rt.block_on(async {
        ::reqwest::Client::new()
            .post(format!("http://{}/services", s.admin))
            .json(&serde_json::json!({"name": "kept", "url": "http://example.com"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(created, 201);
    Command::new("kill")
        .args(["-INT", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut s.child), 0);

    let mut s = serve(dir.path(), &["--control-plane", "keep"]);
    let svc = reqwest::blocking_get(&format!("http://{}/services/kept", s.admin));
    assert_eq!(svc["host"], "example.com");
    let status = reqwest::blocking_get(&format!("http://{}/status", s.admin));
    assert_eq!(
        status["config_revision"], 1,
        "the proxy boots on the stored config"
    );
    sigterm(s.child.id());
    assert_eq!(wait_exit(&mut s.child), 0);
}

#[test]
fn serve_with_config_files_is_dbless_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kong.yaml");
    std::fs::write(
        &file,
        "_format_version: \"3.0\"\nservices:\n- name: llm\n  url: http://example.com\n  routes:\n  - name: chat\n    paths: [/chat]\nconsumers:\n- username: alice\n  keyauth_credentials:\n  - key: k1\n",
    )
    .unwrap();
    let mut s = serve(dir.path(), &["--config", file.to_str().unwrap()]);
    let root = reqwest::blocking_get(&format!("http://{}/", s.admin));
    assert_eq!(root["configuration"]["database"], "off");
    let route = reqwest::blocking_get(&format!("http://{}/routes/chat", s.admin));
    assert_eq!(route["paths"], serde_json::json!(["/chat"]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(async {
        let res = ::reqwest::Client::new()
            .post(format!("http://{}/services", s.admin))
            .json(&serde_json::json!({"name": "x", "host": "h"}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    });
    assert_eq!(status, 405);
    assert!(
        body.contains("cannot change configuration in DB-less mode"),
        "{body}"
    );
    sigterm(s.child.id());
    assert_eq!(wait_exit(&mut s.child), 0);
    assert!(
        !dir.path().join("gantry.db").exists(),
        "DB-less mode writes no store"
    );
}

#[test]
fn an_unreadable_config_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = gantry()
        .args([
            "serve",
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&missing)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot read config file"), "{err}");
}
