//! What a reliability battery found, fixed: through the real listener and proxy on loopback,
//! deep or non-UTF-8 JSON is refused before any provider sees it, request heads obey RFC 9112
//! (one `Host`, the configured header size, exactly), and slow or stalled request bodies get
//! 408 and lose their connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use embedded_gateway::proxy::{BodyTimeouts, Proxy, ProxyOptions};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy_harness::*;

const PLAIN_SERVICE: &str = "8c7b1f7e-0000-4000-8000-0000000000a2";

/// The recipe plus a plain route `/plain` → the mock, no plugins.
fn recipe_and_plain(mock: SocketAddr) -> ConfigSnapshot {
    let mut s = recipe(mock);
    s.services
        .push(service(PLAIN_SERVICE, "127.0.0.1", mock.port(), None));
    s.routes.push(route(
        json!({"id": "8c7b1f7e-0000-4000-8000-0000000000b2", "name": "plain", "paths": ["/plain"], "service": {"id": PLAIN_SERVICE}}),
    ));
    s
}

struct Hardened {
    addr: SocketAddr,
    mock: SocketAddr,
    http: reqwest::Client,
}

impl Hardened {
    async fn start(client_body: BodyTimeouts) -> Self {
        let mock = start_mock().await;
        let proxy = Proxy::new(ProxyOptions {
            client_body,
            ..ProxyOptions::default()
        });
        proxy.apply(&recipe_and_plain(mock));
        let addr = start_proxy(proxy).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, mock, http }
    }

    async fn default() -> Self {
        Self::start(BodyTimeouts::default()).await
    }

    /// POSTs raw bytes as a JSON chat request on the AI route.
    async fn chat_raw(&self, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!(
                "http://{}/basic-llm-routing/chat/completions",
                self.addr
            ))
            .header("apikey", DEMO_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// How many requests the mock provider received. Counted in the listing's text: a
    /// recorded 127-level body is too deep to decode once wrapped in the listing.
    async fn upstream_count(&self) -> usize {
        let text = self
            .http
            .get(format!("http://{}/_mock/requests", self.mock))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.matches(r#""method":"#).count()
    }
}

/// Sends `req` on a fresh connection and reads until the gateway closes it (5 s at most).
async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    read_until_closed(&mut s).await.0
}

async fn read_until_closed(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

async fn assert_invalid_json(res: reqwest::Response, why: &str) {
    assert_eq!(res.status(), 400, "{why}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{why}: {v}");
    assert_eq!(v["error"]["code"], "invalid_json", "{why}: {v}");
}

/// A chat body whose deepest value sits `depth` levels down (the top-level object is 1), in
/// `messages` or in an unknown field the scanner skips.
fn nested_body(depth: usize, in_messages: bool) -> Vec<u8> {
    if in_messages {
        format!(
            r#"{{"model":"fast","messages":[{{"role":"user","content":"hi"}},{}{}]}}"#,
            "[".repeat(depth - 2),
            "]".repeat(depth - 2)
        )
    } else {
        format!(
            r#"{{"model":"fast","messages":[{{"role":"user","content":"hi"}}],"x":{}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }
    .into_bytes()
}

#[tokio::test]
async fn json_nested_deeper_than_127_levels_never_reaches_the_provider() {
    let g = Hardened::default().await;
    for depth in [128, 129, 10_000, 400_000] {
        for in_messages in [true, false] {
            let res = g.chat_raw(nested_body(depth, in_messages)).await;
            assert_invalid_json(res, &format!("depth {depth}, messages {in_messages}")).await;
        }
    }
    assert_eq!(g.upstream_count().await, 0);
    for in_messages in [true, false] {
        let res = g.chat_raw(nested_body(127, in_messages)).await;
        assert_eq!(res.status(), 200, "127 levels are accepted");
    }
    assert_eq!(g.upstream_count().await, 2);
}

#[tokio::test]
async fn invalid_utf8_anywhere_in_a_chat_body_is_refused() {
    let g = Hardened::default().await;
    let cases: [(&str, &[u8]); 4] = [
        (
            "unknown top-level field",
            b"{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"user\":\"\xff\xfe\"}",
        ),
        (
            "tools",
            b"{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"\xc3\x28\"}}]}",
        ),
        (
            "nested value",
            b"{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"metadata\":{\"a\":{\"b\":[\"\xed\xa0\x80\"]}}}",
        ),
        (
            "object key",
            b"{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"\xf0\x28\x8c\x28\":1}",
        ),
    ];
    for (why, body) in cases {
        assert_invalid_json(g.chat_raw(body.to_vec()).await, why).await;
    }
    assert_eq!(g.upstream_count().await, 0);
    let ok = "{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"user\":\"ünï\"}";
    assert_eq!(g.chat_raw(ok.as_bytes().to_vec()).await.status(), 200);
}

/// A plain route to the mock, which records it and answers 404 `unknown_url`.
const STATS: &str = "GET /plain/v1/models";

fn assert_proxied(text: &str) {
    assert!(
        text.contains(" 404 ") && text.contains("unknown_url"),
        "{text}"
    );
}

#[tokio::test]
async fn an_http11_request_needs_exactly_one_valid_host() {
    let g = Hardened::default().await;
    let ok = exchange(
        g.addr,
        format!("{STATS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_proxied(&ok);
    for (why, head) in [
        ("no Host", "Connection: close\r\n"),
        ("two Hosts", "Host: a\r\nHost: b\r\nConnection: close\r\n"),
        (
            "two equal Hosts",
            "Host: a\r\nConnection: close\r\nHost: a\r\n",
        ),
        ("invalid Host", "Host: a/b@c\r\nConnection: close\r\n"),
    ] {
        let text = exchange(g.addr, format!("{STATS} HTTP/1.1\r\n{head}\r\n").as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{why}: {text}");
        assert!(text.contains("Host"), "{why}: {text}");
    }
    assert_eq!(
        g.upstream_count().await,
        1,
        "only the valid request went up"
    );
}

#[tokio::test]
async fn http10_may_omit_host_but_not_repeat_it() {
    let g = Hardened::default().await;
    let text = exchange(g.addr, format!("{STATS} HTTP/1.0\r\n\r\n").as_bytes()).await;
    assert!(text.starts_with("HTTP/1.0 404"), "{text}");
    assert_proxied(&text);
    let text = exchange(
        g.addr,
        format!("{STATS} HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
}

/// A request head of exactly `size` bytes (request line, field lines, final CRLF).
fn head_of(size: usize) -> String {
    let start = format!("{STATS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ");
    let pad = size - start.len() - 4;
    format!("{start}{}\r\n\r\n", "a".repeat(pad))
}

#[tokio::test]
async fn the_configured_header_size_is_enforced_to_the_byte() {
    let g = Hardened::default().await;
    let limit = 64 * 1024;
    assert_eq!(head_of(limit).len(), limit);
    let text = exchange(g.addr, head_of(limit).as_bytes()).await;
    assert_proxied(&text);
    for size in [limit + 1, 70_000, 90_000] {
        let text = exchange(g.addr, head_of(size).as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 431"), "{size}: {text}");
    }
    // Spread over many headers, too.
    let mut many = format!("{STATS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..70 {
        many += &format!("X-H{i:02}: {}\r\n", "b".repeat(1000));
    }
    many += "\r\n";
    let text = exchange(g.addr, many.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(g.upstream_count().await, 1);
}

fn short_body_timeouts() -> BodyTimeouts {
    BodyTimeouts {
        idle: Duration::from_millis(300),
        min_rate: 100,
    }
}

fn post_head(path: &str, len: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\napikey: {DEMO_KEY}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

const AI_PATH: &str = "/basic-llm-routing/chat/completions";
const PLAIN_CHAT: &str = "/plain/v1/chat/completions";

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_its_connection_closed() {
    let g = Hardened::start(short_body_timeouts()).await;
    for path in [AI_PATH, PLAIN_CHAT] {
        let mut s = TcpStream::connect(g.addr).await.unwrap();
        s.write_all(post_head(path, 1000, "").as_bytes())
            .await
            .unwrap();
        s.write_all(b"{\"model\":\"fast\",").await.unwrap();
        let (text, took) = read_until_closed(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(text.contains("Request timeout"), "{path}: {text}");
        assert!(took < Duration::from_secs(2), "{path}: {took:?}");
    }
}

#[tokio::test]
async fn a_body_trickled_slower_than_the_minimum_rate_gets_408() {
    let g = Hardened::start(short_body_timeouts()).await;
    for path in [AI_PATH, PLAIN_CHAT] {
        let mut s = TcpStream::connect(g.addr).await.unwrap();
        s.write_all(post_head(path, 1000, "").as_bytes())
            .await
            .unwrap();
        let started = Instant::now();
        // One byte every 100 ms: never idle for the 300 ms timeout, but 10 bytes/s is far
        // below the 100 bytes/s minimum.
        let mut cut = false;
        for _ in 0..60 {
            if s.write_all(b" ").await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut probe = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), s.peek(&mut probe)).await
                && n > 0
            {
                cut = true;
                break;
            }
        }
        let (text, _) = read_until_closed(&mut s).await;
        assert!(cut, "{path}: still open after {:?}", started.elapsed());
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
}

#[tokio::test]
async fn many_trickling_connections_are_all_freed() {
    let g = Hardened::start(short_body_timeouts()).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let addr = g.addr;
        let path = if i % 2 == 0 { AI_PATH } else { PLAIN_CHAT };
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(post_head(path, 10_000, "").as_bytes())
                .await
                .unwrap();
            for _ in 0..40 {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                let mut probe = [0u8; 16];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(1), s.peek(&mut probe)).await
                    && n > 0
                {
                    break;
                }
            }
            read_until_closed(&mut s).await.0
        }));
    }
    for t in tasks {
        let text = t.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

#[tokio::test]
async fn a_body_sent_at_a_normal_pace_is_not_cut() {
    let g = Hardened::start(short_body_timeouts()).await;
    let body = serde_json::to_vec(&hello("fast")).unwrap();
    for path in [AI_PATH, PLAIN_CHAT] {
        let mut s = TcpStream::connect(g.addr).await.unwrap();
        let auth = "Authorization: Bearer sk-client\r\nConnection: close\r\n";
        s.write_all(post_head(path, body.len(), auth).as_bytes())
            .await
            .unwrap();
        // Two halves, 200 ms apart: within the 300 ms timeout.
        let (a, b) = body.split_at(body.len() / 2);
        s.write_all(a).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b).await.unwrap();
        let (text, _) = read_until_closed(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    }
}
