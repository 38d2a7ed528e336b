//! Owns `gantry quickstart`: starts `gantry serve` for a control plane in the background (own
//! process group, pid and log files in the data dir), waits until it is healthy and prints
//! `export` lines; a second run reuses the running gateway; `-d` stops it by pid and deletes
//! the control plane and its data.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::cli::QuickstartArgs;
use crate::client::{AdminClient, ClientOptions};
use crate::exit::ExitStatus;
use crate::paths::{self, QuickstartFiles};

/// How long the gateway may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What `quickstart` remembers about the gateway it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    pid: u32,
    control_plane: String,
    proxy_url: String,
    admin_url: String,
    #[serde(default)]
    mock_pid: Option<u32>,
}

pub fn run(args: QuickstartArgs) -> anyhow::Result<ExitStatus> {
    let destroy = args.destroy;
    run_inner(args).inspect_err(|_| {
        if !destroy {
            fail_eval();
        }
    })
}

fn run_inner(args: QuickstartArgs) -> anyhow::Result<ExitStatus> {
    let dir = paths::data_dir(args.data_dir.clone())?;
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let files = QuickstartFiles::new(&dir);
    if args.destroy {
        destroy(&args, &dir, &files)
    } else {
        start(&args, &dir, &files)
    }
}

/// `eval "$(gantry quickstart)"` must fail when quickstart fails: when stdout is captured, print
/// a shell line that reports the failure and makes `eval` return non-zero.
fn fail_eval() {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        println!("echo 'gantry quickstart failed; see the error above' >&2; false");
    }
}

fn read_state(files: &QuickstartFiles) -> Option<State> {
    let text = fs::read_to_string(&files.state).ok()?;
    serde_json::from_str(&text).ok()
}

fn start(args: &QuickstartArgs, dir: &Path, files: &QuickstartFiles) -> anyhow::Result<ExitStatus> {
    if let Some(state) = read_state(files).filter(|s| is_running(s.pid)) {
        if state.control_plane != args.control_plane {
            bail!(
                "a gateway for control plane '{}' is already running from {} (pid {}); stop it with `gantry quickstart -d --control-plane {}`",
                state.control_plane,
                dir.display(),
                state.pid,
                state.control_plane
            );
        }
        wait_healthy(&state.admin_url, None)?;
        eprintln!("gantry: reusing the running gateway (pid {})", state.pid);
        print_exports(&state, &files.log);
        return Ok(ExitStatus::Success);
    }
    let exe = std::env::current_exe().context("cannot find the gantry executable")?;
    let mut overrides = Vec::new();
    let mut mock_pid = None;
    if args.mock_llm {
        let mock = spawn_mock(&exe, args, files)?;
        mock_pid = Some(mock);
        let base = format!("http://{}", args.mock_llm_listen);
        // Every hosted provider goes to the simulator; self-hosted ones (llama2, ollama, vllm)
        // already name their own `upstream_url`.
        overrides = [
            "openai",
            "anthropic",
            "azure",
            "bedrock",
            "gemini",
            "mistral",
            "cohere",
            "huggingface",
        ]
        .iter()
        .map(|p| format!("{p}={base}"))
        .collect();
        // Vertex's service-account token exchange goes to the simulator's `POST /token` too;
        // hosted providers' explicit `upstream_url`s follow their override (Mistral's tab).
        overrides.push(format!(
            "{}={base}",
            embedded_gateway::ai::providers::GCP_OAUTH_OVERRIDE
        ));
    }
    let mut child = spawn_serve(&exe, args, dir, files, &overrides)?;
    let (proxy, admin) = match wait_ready(&mut child, &files.log) {
        Ok(addrs) => addrs,
        Err(e) => {
            stop_pid(child.id());
            if let Some(pid) = mock_pid {
                stop_pid(pid);
            }
            return Err(e);
        }
    };
    let state = State {
        pid: child.id(),
        control_plane: args.control_plane.clone(),
        proxy_url: format!("http://{}", client_host(&proxy)),
        admin_url: format!("http://{}", client_host(&admin)),
        mock_pid,
    };
    wait_healthy(&state.admin_url, Some(&mut child))?;
    if let Some(pid) = mock_pid {
        eprintln!(
            "gantry: mock LLM listening on http://{} (pid {pid}); hosted providers' traffic goes there",
            args.mock_llm_listen,
        );
    }
    fs::write(&files.pid, format!("{}\n", state.pid))?;
    fs::write(&files.state, serde_json::to_string_pretty(&state)?)?;
    eprintln!(
        "gantry: gateway started (pid {}) for control plane '{}'; logs in {}",
        state.pid,
        state.control_plane,
        files.log.display()
    );
    print_exports(&state, &files.log);
    Ok(ExitStatus::Success)
}

fn spawn_serve(
    exe: &Path,
    args: &QuickstartArgs,
    dir: &Path,
    files: &QuickstartFiles,
    overrides: &[String],
) -> anyhow::Result<Child> {
    let log = File::create(&files.log)
        .with_context(|| format!("cannot write {}", files.log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(["--proxy-listen", &args.proxy_listen])
        .args(["--admin-listen", &args.admin_listen])
        .arg("--data-dir")
        .arg(dir)
        .args(["--control-plane", &args.control_plane])
        // The local data plane keeps its control plane in SQLite under `dir`, where
        // `quickstart -d` deletes it; a `GANTRY_STORE` meant for other nodes must not apply.
        .env_remove("GANTRY_STORE");
    for o in overrides {
        cmd.args(["--upstream-override", o]);
    }
    detach(&mut cmd, log)?;
    cmd.spawn().context("cannot start `gantry serve`")
}

fn spawn_mock(exe: &Path, args: &QuickstartArgs, files: &QuickstartFiles) -> anyhow::Result<u32> {
    let log = File::create(&files.mock_log)?;
    let mut cmd = Command::new(exe);
    cmd.args(["mock-llm", "--listen", &args.mock_llm_listen.to_string()]);
    detach(&mut cmd, log)?;
    let mut child = cmd.spawn().context("cannot start `gantry mock-llm`")?;
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect_timeout(&args.mock_llm_listen, Duration::from_millis(200))
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "`gantry mock-llm` exited ({status}): {}",
                last_lines(&files.mock_log)
            );
        }
        if Instant::now() > deadline {
            stop_pid(child.id());
            bail!(
                "`gantry mock-llm` did not listen on {} in time",
                args.mock_llm_listen
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::write(&files.mock_pid, format!("{}\n", child.id()))?;
    Ok(child.id())
}

/// Own process group, no stdin, output to the log file: the gateway outlives this command.
fn detach(cmd: &mut Command, log: File) -> anyhow::Result<()> {
    let err = log.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0);
    Ok(())
}

/// Waits for `serve`'s two ready lines and returns (proxy, admin) addresses.
fn wait_ready(child: &mut Child, log: &Path) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let (mut proxy, mut admin) = (None, None);
        if let Ok(f) = File::open(log) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("gantry: proxy listening on ") {
                    proxy = Some(a.trim().to_owned());
                }
                if let Some(a) = line.strip_prefix("gantry: admin listening on ") {
                    admin = Some(a.trim().to_owned());
                }
            }
        }
        if let (Some(p), Some(a)) = (proxy, admin) {
            return Ok((p, a));
        }
        if let Ok(Some(_)) = child.try_wait() {
            bail!("`gantry serve` failed to start: {}", last_lines(log));
        }
        if Instant::now() > deadline {
            bail!(
                "`gantry serve` did not start in time; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_healthy(admin_url: &str, mut child: Option<&mut Child>) -> anyhow::Result<()> {
    let client = AdminClient::new(&ClientOptions {
        addr: admin_url.to_owned(),
        headers: Vec::new(),
        token: std::env::var("GANTRY_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        timeout: Duration::from_secs(2),
        tls: Default::default(),
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match runtime.block_on(client.status()) {
            Ok(status) if status["database"]["reachable"] == true => return Ok(()),
            Ok(_) => {}
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::Error::new(e).context("the gateway did not become healthy"));
            }
            Err(_) => {}
        }
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!("`gantry serve` exited ({status}) before it was healthy");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `0.0.0.0:8000` → `localhost:8000`: the address a client on this machine should use.
fn client_host(addr: &str) -> String {
    for any in ["0.0.0.0:", "[::]:"] {
        if let Some(port) = addr.strip_prefix(any) {
            return format!("localhost:{port}");
        }
    }
    addr.to_owned()
}

fn print_exports(state: &State, log: &Path) {
    println!("export PROXY_URL='{}'", state.proxy_url);
    println!("export DECK_KONG_ADDR='{}'", state.admin_url);
    println!("export GANTRY_CONTROL_PLANE_NAME='{}'", state.control_plane);
    eprintln!();
    eprintln!("Next steps:");
    eprintln!("  1. Paste the export lines above into your shell (or eval them).");
    eprintln!("  2. gantry ping                      # check the admin API");
    eprintln!("  3. gantry apply your-config.yaml    # load services, routes and plugins");
    eprintln!("  4. curl \"$PROXY_URL/...\"            # send traffic through the gateway");
    eprintln!(
        "  Stop and delete everything: gantry quickstart -d --control-plane {}",
        state.control_plane
    );
    eprintln!("  Gateway logs: {}", log.display());
}

fn destroy(
    args: &QuickstartArgs,
    dir: &Path,
    files: &QuickstartFiles,
) -> anyhow::Result<ExitStatus> {
    let state = read_state(files);
    if let Some(s) = state
        .as_ref()
        .filter(|s| s.control_plane == args.control_plane)
    {
        if is_running(s.pid) {
            eprintln!("gantry: stopping the gateway (pid {})", s.pid);
            stop_pid(s.pid);
        }
        if let Some(pid) = s.mock_pid.filter(|p| is_running(*p)) {
            stop_pid(pid);
        }
        for f in [
            &files.state,
            &files.pid,
            &files.log,
            &files.mock_pid,
            &files.mock_log,
        ] {
            let _ = fs::remove_file(f);
        }
    }
    let store = embedded_gateway::store::Store::open(dir)
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    let name = args.control_plane.clone();
    let deleted =
        store.call_blocking(|conn| {
            match embedded_gateway::store::find_control_plane(conn, &name)? {
                Some(cp) if cp.name == name => {
                    embedded_gateway::store::delete_control_plane(conn, &cp.id)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })?;
    if deleted {
        eprintln!(
            "gantry: deleted control plane '{}' and its configuration",
            args.control_plane
        );
    } else {
        eprintln!(
            "gantry: no control plane named '{}'; nothing to delete",
            args.control_plane
        );
    }
    Ok(ExitStatus::Success)
}

/// SIGTERM, wait for exit, SIGKILL after the timeout.
fn stop_pid(pid: u32) {
    signal(pid, "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is_running(pid) {
        if Instant::now() > deadline {
            signal(pid, "KILL");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// True while `pid` is a live (not zombie) process.
fn is_running(pid: u32) -> bool {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    if Path::new("/proc/self/stat").exists() {
        return match fs::read_to_string(stat) {
            Ok(text) => text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn last_lines(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}
