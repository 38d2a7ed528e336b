//! Usage attribution end to end, through the real binary and the real OpenAI SDK: the recipe
//! (its targets log statistics and payloads) served with a global `file-log` and
//! `prometheus`; each call's entry names the consumer, the alias and the upstream model with
//! the provider's exact token counts, streamed or not; `/metrics` on the status listener
//! parses with a Prometheus text parser and counts what was sent.

use std::process::Command;

use serde_json::Value;

use crate::util::{Proc, RECIPE_ENV, free_port, python, recipe, start_gantry};

fn start(args: &[&str], ready: &str) -> Proc {
    start_gantry(args, &RECIPE_ENV, ready)
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

/// Two consumers on the recipe's route, costs on both targets, and a global `prometheus`.
const ANALYTICS_CONFIG: &str = r#"_format_version: "3.0"
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
          targets:
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: Bearer sk-canary-analytics}
              logging: {log_statistics: true}
              model: {provider: openai, name: gpt-4o-mini, model_alias: fast, options: {input_cost: 2.5, output_cost: 10}}
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: Bearer sk-canary-analytics}
              logging: {log_statistics: true}
              model: {provider: openai, name: gpt-4o, model_alias: smart, options: {input_cost: 5, output_cost: 20}}
plugins:
  - name: prometheus
    config: {per_consumer: true, status_code_metrics: true}
consumers:
  - username: demo-app
    keyauth_credentials: [{key: demo-api-key}]
  - username: batch-app
    keyauth_credentials: [{key: batch-api-key}]
"#;

/// POSTs a chat call; returns the status and the usage of a 200.
fn chat(proxy: u16, key: Option<&str>, alias: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{proxy}/basic-llm-routing/chat/completions"
            ))
            .json(&serde_json::json!({"model": alias,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]}));
        if let Some(k) = key {
            req = req.header("apikey", k);
        }
        let res = req.send().await.expect("proxy answers");
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap_or_default();
        (status, v["usage"].clone())
    })
}

fn gantry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env_remove("DECK_KONG_ADDR")
        .env_remove("DECK_KONG_ADMIN_TOKEN")
        .output()
        .expect("run gantry")
}

/// The page in headless Chromium: its DOM once the page's scripts ran, and a screenshot.
fn chromium(url: &str, screenshot: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let base = [
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        format!("--user-data-dir={}", profile.path().display()),
        "--window-size=1400,1500".into(),
        "--virtual-time-budget=10000".into(),
    ];
    let run = |extra: &str| {
        let out = Command::new("chromium")
            .args(&base)
            .arg(extra)
            .arg(url)
            .output()
            .expect("chromium runs (install Debian's `chromium`)");
        assert!(
            out.status.success(),
            "chromium {extra}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&format!("--screenshot={}", screenshot.display()));
    run("--dump-dom")
}

/// The text of the element with this id in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    dom[open..close].to_owned()
}

#[test]
fn analytics_api_cli_and_page_show_the_known_traffic_per_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kong.yaml");
    std::fs::write(&config, ANALYTICS_CONFIG).unwrap();
    let (proxy, admin, mock) = (free_port(), free_port(), free_port());
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
            "--upstream-override",
            &format!("openai=http://{mock_addr}"),
        ],
        "proxy listening",
    );
    // Known traffic: demo-app 3 × fast, batch-app 1 × smart, one caller without a key.
    let (mut demo, mut batch) = ((0, 0), (0, 0));
    for _ in 0..3 {
        let (status, u) = chat(proxy, Some("demo-api-key"), "fast");
        assert_eq!(status, 200);
        demo.0 += u["prompt_tokens"].as_i64().unwrap();
        demo.1 += u["completion_tokens"].as_i64().unwrap();
    }
    let (status, u) = chat(proxy, Some("batch-api-key"), "smart");
    assert_eq!(status, 200);
    batch.0 += u["prompt_tokens"].as_i64().unwrap();
    batch.1 += u["completion_tokens"].as_i64().unwrap();
    assert_eq!(chat(proxy, None, "fast").0, 401);
    let demo_cost = (demo.0 as f64 * 2.5 + demo.1 as f64 * 10.0) / 1e6;
    let batch_cost = (batch.0 as f64 * 5.0 + batch.1 as f64 * 20.0) / 1e6;

    // The CLI, JSON: totals and consumers ranked by tokens.
    let addr = format!("http://127.0.0.1:{admin}");
    let out = gantry(&[
        "analytics",
        "--kong-addr",
        &addr,
        "--since",
        "1h",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &s["totals"];
    assert_eq!(t["requests"], 5);
    assert_eq!(t["errors"], 1);
    assert_eq!(t["total_tokens"], demo.0 + demo.1 + batch.0 + batch.1);
    assert!((t["cost"].as_f64().unwrap() - (demo_cost + batch_cost)).abs() < 1e-9);
    assert!(t["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let groups = s["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["demo-app", "batch-app", ""],
        "ranked by tokens: {s}"
    );
    assert_eq!(groups[0]["prompt_tokens"], demo.0);
    assert_eq!(groups[0]["completion_tokens"], demo.1);
    assert_eq!(groups[2]["errors"], 1);
    assert_eq!(
        s["series"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        5
    );

    // Filters and grouping.
    let out = gantry(&[
        "analytics",
        "--kong-addr",
        &addr,
        "--by",
        "model",
        "--consumer",
        "batch-app",
        "-o",
        "json",
    ]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["totals"]["requests"], 1);
    assert_eq!(s["groups"][0]["name"], "gpt-4o");
    assert!((s["totals"]["cost"].as_f64().unwrap() - batch_cost).abs() < 1e-9);

    // The CLI, text.
    let out = gantry(&["analytics", "--kong-addr", &addr, "--by", "consumer"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Last 1h: 5 requests, error rate 20.0%"),
        "{text}"
    );
    let demo_line = text
        .lines()
        .find(|l| l.starts_with("demo-app"))
        .expect(&text);
    assert!(
        demo_line.contains(&(demo.0 + demo.1).to_string()),
        "{demo_line}"
    );

    // A bad range is named.
    let out = gantry(&["analytics", "--kong-addr", &addr, "--since", "1w"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("since"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The page in real headless Chromium, with no network: it shows the same figures.
    // `UPDATE_SCREENSHOTS=1` refreshes the committed docs/analytics.png.
    let shots = tempfile::tempdir().unwrap();
    let shot = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/analytics.png")
    } else {
        shots.path().join("analytics.png")
    };
    let dom = chromium(&format!("{addr}/analytics"), &shot);
    assert_eq!(text_of(&dom, "kpi-requests"), "5");
    assert_eq!(text_of(&dom, "kpi-error-rate"), "20.0%");
    assert_eq!(
        text_of(&dom, "kpi-tokens"),
        (demo.0 + demo.1 + batch.0 + batch.1).to_string()
    );
    let table = &dom[dom.find("id=\"groups\"").unwrap()..];
    let first_row = &table[table.find("<tbody>").unwrap()..];
    assert!(
        first_row.starts_with("<tbody><tr><td>demo-app</td><td>3</td>"),
        "{first_row}"
    );
    assert!(dom.contains("<td>batch-app</td><td>1</td>"));
    // uPlot drew the four charts.
    assert_eq!(dom.matches("class=\"uplot").count(), 4, "{dom}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    for canary in ["demo-api-key", "sk-canary-analytics"] {
        assert!(!dom.contains(canary));
    }
}

/// The three observability plugins in a decK file, with only their required fields.
const OBSERVABILITY: &str = r#"_format_version: "3.0"
services:
  - name: obs-svc
    url: http://obs.internal:8080
    routes:
      - {name: obs-route, paths: [/obs]}
plugins:
  - name: prometheus
  - name: file-log
    config: {path: /tmp/gantry-obs.log}
  - name: http-log
    route: obs-route
    config: {http_endpoint: "http://logger:s3cret-canary@collector.internal:9000/logs"}
"#;

#[test]
fn the_three_plugins_apply_diff_clean_and_dump_with_kongs_defaults_and_the_endpoint_masked() {
    let gw = crate::util::Gateway::start(None);
    let ws = gw.workspace();
    ws.write("obs.yaml", OBSERVABILITY);
    ws.run(&["validate", "obs.yaml"]).assert_ok();
    ws.run(&["apply", "obs.yaml"]).assert_ok();
    // Kong's defaults filled on both sides: nothing to change.
    let diff = ws.run(&["diff", "obs.yaml", "--non-zero-exit-code", "--no-color"]);
    assert_eq!(diff.code, 0, "{}\n{}", diff.stdout, diff.stderr);
    let plugins = gw.get("/plugins");
    let by_name = |n: &str| {
        plugins["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {plugins}"))
            .clone()
    };
    let prom = by_name("prometheus");
    assert_eq!(prom["config"]["per_consumer"], false);
    assert_eq!(prom["config"]["ai_metrics"], false);
    let http_log = by_name("http-log");
    assert_eq!(http_log["config"]["queue"]["max_batch_size"], 1);
    assert_eq!(http_log["config"]["method"], "POST");
    // A dump masks the endpoint (it may carry credentials); --show-secrets round-trips.
    let dump = ws.run(&["dump", "-o", "-"]);
    dump.assert_ok();
    assert!(!dump.stdout.contains("s3cret-canary"), "{}", dump.stdout);
    ws.run(&["dump", "--show-secrets", "-o", "all.yaml"])
        .assert_ok();
    let again = ws.run(&["diff", "all.yaml", "--non-zero-exit-code"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    // Fields Gantry cannot honour are refused with their place.
    ws.write(
        "bad.yaml",
        &OBSERVABILITY.replace(
            "  - name: prometheus\n",
            "  - name: prometheus\n    config: {upstream_health_metrics: true}\n",
        ),
    );
    let bad = ws.run(&["validate", "bad.yaml"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("upstream_health_metrics"),
        "{}",
        bad.stderr
    );
}
