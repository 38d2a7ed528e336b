//! Owns Kong's log serializer (`kong.log.serialize()`): one JSON object per request with
//! `request`, `response`, `latencies`, `route`, `service`, `consumer`, `client_ip`,
//! `started_at`, `upstream_uri` and, for AI routes whose target sets
//! `logging.log_statistics`, `ai.proxy.meta` and `ai.proxy.usage`. Credentials never reach
//! it: the caller's key and authorization headers are replaced with `REDACTED`.

use std::time::UNIX_EPOCH;

use http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::ai::types::Usage;
use crate::context::{AiFacts, LogRecord};

/// Request headers that always carry a credential.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "apikey",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
];

fn headers(h: &HeaderMap, redact: &[http::HeaderName]) -> Value {
    let mut out = Map::new();
    for name in h.keys() {
        let secret = SECRET_HEADERS.contains(&name.as_str()) || redact.contains(name);
        let mut values: Vec<Value> = h
            .get_all(name)
            .iter()
            .map(|v| {
                if secret {
                    Value::from("REDACTED")
                } else {
                    Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned())
                }
            })
            .collect();
        let v = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_owned(), v);
    }
    Value::Object(out)
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// Kong's cost of one request: `(prompt × input_cost + completion × output_cost) / 1e6`
/// (costs are per million tokens; unset costs count 0).
pub fn cost(ai: &AiFacts, u: &Usage) -> f64 {
    (u.prompt_tokens as f64 * ai.input_cost.unwrap_or(0.0)
        + u.completion_tokens as f64 * ai.output_cost.unwrap_or(0.0))
        / 1e6
}

/// The Kong log entry of one request.
pub fn serialize(r: &LogRecord) -> Value {
    let c = &r.ctx;
    let uri = &c.parts.uri;
    let host = c
        .client_host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let secrets: Vec<&str> = c
        .log_secrets
        .iter()
        .chain(c.ai.iter().flat_map(|a| a.secrets.iter()))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let path_and_query = scrub(uri.path_and_query().map_or("/", |p| p.as_str()), &secrets);
    let path_and_query = path_and_query.as_ref();
    let querystring: Map<String, Value> = c
        .query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| {
                    (
                        k.into_owned(),
                        Value::from(scrub(&v, &secrets).into_owned()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let empty = HeaderMap::new();
    let req_headers = c.request_headers.as_ref().unwrap_or(&empty);
    let upstream = c.ai.as_ref().and_then(|a| a.upstream_latency);
    let total = ms(r.total);
    let proxy = upstream.map_or(0, ms);
    let mut entry = json!({
        "request": {
            "id": c.request_id.to_str().unwrap_or_default(),
            "method": c.parts.method.as_str(),
            "uri": path_and_query,
            "url": format!("http://{host}{path_and_query}"),
            "size": c.request_size.unwrap_or(0),
            "querystring": querystring,
            "headers": headers(req_headers, &c.credential_headers),
        },
        "response": {
            "status": r.status.as_u16(),
            "size": r.response_size,
            "headers": headers(&r.response_headers, &[]),
        },
        "latencies": {
            "request": total,
            "proxy": proxy,
            "kong": total.saturating_sub(proxy),
            "receive": 0,
        },
        "route": {"id": c.route.id, "name": c.route.name},
        "client_ip": c.remote.ip().to_string(),
        "started_at": c.started_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        "upstream_uri": path_and_query,
        "source": if upstream.is_some() { "upstream" } else { "kong" },
        "workspace": "default",
    });
    if let Some(id) = &c.route.service_id {
        entry["service"] = json!({"id": id, "name": c.route.service_name});
    }
    if let Some(a) = &c.auth {
        entry["consumer"] = json!({
            "id": a.consumer.id,
            "username": a.consumer.username(),
            "custom_id": a.consumer.custom_id.as_ref().and_then(|v| v.to_str().ok()),
        });
    }
    if let Some(ai) = c.ai.as_ref().filter(|a| a.log_payloads) {
        let request = ai
            .request_payload
            .as_ref()
            .map(|b| scrub(&String::from_utf8_lossy(b), &secrets).into_owned());
        let response = r
            .response_payload
            .as_ref()
            .map(|b| scrub(&response_text(&r.response_headers, b), &secrets).into_owned());
        entry["ai"] = json!({"proxy": {"payload": {"request": request, "response": response}}});
    }
    if let Some(ai) = c.ai.as_ref().filter(|a| a.log_statistics) {
        let llm_latency = upstream.map_or(0, ms);
        let mut usage = json!({});
        if let Some(u) = ai.usage.get() {
            let total_tokens = u.prompt_tokens + u.completion_tokens;
            let cost = cost(ai, &u);
            let tpt = if u.completion_tokens > 0 {
                llm_latency as f64 / u.completion_tokens as f64
            } else {
                0.0
            };
            usage = json!({
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": total_tokens,
                "cost": cost,
                "time_per_token": tpt,
            });
        }
        let payload = entry["ai"]["proxy"]["payload"].take();
        entry["ai"] = json!({"proxy": {
            "meta": {
                "provider_name": ai.provider,
                "request_model": ai.model,
                "response_model": ai.model,
                "llm_latency": llm_latency,
                "request_mode": if ai.stream { "stream" } else { "oneshot" },
                "alias": ai.alias,
            },
            "usage": usage,
            "tried_targets": ai.tried.iter().map(|t| json!({"provider": t.provider, "model": t.model})).collect::<Vec<_>>(),
        }});
        if !payload.is_null() {
            entry["ai"]["proxy"]["payload"] = payload;
        }
    }
    entry
}

/// `text` with every credential value in it replaced by `REDACTED`.
fn scrub<'a>(text: &'a str, secrets: &[&str]) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in secrets {
        if out.contains(s) {
            out = std::borrow::Cow::Owned(out.replace(s, "REDACTED"));
        }
    }
    out
}

/// The response as `ai.proxy.payload.response` shows it: a stream's text (the concatenated
/// `delta.content` of its chunks), else the body.
fn response_text(headers: &HeaderMap, body: &[u8]) -> String {
    let sse = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse {
        return String::from_utf8_lossy(body).into_owned();
    }
    let mut text = String::new();
    for line in String::from_utf8_lossy(body).lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim_start) else {
            continue;
        };
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if let Some(t) = choice["delta"]["content"].as_str() {
                text.push_str(t);
            }
        }
    }
    text
}
