//! ai-proxy-advanced through the real proxy against `mock-llm`: alias routing, credential
//! injection, round-robin fallback, 413/400/502/504, provider errors, Anthropic translation
//! (tools, streaming), mid-stream failures and client disconnects.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::proxy_harness::*;

fn openai_target(mock: SocketAddr, alias: Option<&str>, name: Option<&str>) -> Value {
    let mut model = json!({"provider": "openai", "options": {"upstream_url": format!("http://{mock}/v1/chat/completions")}});
    if let Some(a) = alias {
        model["model_alias"] = json!(a);
    }
    if let Some(n) = name {
        model["name"] = json!(n);
    }
    json!({"route_type": "llm/v1/chat", "model": model, "auth": {"header_name": "Authorization", "header_value": PROVIDER_TOKEN}})
}

fn anthropic_target(mock: SocketAddr) -> Value {
    json!({"route_type": "llm/v1/chat",
        "auth": {"header_name": "x-api-key", "header_value": "sk-ant-test-key"},
        "model": {"provider": "anthropic", "name": "claude-3-5-haiku", "model_alias": "claude",
                  "options": {"anthropic_version": "2023-06-01", "upstream_url": format!("http://{mock}/v1/messages")}}})
}

async fn error_body(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    assert_request_id(&res);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    assert!(v["error"].get("code").is_some(), "{v}");
    v
}

#[tokio::test]
async fn the_demo_flow_routes_aliases_injects_credentials_and_blocks_bad_keys() {
    let s = Stack::start(recipe).await;
    for (alias, model) in [("fast", "openai/gpt-4o-mini"), ("smart", "openai/gpt-4o")] {
        let res = s.chat(hello(alias)).await;
        assert_eq!(res.status(), 200);
        assert_request_id(&res);
        assert_eq!(res.headers()["x-kong-llm-model"], model);
        for h in ["x-kong-upstream-latency", "x-kong-proxy-latency"] {
            let v = res.headers()[h].to_str().unwrap();
            assert!(v.parse::<u64>().is_ok(), "{h}: {v}");
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "The capital of France is Paris."
        );
        assert_eq!(body["model"], model.trim_start_matches("openai/"));
    }
    let bad = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", "not-a-real-key")
        .json(&hello("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.text().await.unwrap(),
        r#"{"message":"No credentials found for given apikey"}"#
    );
    let seen = s.upstream_requests().await;
    assert_eq!(
        seen.len(),
        2,
        "exactly the two good requests reached the provider"
    );
    for (r, model) in seen.iter().zip(["gpt-4o-mini", "gpt-4o"]) {
        assert_eq!(r["headers"]["authorization"], PROVIDER_TOKEN);
        assert!(r["headers"].get("apikey").is_none());
        assert_eq!(r["headers"]["x-consumer-username"], "demo-app");
        assert_eq!(r["body"]["model"], model);
        assert_eq!(r["path"], "/v1/chat/completions");
    }
}

#[tokio::test]
async fn no_alias_match_falls_back_to_weighted_round_robin() {
    let s = Stack::start(recipe).await;
    let mut headers = Vec::new();
    for _ in 0..4 {
        let res = s.chat(hello("unknown-alias")).await;
        assert_eq!(res.status(), 200);
        headers.push(
            res.headers()["x-kong-llm-model"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        headers,
        [
            "openai/gpt-4o-mini",
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            "openai/gpt-4o"
        ]
    );
}

#[tokio::test]
async fn a_target_without_a_model_name_uses_the_body_model() {
    let s = Stack::start(|m| {
        recipe_with(
            json!({}),
            json!({"targets": [openai_target(m, None, None)]}),
        )
    })
    .await;
    let res = s.chat(hello("gpt-4.1-nano")).await;
    assert_eq!(res.headers()["x-kong-llm-model"], "openai/gpt-4.1-nano");
    assert_eq!(
        s.upstream_requests().await[0]["body"]["model"],
        "gpt-4.1-nano"
    );
}

#[tokio::test]
async fn allow_override_lets_the_client_credential_through_and_query_params_are_injected() {
    let s = Stack::start(|m| {
        let mut t = openai_target(m, Some("fast"), Some("gpt-4o-mini"));
        t["auth"]["allow_override"] = json!(true);
        let mut q = openai_target(m, Some("q"), Some("gpt-4o"));
        q["auth"] =
            json!({"param_name": "key", "param_value": "qkey-123", "param_location": "query"});
        recipe_with(json!({}), json!({"targets": [t, q]}))
    })
    .await;
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", DEMO_KEY)
        .header("authorization", "Bearer client-own-key")
        .json(&hello("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions?key=evil"))
        .header("apikey", DEMO_KEY)
        .json(&hello("q"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the mock wants a bearer token; the query target sends none"
    );
    let seen = s.upstream_requests().await;
    assert_eq!(seen[0]["headers"]["authorization"], "Bearer client-own-key");
    assert_eq!(seen[1]["query"], "key=qkey-123");
}

#[tokio::test]
async fn oversized_bodies_get_413_without_calling_the_upstream() {
    let s = Stack::start(|m| {
        let mut ai = recipe_ai_config(m);
        ai["max_request_body_size"] = json!(64);
        recipe_with(json!({}), ai)
    })
    .await;
    let mut body = hello("fast");
    body["messages"][0]["content"] = json!("x".repeat(200));
    let v = error_body(s.chat(body).await, 413).await;
    assert_eq!(v["error"]["code"], "request_too_large");
    assert!(s.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn bad_json_missing_messages_and_denied_streaming_are_400s() {
    let s = Stack::start(|m| {
        let mut ai = recipe_ai_config(m);
        ai["response_streaming"] = json!("deny");
        recipe_with(json!({}), ai)
    })
    .await;
    let url = s.url("/basic-llm-routing/chat/completions");
    let raw = s
        .http
        .post(&url)
        .header("apikey", DEMO_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let v = error_body(raw, 400).await;
    assert!(v["error"]["message"].as_str().unwrap().contains("bad JSON"));
    let v = error_body(s.chat(json!({"model": "fast"})).await, 400).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("valid prompts")
    );
    let mut streaming = hello("fast");
    streaming["stream"] = json!(true);
    let v = error_body(s.chat(streaming).await, 400).await;
    assert_eq!(
        v["error"]["message"],
        "response streaming is not enabled for this LLM"
    );
    assert!(s.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = Stack::start(|m| {
        let mut down = openai_target(m, Some("down"), Some("gpt-4o"));
        down["model"]["options"]["upstream_url"] = json!(format!("http://{closed}/v1/chat/completions"));
        let slow = openai_target(m, Some("slow"), Some("gpt-4o"));
        recipe_with(json!({}), json!({"targets": [down, slow], "balancer": {"read_timeout": 150, "connect_timeout": 100, "write_timeout": 100}}))
    })
    .await;
    let v = error_body(s.chat(hello("down")).await, 502).await;
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", DEMO_KEY)
        .header("x-mock-fault", "slow")
        .header("x-mock-delay-ms", "2000")
        .json(&hello("slow"))
        .send()
        .await
        .unwrap();
    let v = error_body(res, 504).await;
    assert_eq!(v["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn provider_errors_pass_through_with_status_in_the_openai_envelope() {
    let s = Stack::start(|m| {
        recipe_with(
            json!({}),
            json!({"targets": [openai_target(m, Some("gpt"), None), anthropic_target(m)]}),
        )
    })
    .await;
    // A target without `model.name` forwards the body's model, so the mock's fault models work.
    let res = s.chat(hello("gpt")).await;
    assert_eq!(res.status(), 200);
    let res = s.chat(hello("mock-429")).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(res.headers().get("x-kong-llm-model").is_none());
    let v = error_body(res, 429).await;
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    // The 429's `Retry-After: 1` takes the openai target out for a second; wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // No alias matches `mock-*`: the round-robin takes turns, so the next unmatched request
    // goes to the anthropic target and the one after it back to openai.
    assert_eq!(
        s.chat(hello("unmatched")).await.headers()["x-kong-llm-model"],
        "anthropic/claude-3-5-haiku"
    );
    let v = error_body(s.chat(hello("mock-500")).await, 500).await;
    assert_eq!(v["error"]["type"], "server_error");
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", DEMO_KEY)
        .header("x-mock-fault", "429")
        .json(&hello("claude"))
        .send()
        .await
        .unwrap();
    let v = error_body(res, 429).await;
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "rate_limit_error");
}

#[tokio::test]
async fn provider_keys_never_appear_in_responses() {
    let s = Stack::start(|m| {
        let mut t = openai_target(m, None, None);
        t["auth"]["header_name"] = json!("x-wrong-header");
        recipe_with(json!({}), json!({"targets": [t]}))
    })
    .await;
    let res = s.chat(hello("gpt-4o")).await;
    let text = format!("{:?}{}", res.headers().clone(), res.text().await.unwrap());
    assert!(!text.contains("sk-test-provider-token-123"), "{text}");
}

#[tokio::test]
async fn anthropic_requests_and_responses_are_translated() {
    let s =
        Stack::start(|m| recipe_with(json!({}), json!({"targets": [anthropic_target(m)]}))).await;
    let body = json!({"model": "claude", "stop": ["END"], "temperature": 0.2, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "What is the capital of France?"}]});
    let res = s.chat(body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-kong-llm-model"],
        "anthropic/claude-3-5-haiku"
    );
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "claude-3-5-haiku");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let seen = s.upstream_requests().await.remove(0);
    assert_eq!(seen["path"], "/v1/messages");
    assert_eq!(seen["headers"]["x-api-key"], "sk-ant-test-key");
    assert_eq!(seen["headers"]["anthropic-version"], "2023-06-01");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the SDK's dummy bearer is not forwarded"
    );
    assert_eq!(seen["body"]["system"], "Be brief.\n\nBe kind.");
    assert_eq!(seen["body"]["max_tokens"], 4096);
    assert_eq!(seen["body"]["stop_sequences"], json!(["END"]));
    assert_eq!(seen["body"]["temperature"], 0.2);
}

#[tokio::test]
async fn anthropic_tool_calls_translate_both_ways() {
    let s =
        Stack::start(|m| recipe_with(json!({}), json!({"targets": [anthropic_target(m)]}))).await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"input": {"type": "string"}}}}}]);
    let res = s
        .chat(
            json!({"model": "claude", "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "Paris weather"}]}),
        )
        .await;
    let out: Value = res.json().await.unwrap();
    let call = out["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"input": "Paris weather"}));
    let follow = json!({"model": "claude", "tools": tools, "messages": [
        {"role": "user", "content": "Paris weather"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]});
    let out: Value = s.chat(follow).await.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "The tool returned: sunny"
    );
    let seen = s.upstream_requests().await;
    assert_eq!(seen[0]["body"]["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        seen[1]["body"]["messages"][1]["content"][0]["type"],
        "tool_use"
    );
    assert_eq!(
        seen[1]["body"]["messages"][2]["content"][0]["type"],
        "tool_result"
    );
}

async fn sse_frames(res: reqwest::Response) -> Vec<String> {
    let text = res.text().await.unwrap_or_default();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn streams_become_openai_chunks_for_both_providers() {
    let s = Stack::start(|m| recipe_with(json!({}), json!({"targets": [openai_target(m, Some("fast"), Some("gpt-4o-mini")), anthropic_target(m)]}))).await;
    for alias in ["fast", "claude"] {
        let mut body = hello(alias);
        body["stream"] = json!(true);
        let res = s.chat(body).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let frames = sse_frames(res).await;
        assert_eq!(frames.last().unwrap(), "data: [DONE]", "{alias}");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "The capital of France is Paris.", "{alias}");
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop",
            "{alias}"
        );
    }
}

#[tokio::test]
async fn response_streaming_always_streams_without_the_client_asking() {
    let s = Stack::start(|m| {
        let mut ai = recipe_ai_config(m);
        ai["response_streaming"] = json!("always");
        recipe_with(json!({}), ai)
    })
    .await;
    let res = s.chat(hello("fast")).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(sse_frames(res).await.last().unwrap(), "data: [DONE]");
    assert_eq!(s.upstream_requests().await[0]["body"]["stream"], true);
}

#[tokio::test]
async fn a_mid_stream_reset_ends_the_stream_with_an_error_event() {
    let s = Stack::start(|m| recipe_with(json!({}), json!({"targets": [openai_target(m, Some("fast"), Some("gpt-4o-mini")), anthropic_target(m)]}))).await;
    for alias in ["fast", "claude"] {
        let mut body = hello(alias);
        body["stream"] = json!(true);
        let res = s
            .http
            .post(s.url("/basic-llm-routing/chat/completions"))
            .header("apikey", DEMO_KEY)
            .header("x-mock-fault", "reset")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "the first events arrived before the reset"
        );
        let frames = sse_frames(res).await;
        let last: Value =
            serde_json::from_str(frames.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "stream_interrupted",
            "{alias}: {frames:?}"
        );
        assert!(!frames.iter().any(|f| f == "data: [DONE]"));
    }
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_stream() {
    let s = Stack::start(recipe).await;
    let mut body = hello("fast");
    body["stream"] = json!(true);
    let res = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", DEMO_KEY)
        .header("x-mock-chunk-delay-ms", "150")
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(stream);
    let mut aborted = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        aborted = s.mock_stats().await["streams_aborted"].as_u64().unwrap();
        if aborted > 0 {
            break;
        }
    }
    assert_eq!(aborted, 1, "the upstream stream was dropped");
    assert_eq!(s.mock_stats().await["streams_completed"], 0);
}

#[tokio::test]
async fn anthropic_streamed_tool_calls_and_usage_become_openai_deltas() {
    let s =
        Stack::start(|m| recipe_with(json!({}), json!({"targets": [anthropic_target(m)]}))).await;
    let body = json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "Paris weather"}]});
    let frames = sse_frames(s.chat(body).await).await;
    assert_eq!(frames.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let first_call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    assert_eq!(first_call, Some("lookup"));
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"input": "Paris weather"})
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 0
            && usage["completion_tokens"].as_u64().unwrap() > 0
    );
}
