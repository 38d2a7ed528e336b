//! Owns Kong's log serializer (`kong.log.serialize()`): one JSON object per request with
//! `request`, `response`, `latencies`, `route`, `service`, `consumer`, `client_ip`,
//! `started_at`, `upstream_uri` and, for AI routes whose target sets
//! `logging.log_statistics`, `ai.proxy.meta` and `ai.proxy.usage`. Credentials never reach
//! it: the caller's key and authorization headers are replaced with `REDACTED`.
//! The entry is written straight from the record (borrowed fields, no JSON tree), since every
//! logged request pays for it.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use http::{HeaderMap, HeaderName};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

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

/// A header map as Kong logs it: one string per header, an array when it repeats, and
/// `REDACTED` for credentials.
struct Headers<'a> {
    map: &'a HeaderMap,
    redact: &'a [HeaderName],
}

/// One header's values.
struct Values<'a> {
    map: &'a HeaderMap,
    name: &'a HeaderName,
    secret: bool,
}

impl Values<'_> {
    fn one(&self, v: &http::HeaderValue) -> Cow<'static, str> {
        if self.secret {
            Cow::Borrowed("REDACTED")
        } else {
            Cow::Owned(String::from_utf8_lossy(v.as_bytes()).into_owned())
        }
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all = self.map.get_all(self.name).iter();
        let first = all.next();
        match (first, all.next()) {
            (Some(v), None) => s.serialize_str(&self.one(v)),
            _ => {
                let mut seq = s.serialize_seq(None)?;
                for v in self.map.get_all(self.name) {
                    seq.serialize_element(&self.one(v))?;
                }
                seq.end()
            }
        }
    }
}

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.map.keys_len()))?;
        for name in self.map.keys() {
            let secret = SECRET_HEADERS.contains(&name.as_str()) || self.redact.contains(name);
            m.serialize_entry(
                name.as_str(),
                &Values {
                    map: self.map,
                    name,
                    secret,
                },
            )?;
        }
        m.end()
    }
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// Kong's cost of one request (see [`AiFacts::cost`]).
pub fn cost(ai: &AiFacts, u: &Usage) -> f64 {
    ai.cost(u)
}

#[derive(Serialize)]
struct Entry<'a> {
    request: Request<'a>,
    response: Response<'a>,
    latencies: Latencies,
    route: RouteOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<ServiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<ConsumerOut<'a>>,
    client_ip: IpAddr,
    started_at: u64,
    upstream_uri: &'a str,
    source: &'static str,
    workspace: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ai: Option<AiOut<'a>>,
}

#[derive(Serialize)]
struct Request<'a> {
    id: &'a str,
    method: &'a str,
    uri: &'a str,
    url: String,
    size: usize,
    querystring: Map<String, Value>,
    headers: Headers<'a>,
}

#[derive(Serialize)]
struct Response<'a> {
    status: u16,
    size: u64,
    headers: Headers<'a>,
}

#[derive(Serialize)]
struct Latencies {
    request: u64,
    proxy: u64,
    kong: u64,
    receive: u64,
}

#[derive(Serialize)]
struct RouteOut<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct ServiceOut<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct ConsumerOut<'a> {
    id: &'a str,
    username: Option<&'a str>,
    custom_id: Option<&'a str>,
}

#[derive(Serialize)]
struct AiOut<'a> {
    proxy: ProxyOut<'a>,
}

#[derive(Serialize)]
struct ProxyOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tried_targets: Option<Vec<TriedOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload>,
}

#[derive(Serialize)]
struct Meta<'a> {
    provider_name: &'a str,
    request_model: &'a str,
    response_model: &'a str,
    llm_latency: u64,
    request_mode: &'static str,
    alias: Option<&'a str>,
}

/// `ai.proxy.usage`: the figures, or `{}` when the provider reported none.
#[derive(Serialize)]
#[serde(untagged)]
enum UsageOut {
    Reported {
        prompt_tokens: u64,
        completion_tokens: u64,
        total_tokens: u64,
        cost: f64,
        time_per_token: f64,
    },
    Missing {},
}

#[derive(Serialize)]
struct TriedOut<'a> {
    provider: &'a str,
    model: &'a str,
}

#[derive(Serialize)]
struct Payload {
    request: Option<String>,
    response: Option<String>,
}

/// The Kong log entry of one request, as JSON.
pub fn serialize(r: &LogRecord) -> Value {
    with_entry(r, |e| serde_json::to_value(e).unwrap_or(Value::Null))
}

/// Appends the Kong log entry of one request to `out`, as JSON (no trailing newline).
pub fn write_entry(r: &LogRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    with_entry(r, |e| serde_json::to_writer(out, e))
}

fn with_entry<T>(r: &LogRecord, f: impl FnOnce(&Entry<'_>) -> T) -> T {
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
    let upstream = c.ai.as_ref().and_then(|a| a.upstream_latency);
    let total = ms(r.total);
    let proxy = upstream.map_or(0, ms);
    let payload = c.ai.as_ref().filter(|a| a.log_payloads).map(|ai| Payload {
        request: ai
            .request_payload
            .as_ref()
            .map(|b| scrub(&String::from_utf8_lossy(b), &secrets).into_owned()),
        response: r
            .response_payload
            .as_ref()
            .map(|b| scrub(&response_text(&r.response_headers, b), &secrets).into_owned()),
    });
    let stats = c.ai.as_ref().filter(|a| a.log_statistics);
    let ai = match (stats, payload) {
        (None, None) => None,
        (stats, payload) => Some(AiOut {
            proxy: ProxyOut {
                meta: stats.map(|ai| Meta {
                    provider_name: ai.provider,
                    request_model: &ai.model,
                    response_model: &ai.model,
                    llm_latency: proxy,
                    request_mode: if ai.stream { "stream" } else { "oneshot" },
                    alias: ai.alias.as_deref(),
                }),
                usage: stats.map(|ai| match ai.usage.get() {
                    Some(u) => UsageOut::Reported {
                        prompt_tokens: u.prompt_tokens,
                        completion_tokens: u.completion_tokens,
                        total_tokens: u.prompt_tokens + u.completion_tokens,
                        cost: cost(ai, &u),
                        time_per_token: if u.completion_tokens > 0 {
                            proxy as f64 / u.completion_tokens as f64
                        } else {
                            0.0
                        },
                    },
                    None => UsageOut::Missing {},
                }),
                tried_targets: stats.map(|ai| {
                    ai.tried
                        .iter()
                        .map(|t| TriedOut {
                            provider: t.provider,
                            model: &t.model,
                        })
                        .chain(std::iter::once(TriedOut {
                            provider: ai.provider,
                            model: &ai.model,
                        }))
                        .collect()
                }),
                payload,
            },
        }),
    };
    let entry = Entry {
        request: Request {
            id: c.request_id.to_str().unwrap_or_default(),
            method: c.parts.method.as_str(),
            uri: path_and_query,
            url: format!("http://{host}{path_and_query}"),
            size: c.request_size.unwrap_or(0),
            querystring,
            headers: Headers {
                map: c.request_headers.as_ref().unwrap_or(&empty),
                redact: &c.credential_headers,
            },
        },
        response: Response {
            status: r.status.as_u16(),
            size: r.response_size,
            headers: Headers {
                map: &r.response_headers,
                redact: &[],
            },
        },
        latencies: Latencies {
            request: total,
            proxy,
            kong: total.saturating_sub(proxy),
            receive: 0,
        },
        route: RouteOut {
            id: &c.route.id,
            name: c.route.name.as_deref(),
        },
        service: c.route.service_id.as_deref().map(|id| ServiceOut {
            id,
            name: c.route.service_name.as_deref(),
        }),
        consumer: c.auth.as_ref().map(|a| ConsumerOut {
            id: &a.consumer.id,
            username: a.consumer.username(),
            custom_id: a.consumer.custom_id.as_ref().and_then(|v| v.to_str().ok()),
        }),
        client_ip: c.remote.ip(),
        started_at: c
            .started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        upstream_uri: path_and_query,
        source: if upstream.is_some() {
            "upstream"
        } else {
            "kong"
        },
        workspace: "default",
        ai,
    };
    f(&entry)
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
