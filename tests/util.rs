//! Shared helpers: a temp dir of state files and a way to run the real `gantry` binary in it
//! with exactly the environment a test gives (nothing inherited, so no stray `DECK_` values).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What a run of `gantry` produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The problem lines on stderr, without the trailing count line.
    pub fn problems(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !is_count_line(l)).collect()
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success; stderr:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_fails_with(&self, expected: &[&str]) {
        assert_eq!(self.code, 1, "expected exit 1; stdout:\n{}", self.stdout);
        assert_eq!(self.problems(), expected, "stderr:\n{}", self.stderr);
    }
}

/// `3 problems found`, the summary validate prints last.
fn is_count_line(line: &str) -> bool {
    let mut words = line.split(' ');
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(n), Some("problem" | "problems"), Some("found"), None) if n.parse::<usize>().is_ok()
    )
}

/// A scratch directory holding state files; `gantry` runs with it as the working directory.
pub struct Workspace {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, text).expect("write state file");
        path
    }

    /// Sets an environment variable for every later run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        gantry(self.dir.path(), &self.env, args, stdin)
    }
}

/// Runs `gantry` in `dir` with exactly `env`, optionally feeding `stdin`.
pub fn gantry(dir: &Path, env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn gantry");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for gantry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The recipe fixture's path.
pub fn recipe() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/basic-llm-routing/kong.yaml")
        .display()
        .to_string()
}

/// The recipe's variables, with a canary token.
pub const RECIPE_ENV: [(&str, &str); 3] = [
    ("DECK_OPENAI_TOKEN", "Bearer sk-canary-7f3a"),
    ("DECK_CHAT_MODEL_1", "gpt-4o-mini"),
    ("DECK_CHAT_MODEL_2", "gpt-4o"),
];

pub fn recipe_workspace() -> Workspace {
    RECIPE_ENV
        .iter()
        .fold(Workspace::new(), |w, (k, v)| w.env(k, v))
}

/// A minimal valid file with one service and route; `extra` is appended verbatim.
pub fn minimal(extra: &str) -> String {
    format!(
        "_format_version: \"3.0\"\nservices:\n  - name: svc\n    url: http://localhost:9000\n    routes:\n      - name: r\n        paths: [/r]\n{extra}"
    )
}

/// A `gantry serve` on free loopback ports with its own temp data dir; killed on drop.
pub struct Gateway {
    served: crate::serve::Served,
    _data: tempfile::TempDir,
}

impl Gateway {
    /// Starts a gateway serving `control_plane` (the default one when `None`).
    pub fn start(control_plane: Option<&str>) -> Self {
        let extra: Vec<&str> = control_plane
            .map(|cp| vec!["--control-plane", cp])
            .unwrap_or_default();
        Self::start_with(&extra)
    }

    /// Starts a gateway with extra `gantry serve` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("data dir");
        let served = crate::serve::serve(data.path(), extra);
        Self {
            served,
            _data: data,
        }
    }

    /// The admin API's base URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.served.admin)
    }

    /// A workspace whose runs talk to this gateway (`DECK_KONG_ADDR`).
    pub fn workspace(&self) -> Workspace {
        Workspace::new().env("DECK_KONG_ADDR", &self.admin_url())
    }

    /// Like [`Gateway::workspace`], with the recipe's variables set.
    pub fn recipe_workspace(&self) -> Workspace {
        recipe_workspace().env("DECK_KONG_ADDR", &self.admin_url())
    }

    /// Sends one admin API request; returns the status and the JSON body (`Null` if none).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        http(method, &format!("{}{path}", self.admin_url()), body)
    }

    /// `GET path`, asserting 200.
    #[track_caller]
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The id of the control plane called `name`.
    #[track_caller]
    pub fn control_plane_id(&self, name: &str) -> String {
        let list = self.get("/v2/control-planes");
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|cp| cp["name"] == name)
            .and_then(|cp| cp["id"].as_str())
            .unwrap_or_else(|| panic!("no control plane {name}: {list}"))
            .to_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.served.child.kill();
        let _ = self.served.child.wait();
    }
}

/// One blocking HTTP request with a JSON body; returns the status and JSON body (`Null` if none).
pub fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("admin API answers");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or_default())
    })
}

/// A fresh port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `target/pyenv`, a venv with the `openai` (<2) and `anthropic` SDKs, made once per run.
/// Threads share it through the `OnceLock`; a marker file carries it across runs.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let target = Path::new(env!("CARGO_BIN_EXE_gantry"))
            .ancestors()
            .nth(2)
            .expect("target dir")
            .to_path_buf();
        let venv = target.join("pyenv");
        let marker = venv.join(".gantry-ready");
        if !marker.exists() {
            let status = |cmd: &mut Command| {
                let out = cmd.output().expect("run python");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            status(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            status(Command::new(venv.join("bin/pip")).args([
                "install",
                "-q",
                "openai>=1,<2",
                "anthropic",
            ]));
            std::fs::write(&marker, "ok\n").expect("marker");
        }
        venv.join("bin/python")
    })
}

/// A child process killed when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a `gantry` subcommand with these extra variables and waits for the stdout line that
/// says it is ready; stdout keeps draining so the child never blocks on a full pipe.
pub fn start_gantry(args: &[&str], envs: &[(&str, &str)], ready: &str) -> Proc {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gantry");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("gantry exited before it was ready")
            .expect("read stdout");
        if line.contains(ready) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Proc(child)
}
