//! Usage attribution end to end, through the real binary and the real OpenAI SDK: the recipe
//! (its targets log statistics and payloads) served with a global `file-log` and
//! `prometheus`; each call's entry names the consumer, the alias and the upstream model with
//! the provider's exact token counts, streamed or not; `/metrics` on the status listener
//! parses with a Prometheus text parser and counts what was sent.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::{RECIPE_ENV, free_port, python, recipe};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], ready: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .envs(RECIPE_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gantry");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("gantry exited early").expect("stdout");
        if line.contains(ready) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Proc(child)
}

fn get_text(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let res = reqwest::get(url).await.expect("answers");
        (res.status().as_u16(), res.text().await.expect("body"))
    })
}

/// The log file's entries once `n` arrived (the writer is off the request path).
fn entries(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("fewer than {n} entries in {}", path.display());
}

fn counter(scrape: &prometheus_parse::Scrape, metric: &str, want: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && want.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => panic!("{metric} is not a counter"),
        })
        .sum()
}

#[test]
fn the_real_sdk_through_the_recipe_is_logged_and_counted_per_consumer_alias_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ai.log");
    // The recipe, unchanged, plus the two global observability plugins.
    let config = dir.path().join("kong.yaml");
    let text = std::fs::read_to_string(recipe()).unwrap()
        + &format!(
            "plugins:\n  - name: file-log\n    config: {{path: {}}}\n  - name: prometheus\n    config: {{per_consumer: true, status_code_metrics: true, latency_metrics: true, ai_metrics: true}}\n",
            log.display()
        );
    std::fs::write(&config, text).unwrap();
    let (proxy, admin, status, mock) = (free_port(), free_port(), free_port(), free_port());
    let mock_addr = format!("127.0.0.1:{mock}");
    let _mock = start(&["mock-llm", "--listen", &mock_addr], "listening");
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
            "--status-listen",
            &format!("127.0.0.1:{status}"),
            "--upstream-override",
            &format!("openai=http://{mock_addr}"),
        ],
        "proxy listening",
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_usage.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(format!("http://127.0.0.1:{proxy}/basic-llm-routing"))
        .arg("fast")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The SDK's default stream does not ask for usage, and gets none.
    assert_eq!(seen["unasked_saw_usage"], false, "{seen}");
    assert_eq!(seen["stream_text"], "The capital of France is Paris.");

    let es = entries(&log, 3);
    let modes: Vec<&str> = es
        .iter()
        .map(|e| e["ai"]["proxy"]["meta"]["request_mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["oneshot", "stream", "stream"]);
    for (e, want) in es.iter().zip([
        &seen["oneshot"],
        &seen["stream_usage"],
        &seen["stream_usage"],
    ]) {
        assert_eq!(e["consumer"]["username"], "demo-app");
        let meta = &e["ai"]["proxy"]["meta"];
        assert_eq!(meta["alias"], "fast");
        assert_eq!(meta["request_model"], "gpt-4o-mini");
        assert_eq!(meta["provider_name"], "openai");
        let usage = &e["ai"]["proxy"]["usage"];
        for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert_eq!(usage[k], want[k], "{k} in {e}");
        }
        // The recipe logs payloads: the request is there, the credentials are not.
        assert!(
            e["ai"]["proxy"]["payload"]["request"]
                .as_str()
                .unwrap()
                .contains("capital of France")
        );
    }
    let file = std::fs::read_to_string(&log).unwrap();
    assert!(!file.contains("demo-api-key") && !file.contains("sk-canary-7f3a"));

    // The status listener needs no admin token; its text parses and counts the three calls.
    let (code, text) = get_text(&format!("http://127.0.0.1:{status}/metrics"));
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let route = [("route", "basic-llm-routing"), ("consumer", "demo-app")];
    assert_eq!(counter(&scrape, "kong_http_requests_total", &route), 3.0);
    let ai = [
        ("ai_model", "gpt-4o-mini"),
        ("ai_provider", "openai"),
        ("consumer", "demo-app"),
    ];
    assert_eq!(counter(&scrape, "kong_ai_llm_requests_total", &ai), 3.0);
    let mut want_total = 0.0;
    for u in [
        &seen["oneshot"],
        &seen["stream_usage"],
        &seen["stream_usage"],
    ] {
        want_total += u["total_tokens"].as_f64().unwrap();
    }
    let mut tokens = ai.to_vec();
    tokens.push(("token_type", "total_tokens"));
    assert_eq!(
        counter(&scrape, "kong_ai_llm_tokens_total", &tokens),
        want_total
    );
    assert!(!text.contains("demo-api-key") && !text.contains("sk-canary"));
}
