//! `gantry quickstart` as a user runs it: start in the background, print exports, reuse on a
//! second run, and `-d` stops the gateway and deletes the control plane.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::serve::gantry;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn quickstart(dir: &Path, extra: &[&str]) -> Output {
    gantry()
        .args(["quickstart", "--control-plane", "recipe", "--data-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn is_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn quickstart_starts_a_background_gateway_reuses_it_and_d_tears_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin) = (free_port(), free_port());
    let listen = [
        "--proxy-listen",
        &format!("127.0.0.1:{proxy}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
    ]
    .map(|s| s.to_owned());
    let listen: Vec<&str> = listen.iter().map(String::as_str).collect();

    let out = quickstart(dir.path(), &listen);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("export PROXY_URL='http://127.0.0.1:{proxy}'")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("export DECK_KONG_ADDR='http://127.0.0.1:{admin}'")));
    assert!(stdout.contains("export GANTRY_CONTROL_PLANE_NAME='recipe'"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Next steps"));
    let pid = std::fs::read_to_string(dir.path().join("gantry.pid"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(is_alive(&pid));

    let ping = gantry()
        .args(["ping", "--kong-addr", &format!("http://127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(ping.status.success());

    let again = quickstart(dir.path(), &listen);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains(&format!("reusing the running gateway (pid {pid})"))
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);

    let down = quickstart(dir.path(), &["-d"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("deleted control plane 'recipe'"));
    assert!(!is_alive(&pid), "the gateway is stopped");
    assert!(
        std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{admin}").parse().unwrap(),
            Duration::from_millis(300)
        )
        .is_err()
    );
    assert!(!dir.path().join("gantry.pid").exists());
    let store = embedded_gateway::store::Store::open(dir.path()).unwrap();
    let planes = store
        .call_blocking(|c| embedded_gateway::store::list_control_planes(c))
        .unwrap();
    assert!(planes.iter().all(|cp| cp.name != "recipe"));
}

#[test]
fn quickstart_reports_a_gateway_that_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = quickstart(
        dir.path(),
        &["--proxy-listen", "127.0.0.1:0", "--admin-listen", &addr],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed to start") && err.contains("cannot listen on"),
        "{err}"
    );
}

fn cmdline(pid: &str) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn quickstart_with_mock_llm_points_providers_at_it_and_d_stops_both() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
    let args = [
        "--proxy-listen".to_owned(),
        format!("127.0.0.1:{proxy}"),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin}"),
        "--mock-llm".to_owned(),
        "--mock-llm-listen".to_owned(),
        format!("127.0.0.1:{mock}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = quickstart(dir.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gateway = std::fs::read_to_string(dir.path().join("gantry.pid"))
        .unwrap()
        .trim()
        .to_owned();
    let mock_pid = std::fs::read_to_string(dir.path().join("mock-llm.pid"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(is_alive(&mock_pid));
    let serve_args = cmdline(&gateway);
    assert!(
        serve_args.contains(&format!(
            "--upstream-override openai=http://127.0.0.1:{mock}"
        )),
        "{serve_args}"
    );
    assert!(serve_args.contains(&format!(
        "--upstream-override anthropic=http://127.0.0.1:{mock}"
    )));

    let down = quickstart(dir.path(), &["-d"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        !is_alive(&gateway) && !is_alive(&mock_pid),
        "both processes are stopped"
    );
}

#[test]
fn a_failed_quickstart_makes_eval_fail_and_says_the_port_problem_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let script = format!(
        "eval \"$('{}' quickstart --control-plane recipe --data-dir '{}' --proxy-listen 127.0.0.1:0 --admin-listen {addr})\"; echo \"eval=$?\"",
        env!("CARGO_BIN_EXE_gantry"),
        dir.path().display()
    );
    let out = gantry_shell(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "eval=1", "stderr: {stderr}");
    assert!(
        stderr.contains("gantry quickstart failed; see the error above"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("already in use").count(),
        1,
        "said once: {stderr}"
    );
    // On success the output has nothing of the sort (the export lines only).
    let ok = quickstart(
        dir.path(),
        &[
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.lines().all(|l| l.starts_with("export ")), "{stdout}");
    quickstart(dir.path(), &["-d"]);
}

fn gantry_shell(script: &str) -> Output {
    std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_remove("GANTRY_DATA_DIR")
        .env_remove("DECK_KONG_ADDR")
        .output()
        .unwrap()
}

#[test]
fn the_gateway_log_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = gantry()
        .args(["quickstart", "--control-plane", "recipe", "--data-dir"])
        .arg(dir.path())
        .args([
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("GANTRY_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("export DECK_KONG_ADDR='")
                .map(|a| a.trim_end_matches('\'').to_owned())
        })
        .unwrap();
    // Some traffic, so that the log has more than the start-up lines.
    let host = admin.trim_start_matches("http://");
    if let Ok(mut conn) = std::net::TcpStream::connect(host) {
        use std::io::{Read as _, Write as _};
        let _ = conn.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = conn.read_to_end(&mut Vec::new());
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(dir.path().join("gantry.log")).unwrap();
    quickstart(dir.path(), &["-d"]);
    assert!(log.contains("DEBUG"), "debug lines are logged: {log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escapes: {log:?}");
}

#[test]
fn quickstart_keeps_its_sqlite_store_when_gantry_store_is_set_for_other_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin) = (free_port(), free_port());
    let out = gantry()
        .env("GANTRY_STORE", "postgres://nobody@127.0.0.1:1/unreachable")
        .args(["quickstart", "--control-plane", "recipe", "--data-dir"])
        .arg(dir.path())
        .args(["--proxy-listen", &format!("127.0.0.1:{proxy}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let down = quickstart(dir.path(), &["-d"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("deleted control plane 'recipe'"));
}
