//! The plugin pipeline through the real proxy: the `log` phase (here `file-log`, the smallest
//! logging plugin) receives the complete request context after the response ended: the
//! consumer, the AI facts with the provider's exact token usage for plain and streamed
//! answers, early answers such as key-auth's 401, and never a credential.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::proxy_harness::*;

/// The recipe plus a global `file-log` writing to `path`, with `log_statistics` on the targets.
async fn recipe_with_file_log(path: &Path) -> Stack {
    recipe_logging(path, json!({"log_statistics": true})).await
}

/// The recipe plus a global `file-log` writing to `path`, with this `logging` on the targets.
async fn recipe_logging(path: &Path, logging: Value) -> Stack {
    let path = path.to_str().unwrap().to_owned();
    Stack::start(move |m| {
        let mut snap = recipe(m);
        let mut ai = recipe_ai_config(m);
        for t in ai["targets"].as_array_mut().unwrap() {
            t["logging"] = logging.clone();
            t["model"]["options"]["input_cost"] = json!(2.5);
            t["model"]["options"]["output_cost"] = json!(10.0);
        }
        snap.plugins[1].config = ai;
        snap.plugins.push(plugin(
            json!({"id": "p-file-log", "name": "file-log", "config": {"path": path}}),
        ));
        snap
    })
    .await
}

/// The log file's entries, waiting (bounded) until `n` arrived: the writer is off the request
/// path, so an entry lands shortly after its response.
async fn entries(path: &Path, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} log entries in {}", path.display());
}

#[tokio::test]
async fn the_log_phase_gets_the_consumer_the_alias_and_the_exact_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_with_file_log(&path).await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let e = &entries(&path, 1).await[0];
    assert_eq!(e["consumer"]["username"], "demo-app");
    assert_eq!(e["consumer"]["id"], CONSUMER_ID);
    assert_eq!(e["route"]["name"], "basic-llm-routing");
    assert_eq!(e["service"]["id"], SERVICE_ID);
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["request"]["method"], "POST");
    let meta = &e["ai"]["proxy"]["meta"];
    assert_eq!(meta["alias"], "fast");
    assert_eq!(meta["provider_name"], "openai");
    assert_eq!(meta["request_model"], "gpt-4o-mini");
    assert_eq!(meta["request_mode"], "oneshot");
    let usage = &e["ai"]["proxy"]["usage"];
    assert_eq!(usage["prompt_tokens"], answer["usage"]["prompt_tokens"]);
    assert_eq!(
        usage["completion_tokens"],
        answer["usage"]["completion_tokens"]
    );
    let (p, c) = (
        answer["usage"]["prompt_tokens"].as_f64().unwrap(),
        answer["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    assert!((usage["cost"].as_f64().unwrap() - (p * 2.5 + c * 10.0) / 1e6).abs() < 1e-12);
    // The caller's key and the provider's token never reach a log entry.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(DEMO_KEY), "{text}");
    assert!(!text.contains("sk-test-provider-token"), "{text}");
    assert_eq!(e["request"]["headers"]["apikey"], "REDACTED");
}

#[tokio::test]
async fn a_streamed_answer_logs_the_usage_of_its_last_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_with_file_log(&path).await;
    let res = s
        .chat(
            json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let usage_chunk: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    let e = &entries(&path, 1).await[0];
    assert_eq!(e["ai"]["proxy"]["meta"]["request_mode"], "stream");
    assert_eq!(e["ai"]["proxy"]["meta"]["alias"], "smart");
    let usage = &e["ai"]["proxy"]["usage"];
    assert_eq!(
        usage["prompt_tokens"],
        usage_chunk["usage"]["prompt_tokens"]
    );
    assert_eq!(
        usage["completion_tokens"],
        usage_chunk["usage"]["completion_tokens"]
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn an_early_401_is_logged_without_a_consumer_or_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_with_file_log(&path).await;
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", "canary-wrong-key-7f3a")
        .json(&hello("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let e = &entries(&path, 1).await[0];
    assert_eq!(e["response"]["status"], 401);
    assert_eq!(e["source"], "kong");
    assert!(e.get("consumer").is_none(), "{e}");
    assert!(e.get("ai").is_none(), "{e}");
    assert!(s.upstream_requests().await.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("canary-wrong-key"), "{text}");
}

#[tokio::test]
async fn a_plugin_on_a_route_runs_in_kong_priority_order_whatever_its_config_order() {
    // file-log (9) is listed before key-auth (1250): the 401 still comes first, and is logged.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let p = path.to_str().unwrap().to_owned();
    let s = Stack::start(move |m| {
        let mut snap = recipe(m);
        snap.plugins.insert(
            0,
            plugin(json!({"id": "p-file-log", "name": "file-log", "route": {"id": ROUTE_ID}, "config": {"path": p}})),
        );
        snap
    })
    .await;
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .json(&hello("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(entries(&path, 1).await[0]["response"]["status"], 401);
}

#[tokio::test]
async fn a_full_disk_drops_entries_counts_them_and_never_fails_a_request() {
    // `/dev/full` refuses every write with ENOSPC, as a full disk does.
    let s = recipe_with_file_log(Path::new("/dev/full")).await;
    let drops = || {
        embedded_gateway::metrics::METRICS
            .log_dropped
            .with_label_values(&["file-log"])
            .get()
    };
    let before = drops();
    for _ in 0..5 {
        let res = s.chat(hello("fast")).await;
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    for _ in 0..100 {
        if drops() - before >= 5 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the writes that failed were not counted");
}

fn sse_chunks(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect()
}

#[tokio::test]
async fn a_stream_whose_client_did_not_ask_for_usage_still_logs_the_exact_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_with_file_log(&path).await;
    let ask = |include: bool| {
        let mut b = json!({"model": "fast", "stream": true,
            "messages": [{"role": "user", "content": "Tell me about Lyon"}]});
        if include {
            b["stream_options"] = json!({"include_usage": true});
        }
        b
    };
    // The provider's figures for this prompt, as a client that asks sees them.
    let res = s.chat(ask(true)).await;
    let asked = sse_chunks(&res.text().await.unwrap());
    let want = asked.iter().find(|c| c["usage"].is_object()).unwrap()["usage"].clone();
    // A client that does not ask: no usage chunk reaches it, yet the entry has the usage.
    let res = s.chat(ask(false)).await;
    assert_eq!(res.status(), 200);
    let chunks = sse_chunks(&res.text().await.unwrap());
    assert!(!chunks.is_empty());
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "{chunks:?}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty())
    );
    let sent = s.upstream_requests().await;
    assert_eq!(
        sent[1]["body"]["stream_options"]["include_usage"], true,
        "{:?}",
        sent[1]
    );
    let e = &entries(&path, 2).await[1];
    let usage = &e["ai"]["proxy"]["usage"];
    assert_eq!(usage["prompt_tokens"], want["prompt_tokens"]);
    assert_eq!(usage["completion_tokens"], want["completion_tokens"]);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn log_payloads_logs_the_request_and_the_answer_and_never_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_logging(&path, json!({"log_statistics": true, "log_payloads": true})).await;
    // A careless client pastes both the gateway key and the provider token into its prompt.
    let prompt = format!("my keys are {DEMO_KEY} and {PROVIDER_TOKEN}, what is 2+2?");
    let body = json!({"model": "fast", "messages": [{"role": "user", "content": prompt}]});
    let res = s
        .chat_with(
            &[("authorization", "Bearer canary-client-bearer-91")],
            body.clone(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let res = s.chat(streamed).await;
    let text: String = sse_chunks(&res.text().await.unwrap())
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!text.is_empty());

    let es = entries(&path, 2).await;
    let payload = &es[0]["ai"]["proxy"]["payload"];
    let logged_req: Value = serde_json::from_str(payload["request"].as_str().unwrap()).unwrap();
    assert_eq!(logged_req["model"], "fast");
    assert_eq!(
        logged_req["messages"][0]["content"],
        "my keys are REDACTED and Bearer REDACTED, what is 2+2?"
    );
    let logged_res: Value = serde_json::from_str(payload["response"].as_str().unwrap()).unwrap();
    assert_eq!(logged_res["id"], answer["id"]);
    // The mock echoes the prompt: the answer's copy of the credentials is scrubbed too.
    assert_eq!(
        logged_res["choices"][0]["message"]["content"],
        "You said: my keys are REDACTED and Bearer [redacted], what is 2+2?"
    );
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains(DEMO_KEY)
    );
    assert_eq!(es[0]["ai"]["proxy"]["meta"]["alias"], "fast");
    // A stream's payload is its text, the concatenated deltas (credentials scrubbed).
    let scrubbed = text
        .replace(PROVIDER_TOKEN, "REDACTED")
        .replace(DEMO_KEY, "REDACTED");
    assert_eq!(es[1]["ai"]["proxy"]["payload"]["response"], scrubbed);
    let file = std::fs::read_to_string(&path).unwrap();
    for canary in [
        DEMO_KEY,
        "sk-test-provider-token",
        "canary-client-bearer-91",
    ] {
        assert!(!file.contains(canary), "{canary} in {file}");
    }
}

#[tokio::test]
async fn without_log_payloads_no_payload_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let s = recipe_with_file_log(&path).await;
    let res = s.chat(hello("fast")).await;
    res.bytes().await.unwrap();
    let e = &entries(&path, 1).await[0];
    assert!(e["ai"]["proxy"].get("payload").is_none(), "{e}");
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("capital of France")
    );
}
