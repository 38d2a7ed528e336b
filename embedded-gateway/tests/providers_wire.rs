//! What each provider puts on the wire, as `mock-llm` recorded it: Azure's deployment URL and
//! `api-key`, Bedrock's escaped model path and SigV4 headers, Gemini's key placement (and
//! that the key never reaches a client), Hugging Face's option headers; and the native
//! `llm_format` passthrough (Anthropic Messages in and out, streaming included).

use serde_json::{Value, json};

use crate::providers::{AWS_SECRET, GEMINI_KEY, cases, start_with};
use crate::proxy_harness::*;

fn pick(name: &str) -> impl Fn(std::net::SocketAddr) -> Value {
    let name = name.to_owned();
    move |mock| {
        let c = cases(mock).into_iter().find(|c| c.name == name).unwrap();
        json!({"targets": [c.target]})
    }
}

async fn last_upstream(s: &Stack) -> Value {
    s.upstream_requests()
        .await
        .pop()
        .expect("an upstream request")
}

#[tokio::test]
async fn azure_calls_the_deployment_url_with_api_key_and_api_version() {
    let s = start_with(pick("azure")).await;
    assert_eq!(s.chat(hello("anything")).await.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(r["path"], "/openai/deployments/gpt4o-prod/chat/completions");
    assert_eq!(r["query"], "api-version=2024-10-21");
    assert_eq!(r["headers"]["api-key"], "azure-test-key");
    assert!(r["headers"].get("authorization").is_none(), "{r}");
    assert_eq!(r["body"]["model"], "gpt-4o");
}

#[tokio::test]
async fn bedrock_signs_with_sigv4_and_escapes_the_model_id() {
    let s = start_with(pick("bedrock")).await;
    let res = s.chat(hello("x")).await;
    assert_eq!(res.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(
        r["path"],
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let auth = r["headers"]["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    assert!(r["headers"]["x-amz-date"].is_string());
    assert!(!r.to_string().contains(AWS_SECRET));
    assert_eq!(
        r["body"]["messages"][0]["content"][0]["text"],
        "What is the capital of France?"
    );
}

#[tokio::test]
async fn bedrock_without_credentials_is_a_500_that_says_so() {
    let s = start_with(|mock| {
        let mut t = cases(mock)
            .into_iter()
            .find(|c| c.name == "bedrock")
            .unwrap()
            .target;
        t["auth"] = json!({});
        json!({"targets": [t]})
    })
    .await;
    // No AWS_* variables are set for the test process's signer unless the environment has them.
    if std::env::var("AWS_ACCESS_KEY_ID").is_ok() {
        return;
    }
    let res = s.chat(hello("x")).await;
    assert_eq!(res.status(), 500);
    let e: Value = res.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials"),
        "{e}"
    );
    assert!(s.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn gemini_calls_generate_content_with_the_key_header_and_vertex_with_a_bearer_token() {
    let s = start_with(pick("gemini")).await;
    assert_eq!(s.chat(hello("x")).await.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(r["path"], "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(r["headers"]["x-goog-api-key"], GEMINI_KEY);
    assert_eq!(r["body"]["contents"][0]["role"], "user");
    let s = start_with(pick("gemini-vertex")).await;
    assert_eq!(s.chat(hello("x")).await.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(
        r["path"],
        "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent"
    );
    assert_eq!(r["headers"]["authorization"], "Bearer ya29.test-token");
}

#[tokio::test]
async fn a_gemini_query_key_is_sent_but_never_shown_to_the_client() {
    let param_auth =
        json!({"param_name": "key", "param_value": GEMINI_KEY, "param_location": "query"});
    let s = start_with(|mock| {
        let mut t = cases(mock)
            .into_iter()
            .find(|c| c.name == "gemini")
            .unwrap()
            .target;
        t["auth"] = param_auth.clone();
        json!({"targets": [t]})
    })
    .await;
    let res = s
        .chat(json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains(GEMINI_KEY));
    let r = last_upstream(&s).await;
    assert_eq!(
        r["path"],
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    );
    let query = r["query"].as_str().unwrap();
    assert!(
        query.contains("alt=sse") && query.contains(&format!("key={GEMINI_KEY}")),
        "{query}"
    );
    // An unreachable provider: the error names the provider, never the URL with the key.
    // A socket bound but never listening: connects are refused, and the port stays ours (a
    // freed port could be taken by a parallel test's server).
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let dead = closed.local_addr().unwrap().as_socket().unwrap();
    let s = start_with(move |_| {
        json!({"targets": [{"route_type": "llm/v1/chat", "auth": param_auth.clone(),
            "model": {"provider": "gemini", "name": "gemini-2.0-flash",
                      "options": {"upstream_url": format!("http://{dead}")}}}]})
    })
    .await;
    let res = s.chat(hello("x")).await;
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    assert!(!text.contains(GEMINI_KEY), "{text}");
    assert!(text.contains("gemini"), "{text}");
}

#[tokio::test]
async fn huggingface_uses_the_router_with_option_headers() {
    let s = start_with(pick("huggingface")).await;
    assert_eq!(s.chat(hello("x")).await.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(r["path"], "/v1/chat/completions");
    assert_eq!(r["headers"]["x-use-cache"], "false");
    assert_eq!(r["headers"]["x-wait-for-model"], "true");
    assert_eq!(r["body"]["model"], "meta-llama/Llama-3.1-8B-Instruct");
}

#[tokio::test]
async fn cohere_speaks_chat_v2_and_ollama_gets_an_explicit_stream_flag() {
    let s = start_with(pick("cohere")).await;
    assert_eq!(s.chat(hello("x")).await.status(), 200);
    let r = last_upstream(&s).await;
    assert_eq!(r["path"], "/v2/chat");
    assert_eq!(
        r["body"]["messages"][0]["content"],
        "What is the capital of France?"
    );
    let s = start_with(pick("ollama")).await;
    assert_eq!(s.chat(hello("x")).await.status(), 200);
    assert_eq!(last_upstream(&s).await["body"]["stream"], false);
}

#[tokio::test]
async fn an_image_url_bedrock_cannot_fetch_is_a_400_naming_provider_and_feature() {
    let s = start_with(pick("bedrock")).await;
    let body = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let res = s.chat(body).await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "the bedrock provider does not support image URLs (send images as base64 data URLs)"
    );
    assert!(s.upstream_requests().await.is_empty());
}

fn native_anthropic(mock: std::net::SocketAddr) -> Value {
    let _ = mock;
    json!({"llm_format": "anthropic", "targets": [{"route_type": "llm/v1/chat",
        "auth": {"header_name": "x-api-key", "header_value": "sk-ant-configured"},
        "model": {"provider": "anthropic", "name": "claude-3-5-haiku",
                  "options": {"anthropic_version": "2023-06-01"}}}]})
}

async fn messages_call(s: &Stack, body: Value) -> reqwest::Response {
    s.http
        .post(s.url("/basic-llm-routing/v1/messages"))
        .header("apikey", DEMO_KEY)
        .header("x-api-key", "sk-ant-client-should-be-replaced")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn native_anthropic_requests_pass_through_untranslated() {
    let s = start_with(native_anthropic).await;
    let body = json!({"model": "claude-whatever", "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let res = messages_call(&s, body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["type"], "message");
    assert_eq!(out["content"][0]["text"], "The capital of France is Paris.");
    let r = last_upstream(&s).await;
    assert_eq!(r["path"], "/v1/messages");
    assert_eq!(r["headers"]["x-api-key"], "sk-ant-configured");
    assert_eq!(r["body"]["system"], "Be brief.");
    assert_eq!(r["body"]["model"], "claude-3-5-haiku");
    assert_eq!(r["body"]["max_tokens"], 64);
}

#[tokio::test]
async fn native_anthropic_streams_pass_the_anthropic_events_through() {
    let s = start_with(native_anthropic).await;
    let body = json!({"model": "x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let res = messages_call(&s, body).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = res.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
    let deltas: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(deltas, "The capital of France is Paris.");
}

#[tokio::test]
async fn native_anthropic_errors_keep_the_anthropic_error_shape() {
    let s = start_with(native_anthropic).await;
    let res = s
        .http
        .post(s.url("/basic-llm-routing/v1/messages"))
        .header("apikey", DEMO_KEY)
        .header("x-mock-fault", "429")
        .json(&json!({"model": "x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn native_gemini_requests_reach_generate_content_unchanged() {
    let s = start_with(|mock| {
        let mut ai = pick("gemini")(mock);
        ai["llm_format"] = json!("gemini");
        ai
    })
    .await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
                      "generationConfig": {"temperature": 0.1}});
    let res = s
        .http
        .post(s.url("/basic-llm-routing/v1beta/models/gemini-2.0-flash:generateContent"))
        .header("apikey", DEMO_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["candidates"][0]["content"]["parts"][0]["text"],
        "The capital of France is Paris."
    );
    let r = last_upstream(&s).await;
    assert_eq!(r["body"], body);
}

#[tokio::test]
async fn native_bedrock_converse_bodies_pass_through_signed() {
    let s = start_with(|mock| {
        let mut ai = pick("bedrock")(mock);
        ai["llm_format"] = json!("bedrock");
        ai
    })
    .await;
    let body: Value = serde_json::from_str(include_str!(
        "../src/ai/fixtures/native_bedrock_with-functions-and-chatter.json"
    ))
    .unwrap();
    let res = s
        .http
        .post(s.url("/basic-llm-routing/model/any/converse"))
        .header("apikey", DEMO_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["output"]["message"]["role"], "assistant");
    assert!(out["stopReason"].is_string());
    let r = last_upstream(&s).await;
    assert_eq!(
        r["path"],
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(r["body"], body);
    assert!(
        r["headers"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 ")
    );
}

#[tokio::test]
async fn mock_llm_rejects_unauthenticated_calls_like_the_real_apis() {
    let mock = start_mock().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let converse = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let calls = [
        (
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
            chat.clone(),
            401,
            "Access denied",
        ),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            gemini.clone(),
            403,
            "PERMISSION_DENIED",
        ),
        (
            "/v1/projects/p/locations/l/publishers/google/models/g:generateContent",
            gemini,
            403,
            "PERMISSION_DENIED",
        ),
        (
            "/model/m/converse",
            converse,
            403,
            "Missing Authentication Token",
        ),
        ("/v2/chat", chat, 401, "no api key supplied"),
    ];
    for (path, body, status, needle) in calls {
        let res = http
            .post(format!("http://{mock}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        let text = res.text().await.unwrap();
        assert!(text.contains(needle), "{path}: {text}");
    }
    let no_version = http
        .post(format!(
            "http://{mock}/openai/deployments/d/chat/completions"
        ))
        .header("api-key", "k")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 404);
}

#[tokio::test]
async fn mock_llm_streams_bedrock_as_aws_event_stream_frames() {
    let mock = start_mock().await;
    let res = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{mock}/model/m/converse-stream"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc")
        .header("x-amz-date", "20240101T000000Z")
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let bytes = res.bytes().await.unwrap();
    // Each frame starts with its total length and ends with a CRC; walk them.
    let mut at = 0;
    let mut frames = 0;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(len >= 16 && at + len <= bytes.len());
        at += len;
        frames += 1;
    }
    assert_eq!(at, bytes.len());
    // messageStart, one delta per word, contentBlockStop, messageStop, metadata.
    assert_eq!(
        frames,
        4 + "The capital of France is Paris.".split(' ').count()
    );
}

/// A throwaway Google service account with a freshly generated RSA key.
fn service_account(token_uri: &str) -> String {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use base64::Engine;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = key.as_der().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    json!({"type": "service_account", "client_email": "gantry@my-proj.iam.gserviceaccount.com",
           "private_key": pem, "token_uri": token_uri})
    .to_string()
}

#[tokio::test]
async fn vertex_with_a_service_account_mints_one_cached_bearer_token() {
    let s = start_with(|mock| {
        let mut t = cases(mock)
            .into_iter()
            .find(|c| c.name == "gemini-vertex")
            .unwrap()
            .target;
        t["auth"] = json!({"gcp_use_service_account": true,
            "gcp_service_account_json": service_account(&format!("http://{mock}/token"))});
        json!({"targets": [t]})
    })
    .await;
    for _ in 0..2 {
        let res = s.chat(hello("x")).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "The capital of France is Paris."
        );
    }
    let seen = s.upstream_requests().await;
    let paths: Vec<&str> = seen.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths.iter().filter(|p| **p == "/token").count(),
        1,
        "{paths:?}"
    );
    assert_eq!(paths.len(), 3, "{paths:?}");
    let token_req = &seen[0];
    let form = token_req["body"].as_str().unwrap();
    assert!(
        form.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
        ),
        "{form}"
    );
    let auth = seen[2]["headers"]["authorization"].as_str().unwrap();
    assert!(auth.starts_with("Bearer ya29.mock-"), "{auth}");
    // Only the signed assertion leaves the gateway, never the key.
    assert!(!seen.iter().any(|r| r.to_string().contains("PRIVATE KEY")));
}

#[tokio::test]
async fn a_failing_token_exchange_is_a_500_that_names_google_auth() {
    let s = start_with(|mock| {
        let mut t = cases(mock)
            .into_iter()
            .find(|c| c.name == "gemini-vertex")
            .unwrap()
            .target;
        // The token endpoint rejects anything but the JWT grant; point it at a 404 instead.
        t["auth"] = json!({"gcp_use_service_account": true,
            "gcp_service_account_json": service_account(&format!("http://{mock}/no-such-token-endpoint"))});
        json!({"targets": [t]})
    })
    .await;
    let res = s.chat(hello("x")).await;
    assert_eq!(res.status(), 500);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "gcp_auth_failed");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("HTTP 404"),
        "{e}"
    );
    assert!(!e.to_string().contains("PRIVATE"));
}

#[tokio::test]
async fn bedrock_assumes_the_configured_role_and_signs_with_its_session() {
    let s = start_with(|mock| {
        let mut t = cases(mock)
            .into_iter()
            .find(|c| c.name == "bedrock")
            .unwrap()
            .target;
        t["model"]["options"]["bedrock"] = json!({"aws_region": "us-east-1",
            "aws_assume_role_arn": "arn:aws:iam::123456789012:role/bedrock-invoke",
            "aws_role_session_name": "gantry-test",
            "aws_sts_endpoint_url": format!("http://{mock}/")});
        json!({"targets": [t]})
    })
    .await;
    for _ in 0..2 {
        assert_eq!(s.chat(hello("x")).await.status(), 200);
    }
    let seen = s.upstream_requests().await;
    assert_eq!(seen.len(), 3, "one AssumeRole, two Converse calls");
    let sts = &seen[0];
    assert!(
        sts["headers"]["authorization"]
            .as_str()
            .unwrap()
            .contains("Credential=AKIDEXAMPLE/")
    );
    assert!(
        sts["body"]
            .as_str()
            .unwrap()
            .contains("RoleSessionName=gantry-test")
    );
    for converse in &seen[1..] {
        let auth = converse["headers"]["authorization"].as_str().unwrap();
        assert!(auth.contains("Credential=ASIAMOCK"), "{auth}");
        assert!(
            converse["headers"]["x-amz-security-token"]
                .as_str()
                .unwrap()
                .starts_with("mock-session-")
        );
    }
}

#[tokio::test]
async fn fault_model_names_work_where_the_model_is_in_the_url() {
    for (case, model) in [("gemini", "mock-429"), ("bedrock", "mock-500")] {
        let s = start_with(move |mock| {
            let mut t = cases(mock)
                .into_iter()
                .find(|c| c.name == case)
                .unwrap()
                .target;
            t["model"]["name"] = json!(model);
            json!({"targets": [t]})
        })
        .await;
        let res = s.chat(hello("x")).await;
        let want = if model == "mock-429" { 429 } else { 500 };
        assert_eq!(res.status(), want, "{case}");
        let e: Value = res.json().await.unwrap();
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_for_binary_and_sse_framings() {
    for case in ["bedrock", "gemini", "cohere", "ollama"] {
        let s = start_with(pick(case)).await;
        let res = s
            .http
            .post(s.url("/basic-llm-routing/chat/completions"))
            .header("apikey", DEMO_KEY)
            .header("x-mock-fault", "reset")
            .json(&json!({"stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{case}");
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        use futures_util::StreamExt;
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\"stream_interrupted\""), "{case}: {text}");
        assert!(!text.contains("[DONE]"), "{case}: {text}");
    }
}

#[tokio::test]
async fn kongs_native_gemini_requests_pass_through_unchanged() {
    let s = start_with(|mock| {
        let mut ai = pick("gemini")(mock);
        ai["llm_format"] = json!("gemini");
        ai
    })
    .await;
    let fixtures = [
        include_str!("../src/ai/fixtures/native_gemini_basic-chat.json"),
        include_str!("../src/ai/fixtures/native_gemini_basic-multimodal.json"),
        include_str!("../src/ai/fixtures/native_gemini_with-functions.json"),
        include_str!("../src/ai/fixtures/native_gemini_with-functions-and-chatter.json"),
    ];
    for text in fixtures {
        let body: Value = serde_json::from_str(text).unwrap();
        let res = s
            .http
            .post(s.url("/basic-llm-routing/v1beta/models/x:generateContent"))
            .header("apikey", DEMO_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let out: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["candidates"][0]["content"]["role"], "model", "{out}");
        let r = last_upstream(&s).await;
        assert_eq!(r["body"], body);
        assert_eq!(r["path"], "/v1beta/models/gemini-2.0-flash:generateContent");
        // Google takes a single object where a list is expected; so do Kong's fixtures.
        let last = match &body["contents"] {
            Value::Array(a) => a.last().unwrap().clone(),
            one => one.clone(),
        };
        let part = &out["candidates"][0]["content"]["parts"][0];
        let last = last.to_string();
        if last.contains("functionResponse") || last.contains("function_response") {
            assert!(
                part["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("The tool returned"),
                "{out}"
            );
        } else if let Some(name) = body.pointer("/tools/0/function_declarations/0/name") {
            assert_eq!(&part["functionCall"]["name"], name, "{out}");
        } else {
            assert!(part["text"].is_string(), "{out}");
        }
    }
}
