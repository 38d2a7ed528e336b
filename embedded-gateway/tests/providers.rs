//! Every provider through the real proxy against `mock-llm`, speaking each provider's own
//! wire format: plain chat, a system message, streaming, a tool call, and upstream 429 and
//! 500 — the same scenarios for each. Provider endpoints come from `--upstream-override`
//! bases (so Gantry builds the Azure, Gemini and Bedrock paths itself) or `upstream_url`.

use std::collections::HashMap;
use std::net::SocketAddr;

use embedded_gateway::proxy::{Proxy, ProxyOptions};
use serde_json::{Value, json};

use crate::proxy_harness::*;

const ANSWER: &str = "The capital of France is Paris.";
const QUESTION: &str = "What is the capital of France?";
pub const GEMINI_KEY: &str = "AIzaSy-test-gemini-key-0123456789";
pub const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Cases whose provider speaks OpenAI Chat Completions upstream.
const OPENAI_WIRE: [&str; 5] = [
    "openai",
    "mistral-openai",
    "huggingface",
    "llama2-openai",
    "vllm",
];

/// One provider configuration under test.
pub struct Case {
    pub name: &'static str,
    pub target: Value,
    /// Tool calls are refused with a 400 naming the provider.
    pub tools_unsupported: bool,
}

fn target(provider: &str, name: &str, options: Value, auth: Value) -> Value {
    json!({"route_type": "llm/v1/chat", "auth": auth,
           "model": {"provider": provider, "name": name, "options": options}})
}

fn bearer() -> Value {
    json!({"header_name": "Authorization", "header_value": PROVIDER_TOKEN})
}

/// The provider matrix, pointed at the mock on `mock`.
pub fn cases(mock: SocketAddr) -> Vec<Case> {
    let url = |path: &str| format!("http://{mock}{path}");
    let case = |name, target| Case {
        name,
        target,
        tools_unsupported: false,
    };
    vec![
        case(
            "openai",
            target("openai", "gpt-4o-mini", json!({}), bearer()),
        ),
        case(
            "anthropic",
            target(
                "anthropic",
                "claude-3-5-haiku",
                json!({"anthropic_version": "2023-06-01"}),
                json!({"header_name": "x-api-key", "header_value": "sk-ant-test"}),
            ),
        ),
        case(
            "azure",
            target(
                "azure",
                "gpt-4o",
                json!({"azure_instance": "my-res", "azure_deployment_id": "gpt4o-prod", "azure_api_version": "2024-10-21"}),
                json!({"header_name": "api-key", "header_value": "azure-test-key"}),
            ),
        ),
        case(
            "bedrock",
            target(
                "bedrock",
                "anthropic.claude-3-haiku-20240307-v1:0",
                json!({"bedrock": {"aws_region": "us-east-1"}}),
                json!({"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": AWS_SECRET}),
            ),
        ),
        case(
            "gemini",
            target(
                "gemini",
                "gemini-2.0-flash",
                json!({}),
                json!({"header_name": "x-goog-api-key", "header_value": GEMINI_KEY}),
            ),
        ),
        case(
            "gemini-vertex",
            target(
                "gemini",
                "gemini-1.5-pro",
                json!({"gemini": {"api_endpoint": "us-central1-aiplatform.googleapis.com", "project_id": "my-proj", "location_id": "us-central1"}}),
                json!({"header_name": "Authorization", "header_value": "Bearer ya29.test-token"}),
            ),
        ),
        case(
            "mistral-openai",
            target(
                "mistral",
                "mistral-small-latest",
                json!({"mistral_format": "openai"}),
                bearer(),
            ),
        ),
        case(
            "mistral-ollama",
            target(
                "mistral",
                "mistral",
                json!({"mistral_format": "ollama", "upstream_url": url("/api/chat")}),
                json!({}),
            ),
        ),
        case(
            "cohere",
            target("cohere", "command-r-plus", json!({}), bearer()),
        ),
        case(
            "huggingface",
            target(
                "huggingface",
                "meta-llama/Llama-3.1-8B-Instruct",
                json!({"huggingface": {"use_cache": false, "wait_for_model": true}}),
                bearer(),
            ),
        ),
        case(
            "llama2-openai",
            target(
                "llama2",
                "llama2",
                json!({"llama2_format": "openai", "upstream_url": url("/v1/chat/completions")}),
                bearer(),
            ),
        ),
        case(
            "llama2-ollama",
            target(
                "llama2",
                "llama2",
                json!({"llama2_format": "ollama", "upstream_url": url("/api/chat")}),
                json!({}),
            ),
        ),
        Case {
            name: "llama2-raw",
            target: target(
                "llama2",
                "llama2",
                json!({"llama2_format": "raw", "upstream_url": url("/generate")}),
                json!({}),
            ),
            tools_unsupported: true,
        },
        case(
            "ollama",
            target(
                "ollama",
                "llama3.2",
                json!({"upstream_url": url("/api/chat")}),
                json!({}),
            ),
        ),
        case(
            "vllm",
            target(
                "vllm",
                "Qwen/Qwen2.5-7B-Instruct",
                json!({"upstream_url": url("/v1/chat/completions")}),
                bearer(),
            ),
        ),
    ]
}

/// Gateway + mock with every provider's public base overridden to the mock.
pub async fn start_with(ai: impl Fn(SocketAddr) -> Value) -> Stack {
    let mock = start_mock().await;
    let base = format!("http://{mock}");
    let overrides: HashMap<String, String> = [
        "openai",
        "anthropic",
        "azure",
        "bedrock",
        "gemini",
        "mistral",
        "cohere",
        "huggingface",
    ]
    .into_iter()
    .map(|p| (p.to_owned(), base.clone()))
    .collect();
    let proxy = Proxy::new(ProxyOptions {
        upstream_overrides: overrides,
        ..ProxyOptions::default()
    });
    proxy.apply(&recipe_with(
        json!({"key_names": ["apikey"], "hide_credentials": true}),
        ai(mock),
    ));
    let addr = start_proxy(proxy.clone()).await;
    Stack {
        proxy,
        addr,
        mock,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// One stack per provider case.
async fn each_case(mut f: impl AsyncFnMut(&Case, &Stack)) {
    let probe = start_mock().await;
    for i in 0..cases(probe).len() {
        let s = start_with(|mock| json!({"targets": [cases(mock).swap_remove(i).target]})).await;
        let case = cases(s.mock).swap_remove(i);
        f(&case, &s).await;
    }
}

fn chat_body(extra: Value) -> Value {
    let mut b = json!({"messages": [{"role": "user", "content": QUESTION}]});
    if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
        b.extend(e);
    }
    b
}

async fn post(s: &Stack, body: Value, fault: Option<&str>) -> reqwest::Response {
    let mut r = s
        .http
        .post(s.url("/basic-llm-routing/chat/completions"))
        .header("apikey", DEMO_KEY)
        .json(&body);
    if let Some(f) = fault {
        r = r.header("x-mock-fault", f);
    }
    r.send().await.unwrap()
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_provider_answers_a_plain_chat_in_the_openai_format() {
    each_case(async |c, s| {
        let res = post(s, chat_body(json!({})), None).await;
        assert_eq!(res.status(), 200, "{}", c.name);
        assert_request_id(&res);
        let llm_model = res.headers()["x-kong-llm-model"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{}: {body}", c.name);
        assert_eq!(
            body["choices"][0]["message"]["role"], "assistant",
            "{}",
            c.name
        );
        assert_eq!(
            body["choices"][0]["message"]["content"], ANSWER,
            "{}: {body}",
            c.name
        );
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{}: {body}",
            c.name
        );
        assert!(
            body["id"].as_str().is_some_and(|i| !i.is_empty()),
            "{}",
            c.name
        );
        assert!(
            body["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
            "{}: {body}",
            c.name
        );
        let provider = c.target["model"]["provider"].as_str().unwrap();
        let name = c.target["model"]["name"].as_str().unwrap();
        assert_eq!(llm_model, format!("{provider}/{name}"), "{}", c.name);
    })
    .await;
}

#[tokio::test]
async fn every_provider_receives_the_system_message_in_its_own_shape() {
    each_case(async |c, s| {
        let body = json!({"messages": [
            {"role": "system", "content": "You are terse and answer in one sentence."},
            {"role": "user", "content": QUESTION}]});
        let res = post(s, body, None).await;
        assert_eq!(res.status(), 200, "{}", c.name);
        let out: Value = res.json().await.unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"], ANSWER,
            "{}",
            c.name
        );
        let seen = s.upstream_requests().await;
        let sent = &seen.last().unwrap()["body"];
        assert!(
            sent.to_string()
                .contains("You are terse and answer in one sentence."),
            "{}: {sent}",
            c.name
        );
        match c.name {
            "anthropic" => assert_eq!(sent["system"], "You are terse and answer in one sentence."),
            "bedrock" => assert_eq!(
                sent["system"][0]["text"],
                "You are terse and answer in one sentence."
            ),
            "gemini" | "gemini-vertex" => assert_eq!(
                sent["systemInstruction"]["parts"][0]["text"],
                "You are terse and answer in one sentence."
            ),
            "llama2-raw" => assert!(sent["inputs"].as_str().unwrap().contains("<<SYS>>")),
            _ => assert_eq!(sent["messages"][0]["role"], "system", "{}", c.name),
        }
    })
    .await;
}

#[tokio::test]
async fn every_provider_streams_openai_chunks_ending_with_finish_reason_usage_and_done() {
    each_case(async |c, s| {
        let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let res = post(s, body, None).await;
        assert_eq!(res.status(), 200, "{}", c.name);
        assert_eq!(
            res.headers()["content-type"],
            "text/event-stream",
            "{}",
            c.name
        );
        let text = res.text().await.unwrap();
        let lines = data_lines(&text);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("[DONE]"),
            "{}: {text}",
            c.name
        );
        let chunks: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, ANSWER, "{}: {text}", c.name);
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk"),
            "{}",
            c.name
        );
        let finish: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"][0]["finish_reason"].is_string())
            .collect();
        assert_eq!(finish.len(), 1, "{}: {text}", c.name);
        assert_eq!(
            finish[0]["choices"][0]["finish_reason"], "stop",
            "{}",
            c.name
        );
        let usage = &chunks.last().unwrap()["usage"];
        assert!(
            usage["completion_tokens"].as_u64().unwrap_or(0) > 0,
            "{}: {text}",
            c.name
        );
    })
    .await;
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}}}])
}

#[tokio::test]
async fn every_provider_that_has_tools_returns_an_openai_tool_call() {
    each_case(async |c, s| {
        let res = post(s, chat_body(json!({"tools": weather_tool()})), None).await;
        if c.tools_unsupported {
            assert_eq!(res.status(), 400, "{}", c.name);
            let e: Value = res.json().await.unwrap();
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("does not support tools"),
                "{e}"
            );
            assert_eq!(e["error"]["code"], "unsupported_feature");
            return;
        }
        assert_eq!(res.status(), 200, "{}", c.name);
        let body: Value = res.json().await.unwrap();
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function", "{}: {body}", c.name);
        assert_eq!(
            call["function"]["name"], "get_weather",
            "{}: {body}",
            c.name
        );
        assert!(
            call["id"].as_str().is_some_and(|i| !i.is_empty()),
            "{}: {body}",
            c.name
        );
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"input": QUESTION}), "{}", c.name);
        assert_eq!(
            body["choices"][0]["finish_reason"], "tool_calls",
            "{}: {body}",
            c.name
        );
        // The tool result goes back in the provider's shape and the answer uses it.
        let follow = json!({"tools": weather_tool(), "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]});
        let res = post(s, follow, None).await;
        assert_eq!(res.status(), 200, "{}", c.name);
        let body: Value = res.json().await.unwrap();
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        assert!(text.contains("sunny"), "{}: {body}", c.name);
    })
    .await;
}

#[tokio::test]
async fn every_provider_streams_tool_calls_as_openai_deltas() {
    each_case(async |c, s| {
        if c.tools_unsupported {
            return;
        }
        let res = post(
            s,
            chat_body(json!({"stream": true, "tools": weather_tool()})),
            None,
        )
        .await;
        assert_eq!(res.status(), 200, "{}", c.name);
        let text = res.text().await.unwrap();
        let lines = data_lines(&text);
        let chunks: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let name = chunks
            .iter()
            .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
        assert_eq!(name, Some("get_weather"), "{}: {text}", c.name);
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"input": QUESTION}),
            "{}",
            c.name
        );
        let finish = chunks
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"), "{}: {text}", c.name);
    })
    .await;
}

#[tokio::test]
async fn every_provider_passes_an_upstream_429_and_500_as_openai_errors() {
    each_case(async |c, s| {
        for (fault, status) in [("429", 429), ("500", 500)] {
            let res = post(s, chat_body(json!({})), Some(fault)).await;
            assert_eq!(res.status(), status, "{} {fault}", c.name);
            assert_request_id(&res);
            assert!(
                res.headers().get("x-kong-llm-model").is_none(),
                "{}",
                c.name
            );
            let e: Value = res.json().await.unwrap();
            let message = e["error"]["message"].as_str().unwrap_or("");
            assert!(!message.is_empty(), "{} {fault}: {e}", c.name);
            assert!(e["error"]["type"].is_string(), "{} {fault}: {e}", c.name);
            assert!(e["error"].get("code").is_some(), "{} {fault}: {e}", c.name);
            // OpenAI-wire providers keep OpenAI's own error type; the rest are mapped.
            if status == 429 && !OPENAI_WIRE.contains(&c.name) {
                assert_eq!(e["error"]["type"], "rate_limit_error", "{}: {e}", c.name);
            }
        }
        // A streamed request that fails upstream is a plain JSON error too.
        let res = post(s, chat_body(json!({"stream": true})), Some("500")).await;
        assert_eq!(res.status(), 500, "{}", c.name);
    })
    .await;
}
