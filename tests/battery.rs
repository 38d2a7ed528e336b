//! The reliability battery (docs/reliability-battery.md): the real `gantry serve`, `gantry
//! mock-llm` and CLI on loopback, bounded in size, printing its figures. Its quick form runs in
//! `cargo test`; `GANTRY_BATTERY_N` (cases per malformed-input class, default 40) and
//! `GANTRY_BATTERY_ROUNDS` (kill and race rounds, default 4) make it longer. See the figures
//! with `cargo test --test integration battery -- --nocapture --test-threads 1`.
//!
//! - A1: malformed chat bodies in 10 classes: no 5xx, every error in the OpenAI envelope, and
//!   the provider called only for the classes that should reach it.
//! - B4: a canary provider key, echoed back by the mock, looked for in every output channel.
//! - E5: `gantry apply` and then `gantry serve` killed mid-apply: the store holds all or none.
//! - E4: two `gantry sync`s racing on one scope: the result is exactly one of the two files.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{free_port, gantry, http};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gantry serve` on free ports, logging at `debug` into `log`; returns it and its addresses.
pub fn start_serve(data: &Path, log: &Path, extra: &[&str]) -> (Proc, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "serve",
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--data-dir",
        ])
        .arg(data)
        .args(extra)
        .env_clear()
        .env("GANTRY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
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
    (Proc(child), proxy.unwrap(), admin.unwrap())
}

fn start_mock() -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["mock-llm", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "mock-llm did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), addr)
}

fn run(env: &[(&str, &str)], dir: &Path, args: &[&str]) -> crate::util::Run {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    gantry(dir, &env, args, None)
}

const CP: &str = "basic-llm-routing-recipe";

fn recipe_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/basic-llm-routing/kong.yaml")
        .display()
        .to_string()
}

// ---------------------------------------------------------------- A1 + B4: one recipe gateway

struct RecipeGateway {
    _serve: Proc,
    _mock: Proc,
    proxy: String,
    admin: String,
    mock: String,
    log: PathBuf,
    work: tempfile::TempDir,
    canary: String,
}

impl RecipeGateway {
    fn start() -> Self {
        let work = tempfile::tempdir().unwrap();
        let (mock_proc, mock) = start_mock();
        let log = work.path().join("serve.log");
        let override_ = format!("openai=http://{mock}");
        let (serve, proxy, admin) = start_serve(
            &work.path().join("data"),
            &log,
            &["--control-plane", CP, "--upstream-override", &override_],
        );
        let canary = format!(
            "sk-canary-{}",
            uuid::Uuid::new_v4().simple().to_string().get(..24).unwrap()
        );
        let g = Self {
            _serve: serve,
            _mock: mock_proc,
            proxy,
            admin,
            mock,
            log,
            work,
            canary,
        };
        let admin_url = format!("http://{}", g.admin);
        let token = format!("Bearer {}", g.canary);
        let env = g.env(&admin_url, &token);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let dir = g.work.path();
        run(
            &env,
            dir,
            &["adopt", "control-plane", CP, "--namespace", CP],
        )
        .assert_ok();
        run(&env, dir, &["apply", &recipe_file(), "--no-color"]).assert_ok();
        g
    }

    fn env(&self, admin_url: &str, token: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DECK_KONG_ADDR", admin_url.to_owned()),
            ("DECK_OPENAI_TOKEN", token.to_owned()),
            ("DECK_CHAT_MODEL_1", "gpt-4o-mini".to_owned()),
            ("DECK_CHAT_MODEL_2", "gpt-4o".to_owned()),
        ]
    }

    fn upstream_calls(&self) -> usize {
        let (_, v) = http("GET", &format!("http://{}/_mock/requests", self.mock), None);
        let n = v.as_array().map_or(0, Vec::len);
        http(
            "DELETE",
            &format!("http://{}/_mock/requests", self.mock),
            None,
        );
        n
    }
}

/// One malformed-input class: a generator and what must happen.
struct Class {
    name: &'static str,
    /// Whether the provider may be called for this class (else it must not be).
    reaches_provider: bool,
    /// Cases run, as a share of N (large bodies run fewer).
    share: usize,
    make: fn(&mut Rng) -> Vec<u8>,
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

fn classes() -> Vec<Class> {
    vec![
        Class {
            name: "valid",
            reaches_provider: true,
            share: 1,
            make: |r| {
                let m = ["fast", "smart"][r.below(2) as usize];
                hello(m).to_string().into_bytes()
            },
        },
        Class {
            name: "truncated/malformed JSON",
            reaches_provider: false,
            share: 1,
            make: |r| {
                let full = hello("fast").to_string();
                let cut = 1 + r.below(full.len() as u64 - 2) as usize;
                let mut b = full.as_bytes()[..cut].to_vec();
                if r.below(2) == 0 {
                    b.extend_from_slice(b"}}]]");
                }
                b
            },
        },
        Class {
            name: "wrong types",
            reaches_provider: false,
            share: 1,
            make: |r| {
                let bad = [
                    json!("hi"),
                    json!(3),
                    json!({"role": "user"}),
                    json!(null),
                    json!([]),
                ];
                json!({"model": "fast", "messages": bad[r.below(5) as usize]})
                    .to_string()
                    .into_bytes()
            },
        },
        Class {
            name: "missing model",
            reaches_provider: true,
            share: 1,
            make: |_| {
                json!({"messages": [{"role": "user", "content": "hi"}]})
                    .to_string()
                    .into_bytes()
            },
        },
        Class {
            name: "unknown alias",
            reaches_provider: true,
            share: 1,
            make: |r| {
                hello(&format!("no-such-{}", r.below(1000)))
                    .to_string()
                    .into_bytes()
            },
        },
        Class {
            name: "deep nesting (128..20k)",
            reaches_provider: false,
            share: 1,
            make: |r| {
                let d = 127 + r.below(20_000) as usize;
                format!(
                    r#"{{"model":"fast","messages":[{{"role":"user","content":"hi"}}],"x":{}{}}}"#,
                    "[".repeat(d),
                    "]".repeat(d)
                )
                .into_bytes()
            },
        },
        Class {
            name: "over max_request_body_size (10 MiB)",
            reaches_provider: false,
            share: 8,
            make: |r| {
                let big = "a".repeat(10 * 1024 * 1024 + 1 + r.below(1024) as usize);
                json!({"model": "fast", "messages": [{"role": "user", "content": big}]})
                    .to_string()
                    .into_bytes()
            },
        },
        Class {
            name: "invalid UTF-8",
            reaches_provider: false,
            share: 1,
            make: |r| {
                let bad: [&[u8]; 4] = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c"];
                let mut b =
                    br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"user":""#
                        .to_vec();
                b.extend_from_slice(bad[r.below(4) as usize]);
                b.extend_from_slice(b"\"}");
                b
            },
        },
        Class {
            name: "duplicate keys",
            reaches_provider: true,
            share: 1,
            make: |_| {
                br#"{"model":"fast","model":"smart","messages":[],"messages":[{"role":"user","content":"hi"}]}"#.to_vec()
            },
        },
        Class {
            name: "extreme numbers / NaN / lone surrogate",
            reaches_provider: true,
            share: 1,
            make: |r| {
                let v = [
                    "1e400",
                    "-0",
                    "NaN",
                    "-1e-400",
                    "123456789012345678901234567890",
                ];
                let t = v[r.below(5) as usize];
                let content = if r.below(4) == 0 { "\\ud800" } else { "hi" };
                format!(
                    r#"{{"model":"fast","temperature":{t},"messages":[{{"role":"user","content":"{content}"}}]}}"#
                )
                .into_bytes()
            },
        },
    ]
}

#[derive(Default)]
struct ClassFigures {
    cases: usize,
    statuses: BTreeMap<u16, usize>,
    upstream: usize,
    max_latency: Duration,
    violations: Vec<String>,
}

fn malformed_inputs(g: &RecipeGateway, n: usize, rt: &tokio::runtime::Runtime) -> usize {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/basic-llm-routing/chat/completions", g.proxy);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0;
    println!("\nA1 malformed chat bodies (N = {n} per class)");
    println!(
        "| class | cases | statuses | provider calls | max latency | violations |\n|---|---:|---|---:|---:|---:|"
    );
    let mut all_violations = Vec::new();
    g.upstream_calls();
    for class in classes() {
        let mut f = ClassFigures::default();
        let cases = (n / class.share).max(1);
        for _ in 0..cases {
            let body = (class.make)(&mut rng);
            let started = Instant::now();
            let res = rt.block_on(
                client
                    .post(&url)
                    .header("apikey", "demo-api-key")
                    .header("content-type", "application/json")
                    .body(body)
                    .send(),
            );
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    f.violations.push(format!("no answer: {e}"));
                    continue;
                }
            };
            let status = res.status().as_u16();
            let text = rt.block_on(res.text()).unwrap_or_default();
            f.max_latency = f.max_latency.max(started.elapsed());
            f.cases += 1;
            *f.statuses.entry(status).or_default() += 1;
            if status >= 500 {
                f.violations.push(format!("{status}: {text}"));
            } else if status >= 400 {
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                let e = &v["error"];
                if !(e["message"].is_string() && e["type"].is_string() && e.get("code").is_some()) {
                    f.violations
                        .push(format!("not the OpenAI envelope: {text}"));
                }
            }
        }
        f.upstream = g.upstream_calls();
        if !class.reaches_provider && f.upstream > 0 {
            f.violations
                .push(format!("the provider was called {} times", f.upstream));
        }
        let statuses: Vec<String> = f.statuses.iter().map(|(s, c)| format!("{s}×{c}")).collect();
        println!(
            "| {} | {} | {} | {} | {} ms | {} |",
            class.name,
            f.cases,
            statuses.join(" "),
            f.upstream,
            f.max_latency.as_millis(),
            f.violations.len()
        );
        total += f.cases;
        all_violations.extend(
            f.violations
                .into_iter()
                .map(|v| format!("{}: {v}", class.name)),
        );
    }
    println!(
        "total: {total} requests, {} violations",
        all_violations.len()
    );
    assert!(all_violations.is_empty(), "{all_violations:#?}");
    total
}

/// Every place the canary could surface, with what it holds.
fn canary_channels(g: &RecipeGateway, rt: &tokio::runtime::Runtime) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/basic-llm-routing/chat/completions", g.proxy);
    let everything = |res: reqwest::Response| async move {
        let mut head = String::new();
        for (k, v) in res.headers() {
            head += &format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes()));
        }
        (head, res.text().await.unwrap_or_default())
    };
    let mut channels: Vec<(&str, String)> = Vec::new();
    for (what, fault, stream) in [
        ("proxy success", None, false),
        ("proxy success stream", None, true),
        ("provider error (echo-key)", Some("echo-key"), false),
        (
            "provider stream error event (echo-key)",
            Some("echo-key"),
            true,
        ),
        ("provider 500", Some("500"), false),
        ("provider reset mid-stream", Some("reset"), true),
    ] {
        let mut body = hello("fast");
        body["stream"] = json!(stream);
        let mut req = client
            .post(&url)
            .header("apikey", "demo-api-key")
            .json(&body);
        if let Some(f) = fault {
            req = req.header("x-mock-fault", f);
        }
        let (head, text) = rt.block_on(async { everything(req.send().await.unwrap()).await });
        channels.push(match what {
            "proxy success" => ("response headers", head),
            "provider error (echo-key)" => ("error response headers", head),
            _ => ("", String::new()),
        });
        channels.push((what, text));
    }
    channels.retain(|(n, _)| !n.is_empty());
    let admin_url = format!("http://{}", g.admin);
    let token = format!("Bearer {}", g.canary);
    let env = g.env(&admin_url, &token);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = g.work.path();
    let recipe = recipe_file();
    let cli = |args: &[&str]| {
        let r = run(&env, dir, args);
        format!("{}{}", r.stdout, r.stderr)
    };
    // A changed model, so that diff and plan show the plugin.
    let mut changed = env.clone();
    changed.retain(|(k, _)| *k != "DECK_CHAT_MODEL_1");
    changed.push(("DECK_CHAT_MODEL_1", "gpt-4.1-mini"));
    let cli_changed = |args: &[&str]| {
        let r = run(&changed, dir, args);
        format!("{}{}", r.stdout, r.stderr)
    };
    channels.push(("gantry diff", cli_changed(&["diff", &recipe, "--no-color"])));
    channels.push((
        "gantry diff --json-output",
        cli_changed(&["diff", &recipe, "--json-output"]),
    ));
    channels.push(("gantry render", cli(&["render", &recipe])));
    channels.push((
        "gantry dump",
        cli(&["dump", "--control-plane", CP, "--format", "json"]),
    ));
    channels.push(("gantry validate", cli(&["validate", &recipe])));
    channels.push(("gantry --help", cli(&["--help"])));
    channels.push(("gantry serve --help", cli(&["serve", "--help"])));
    // An apply that fails (conflicting flags) must not print the value either.
    channels.push((
        "failed apply",
        cli(&["apply", &recipe, "--select-tag", "other", "--no-color"]),
    ));
    std::thread::sleep(Duration::from_millis(200));
    channels.push((
        "serve log (debug)",
        std::fs::read_to_string(&g.log).unwrap_or_default(),
    ));
    let (_, plugins) = http("GET", &format!("{admin_url}/plugins"), None);
    let by_design = [("admin API GET /plugins", plugins.to_string())];

    let canary = &g.canary;
    let fragments = [
        canary.as_str(),
        &canary[..8],
        &canary[canary.len() - 8..],
        &canary[10..],
    ];
    let hits = |text: &str| {
        fragments
            .iter()
            .map(|f| text.matches(f).count())
            .sum::<usize>()
    };
    println!("\nB4 canary provider key ({} channels)", channels.len());
    println!("| channel | bytes | hits |\n|---|---:|---:|");
    let mut leaked = Vec::new();
    for (name, text) in &channels {
        let h = hits(text);
        println!("| {name} | {} | {h} |", text.len());
        if h > 0 {
            leaked.push(format!("{name}: {text}"));
        }
    }
    for (name, text) in &by_design {
        println!(
            "| {name} (holds stored config, as Kong's; loopback or token only) | {} | {} |",
            text.len(),
            hits(text)
        );
    }
    assert!(leaked.is_empty(), "{leaked:#?}");
}

#[test]
fn battery_malformed_inputs_and_canary() {
    let n = env_usize("GANTRY_BATTERY_N", 40);
    let g = RecipeGateway::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    malformed_inputs(&g, n, &rt);
    canary_channels(&g, &rt);
}

// ---------------------------------------------------------------- E5 + E4: kills and races

const TAG: &str = "battery";

/// A state file with `count` services (each with a route) named `{prefix}-{i}`.
fn services_file(prefix: &str, count: usize) -> String {
    let mut s = format!("_format_version: \"3.0\"\n_info:\n  select_tags: [{TAG}]\nservices:\n");
    for i in 0..count {
        s += &format!(
            "  - name: {prefix}-{i}\n    url: http://127.0.0.1:9/{i}\n    routes:\n      - name: {prefix}-r{i}\n        paths: [/{prefix}/{i}]\n"
        );
    }
    s
}

/// The names of the services in scope, sorted.
fn service_names(admin: &str) -> Vec<String> {
    let (status, v) = http(
        "GET",
        &format!("http://{admin}/services?tags={TAG}&size=1000"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let mut names: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    // Each service has one route: a service without its route is a partial state too.
    let (_, routes) = http(
        "GET",
        &format!("http://{admin}/routes?tags={TAG}&size=1000"),
        None,
    );
    let routes = routes["data"].as_array().map_or(0, Vec::len);
    if routes != names.len() {
        names.push(format!("({routes} routes)"));
    }
    names
}

fn expected_names(prefix: &str, count: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    v.sort();
    v
}

#[test]
fn battery_kills_mid_apply_and_races() {
    let rounds = env_usize("GANTRY_BATTERY_ROUNDS", 4);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let data = dir.join("data");
    let log = dir.join("serve.log");
    let count = 300;
    std::fs::write(dir.join("big.yaml"), services_file("svc", count)).unwrap();
    let (mut serve, _, mut admin) = start_serve(&data, &log, &[]);
    let env_for = |admin: &str| vec![("DECK_KONG_ADDR", format!("http://{admin}"))];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    // How long a full apply takes, to aim the kills inside it.
    let env = env_for(&admin);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = Instant::now();
    run(&envs, dir, &["apply", "big.yaml"]).assert_ok();
    let apply_time = started.elapsed();
    run(&envs, dir, &["reset", "--select-tag", TAG, "--yes"]).assert_ok();

    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut partial = 0;
    for round in 0..rounds * 2 {
        let kill_gateway = round % 2 == 1;
        let env = env_for(&admin);
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut cli = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["apply", "big.yaml"])
            .current_dir(dir)
            .env_clear()
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rng.below(apply_time.as_millis().max(2) as u64);
        std::thread::sleep(Duration::from_millis(delay));
        if kill_gateway {
            let _ = serve.0.kill();
            let _ = serve.0.wait();
            let _ = cli.wait();
            let (s, _, a) = start_serve(&data, &log, &[]);
            serve = s;
            admin = a;
        } else {
            let _ = cli.kill();
            let _ = cli.wait();
        }
        let names = service_names(&admin);
        let outcome = if names.is_empty() {
            "none (old state)"
        } else if names == expected_names("svc", count) {
            "all (new state)"
        } else {
            partial += 1;
            "PARTIAL"
        };
        *outcomes.entry(outcome).or_default() += 1;
        let env = env_for(&admin);
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&envs, dir, &["reset", "--select-tag", TAG, "--yes"]).assert_ok();
    }
    println!(
        "\nE5 kill mid-apply ({count} services + {count} routes; apply takes {} ms)",
        apply_time.as_millis()
    );
    println!(
        "{} rounds ({} CLI kills, {} gateway kills): {outcomes:?}; partial states: {partial}",
        rounds * 2,
        rounds,
        rounds
    );
    assert_eq!(partial, 0);

    // Races: two syncs of different files on one scope, started together.
    let n = 60;
    std::fs::write(dir.join("a.yaml"), services_file("a", n)).unwrap();
    std::fs::write(dir.join("b.yaml"), services_file("b", n)).unwrap();
    let env = env_for(&admin);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    let mut mixed = 0;
    for _ in 0..rounds {
        let spawn = |file: &str| {
            Command::new(env!("CARGO_BIN_EXE_gantry"))
                .args(["sync", file])
                .current_dir(dir)
                .env_clear()
                .envs(envs.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("a.yaml"), spawn("b.yaml"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let names = service_names(&admin);
        let state = if names == expected_names("a", n) {
            "a"
        } else if names == expected_names("b", n) {
            "b"
        } else {
            mixed += 1;
            "MIXED"
        };
        let key = format!(
            "exit a={} b={} → {state}",
            a.status.code().unwrap_or(-1),
            b.status.code().unwrap_or(-1)
        );
        *results.entry(key).or_default() += 1;
    }
    println!(
        "\nE4 racing syncs ({rounds} rounds, {n} services each): {results:?}; mixed states: {mixed}"
    );
    assert_eq!(mixed, 0);
    drop(serve);
}
