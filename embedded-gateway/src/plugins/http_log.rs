//! Owns the `http-log` plugin (Kong priority 12): its configuration (Kong's fields, the shared
//! `queue` record and their defaults) and its `log` phase, which hands each request's Kong log
//! entry to a bounded queue. One sender thread per distinct endpoint configuration (Kong:
//! instances with identical parameters share a queue) batches entries (`max_batch_size`,
//! waiting at most `max_coalescing_delay` for a batch to fill), POSTs them (one JSON object,
//! or a JSON array when batches hold more than one), and retries a failed batch with doubling
//! delays until `max_retry_time` is spent. A full queue drops its oldest entry; a batch that
//! cannot be delivered is dropped; both are counted in
//! `gantry_log_entries_dropped_total{plugin="http-log"}`. Nothing here waits on the network
//! from a request's thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{CompileEnv, Plugin};
use super::serialize::write_entry;
use crate::context::LogRecord;
use crate::metrics::METRICS;
use crate::schema::FieldError;

/// `http-log` config, Kong's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "http-log")]
pub struct HttpLogConfig {
    /// Where entries are sent (`http` or `https`); userinfo becomes `Authorization: Basic`.
    #[schemars(extend("x-secret" = true))]
    pub http_endpoint: String,
    /// The request method.
    #[serde(default = "default_method")]
    pub method: Method,
    /// The request's `Content-Type`.
    #[serde(default = "default_content_type")]
    pub content_type: ContentType,
    /// Milliseconds to wait for the endpoint's answer.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 0))]
    pub timeout: u64,
    /// Milliseconds an idle connection to the endpoint is kept.
    #[serde(default = "default_keepalive")]
    #[schemars(range(min = 0))]
    pub keepalive: u64,
    /// Extra request headers (not `Host`, `Content-Length` or `Content-Type`).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// How entries are batched, bounded and retried.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Kong's Lua hook; Gantry runs no Lua, so a config that sets it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields_by_lua: Option<Value>,
}

/// The request method `http-log` sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Method {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
}

/// The content types `http-log` may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ContentType {
    #[serde(rename = "application/json")]
    Json,
    #[serde(rename = "application/json; charset=utf-8")]
    JsonUtf8,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::JsonUtf8 => "application/json; charset=utf-8",
        }
    }
}

fn default_method() -> Method {
    Method::Post
}
fn default_content_type() -> ContentType {
    ContentType::Json
}
fn default_timeout() -> u64 {
    10_000
}
fn default_keepalive() -> u64 {
    60_000
}

/// Kong's `queue` record (`kong/tools/queue_schema.lua`), with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Entries sent in one request (1 sends a JSON object, more a JSON array).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_batch_size: u64,
    /// Seconds to wait for a batch to fill before sending what there is.
    #[serde(default = "one_f")]
    #[schemars(range(min = 0, max = 3600))]
    pub max_coalescing_delay: f64,
    /// Entries the queue holds; when full, the oldest is dropped.
    #[serde(default = "max_entries")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_entries: u64,
    /// Bytes of serialized entries the queue holds (none when unset); when full, the oldest
    /// entries are dropped.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Seconds a failing batch is retried before it is dropped (-1: no retries).
    #[serde(default = "sixty")]
    pub max_retry_time: f64,
    /// Seconds before the first retry; each retry doubles it.
    #[serde(default = "initial_retry_delay")]
    #[schemars(range(min = 0.001, max = 1_000_000))]
    pub initial_retry_delay: f64,
    /// The longest wait between two retries, in seconds.
    #[serde(default = "sixty")]
    #[schemars(range(min = 0.001, max = 1_000_000))]
    pub max_retry_delay: f64,
    /// 1: one batch in flight at a time; -1: no limit.
    #[serde(default = "one_i")]
    pub concurrency_limit: i64,
}

fn one() -> u64 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn one_i() -> i64 {
    1
}
fn max_entries() -> u64 {
    10_000
}
fn sixty() -> f64 {
    60.0
}
fn initial_retry_delay() -> f64 {
    0.01
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 1,
            max_coalescing_delay: 1.0,
            max_entries: 10_000,
            max_bytes: None,
            max_retry_time: 60.0,
            initial_retry_delay: 0.01,
            max_retry_delay: 60.0,
            concurrency_limit: 1,
        }
    }
}

/// The compiled plugin: a handle on its endpoint's queue.
#[derive(Debug)]
pub struct HttpLog {
    queue: Arc<Queue>,
}

impl Plugin for HttpLog {
    const NAME: &'static str = "http-log";
    const PRIORITY: u32 = 12;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/http-log.schema.json");
    type Config = HttpLogConfig;

    fn entity_errors(c: &HttpLogConfig) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match url::Url::parse(&c.http_endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                let has_userinfo = !u.username().is_empty() || u.password().is_some();
                let has_auth = c
                    .headers
                    .as_ref()
                    .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("authorization")));
                if has_userinfo && has_auth {
                    errs.push(FieldError::new(
                        "http_endpoint",
                        "specifying both an 'Authorization' header and user info in 'http_endpoint' is not allowed",
                    ));
                }
            }
            // Never quote the endpoint: it may carry credentials.
            _ => errs.push(FieldError::new(
                "http_endpoint",
                "missing host in url, or not an http(s) url",
            )),
        }
        for name in c.headers.iter().flat_map(|h| h.keys()) {
            let lower = name.to_ascii_lowercase();
            if matches!(lower.as_str(), "host" | "content-length" | "content-type") {
                errs.push(FieldError::new(
                    format!("headers.{name}"),
                    "cannot contain 'Host', 'Content-Length' or 'Content-Type' headers",
                ));
            } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errs.push(FieldError::new(
                    format!("headers.{name}"),
                    "not a valid header name",
                ));
            }
        }
        for (name, value) in c.headers.iter().flatten() {
            if http::HeaderValue::from_str(value).is_err() {
                errs.push(FieldError::new(
                    format!("headers.{name}"),
                    "not a valid header value",
                ));
            }
        }
        let q = &c.queue;
        if !(q.max_retry_time == -1.0 || q.max_retry_time >= 0.0) {
            errs.push(FieldError::new(
                "queue.max_retry_time",
                "must be -1 (no retries) or at least 0",
            ));
        }
        if !matches!(q.concurrency_limit, 1 | -1) {
            errs.push(FieldError::new(
                "queue.concurrency_limit",
                "expected one of: -1, 1",
            ));
        }
        if q.max_bytes == Some(0) {
            errs.push(FieldError::new(
                "queue.max_bytes",
                "value must be greater than 0",
            ));
        }
        if c.custom_fields_by_lua.is_some() {
            errs.push(FieldError::new(
                "custom_fields_by_lua",
                "not supported: Gantry runs no Lua",
            ));
        }
        errs
    }

    fn compile(c: HttpLogConfig, _env: &CompileEnv<'_>) -> Result<Self, String> {
        if let Some(e) = Self::entity_errors(&c).first() {
            return Err(format!("http-log: {e}"));
        }
        Ok(Self { queue: queue(c) })
    }

    fn has_log(&self) -> bool {
        true
    }

    fn log(&self, record: &Arc<LogRecord>) {
        self.queue.push(record);
    }
}

/// Counts `n` dropped entries.
fn dropped(n: usize) {
    if n > 0 {
        METRICS
            .log_dropped
            .with_label_values(&[HttpLog::NAME])
            .inc_by(n as u64);
    }
}

/// One waiting entry: the record itself, or (with `max_bytes`) its serialized form, whose size
/// the bound needs.
enum Entry {
    Record(Arc<LogRecord>),
    Bytes(Vec<u8>),
}

impl Entry {
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Record(r) => {
                let mut b = Vec::with_capacity(2048);
                let _ = write_entry(&r, &mut b);
                b
            }
            Self::Bytes(b) => b,
        }
    }
}

#[derive(Default)]
struct Waiting {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

/// One endpoint's queue, shared by the instances that configure it identically.
pub struct Queue {
    max_entries: usize,
    max_bytes: Option<usize>,
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Adds an entry, dropping the oldest ones (counted) when the queue is full.
    fn push(&self, record: &Arc<LogRecord>) {
        let entry = match self.max_bytes {
            Some(_) => {
                let mut b = Vec::with_capacity(2048);
                let _ = write_entry(record, &mut b);
                let n = b.len();
                (Entry::Bytes(b), n)
            }
            None => (Entry::Record(record.clone()), 0),
        };
        let mut lost = 0;
        {
            let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if self.max_bytes.is_some_and(|max| entry.1 > max) {
                lost += 1;
            } else {
                w.bytes += entry.1;
                w.entries.push_back(entry);
                while w.entries.len() > self.max_entries
                    || self.max_bytes.is_some_and(|max| w.bytes > max)
                {
                    if let Some((_, n)) = w.entries.pop_front() {
                        w.bytes -= n;
                        lost += 1;
                    }
                }
            }
        }
        self.ready.notify_one();
        dropped(lost);
    }

    /// The next batch: waits for a first entry, then up to `delay` for `size` entries.
    fn next_batch(&self, size: usize, delay: Duration) -> Vec<Entry> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while w.entries.is_empty() {
            w = self.ready.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        let deadline = Instant::now() + delay;
        while w.entries.len() < size {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            w = self
                .ready
                .wait_timeout(w, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let n = w.entries.len().min(size);
        let taken: Vec<(Entry, usize)> = w.entries.drain(..n).collect();
        w.bytes -= taken.iter().map(|(_, b)| b).sum::<usize>();
        taken.into_iter().map(|(e, _)| e).collect()
    }
}

/// One queue per distinct configuration (endpoint, method, headers, queue settings), shared
/// across instances and config revisions.
static QUEUES: LazyLock<Mutex<HashMap<String, Arc<Queue>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn queue(c: HttpLogConfig) -> Arc<Queue> {
    let key = serde_json::to_string(&c).unwrap_or_default();
    let mut map = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(q) = map.get(&key) {
        return q.clone();
    }
    let q = Arc::new(Queue {
        max_entries: c.queue.max_entries as usize,
        max_bytes: c.queue.max_bytes.map(|b| b as usize),
        waiting: Mutex::new(Waiting::default()),
        ready: Condvar::new(),
    });
    let worker = q.clone();
    let spawned = std::thread::Builder::new()
        .name("gantry-http-log".into())
        .spawn(move || send_loop(&c, &worker));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "http-log: cannot start the sender thread");
    }
    map.insert(key, q.clone());
    q
}

/// What one send needs, prepared once per queue.
struct Target {
    client: reqwest::Client,
    method: reqwest::Method,
    url: url::Url,
    headers: http::HeaderMap,
    retry: QueueConfig,
}

fn target(c: &HttpLogConfig) -> Result<Target, String> {
    let mut url = url::Url::parse(&c.http_endpoint).map_err(|_| "invalid http_endpoint")?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(c.content_type.as_str()),
    );
    if !url.username().is_empty() || url.password().is_some() {
        let user = percent_decode(url.username());
        let pass = percent_decode(url.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let value = http::HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| "invalid user info in http_endpoint")?;
        headers.insert(http::header::AUTHORIZATION, value);
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    for (k, v) in c.headers.iter().flatten() {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| "invalid header")?;
        let value = http::HeaderValue::from_str(v).map_err(|_| "invalid header")?;
        headers.append(name, value);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(c.timeout.max(1)))
        .pool_idle_timeout(Duration::from_millis(c.keepalive))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let method = match c.method {
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
    };
    Ok(Target {
        client,
        method,
        url,
        headers,
        retry: c.queue.clone(),
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The sender thread: its own small runtime, batches taken off the queue, sent with retries.
fn send_loop(c: &HttpLogConfig, queue: &Arc<Queue>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "http-log: cannot start the sender runtime");
            return;
        }
    };
    let target = match target(c) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!(error = %e, "http-log: cannot build the sender");
            return;
        }
    };
    let size = c.queue.max_batch_size as usize;
    let delay = Duration::from_secs_f64(c.queue.max_coalescing_delay);
    let concurrent = c.queue.concurrency_limit == -1;
    let batch_queue = queue.clone();
    rt.block_on(async move {
        loop {
            // Waiting for entries blocks this thread, which runs nothing else but the sends
            // in flight when batches are concurrent, so it is done on the blocking pool.
            let q = batch_queue.clone();
            let Ok(batch) = tokio::task::spawn_blocking(move || q.next_batch(size, delay)).await
            else {
                return;
            };
            if batch.is_empty() {
                continue;
            }
            let t = target.clone();
            if concurrent {
                tokio::spawn(async move { deliver(&t, batch, size).await });
            } else {
                deliver(&t, batch, size).await;
            }
        }
    });
}

/// Sends one batch, retrying with doubling delays until `max_retry_time` is spent; a batch
/// that cannot be delivered is dropped and counted.
async fn deliver(t: &Target, batch: Vec<Entry>, size: usize) {
    let n = batch.len();
    let entries: Vec<Vec<u8>> = batch.into_iter().map(Entry::into_bytes).collect();
    let body = if size == 1 {
        entries.into_iter().next().unwrap_or_default()
    } else {
        let mut b = Vec::with_capacity(entries.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
        b.push(b'[');
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            b.extend_from_slice(e);
        }
        b.push(b']');
        b
    };
    let body = bytes::Bytes::from(body);
    let r = &t.retry;
    let started = Instant::now();
    let mut delay = r.initial_retry_delay;
    loop {
        let sent = t
            .client
            .request(t.method.clone(), t.url.clone())
            .headers(t.headers.clone())
            .body(body.clone())
            .send()
            .await;
        let err = match sent {
            Ok(res) if res.status().as_u16() < 400 => return,
            Ok(res) => format!("status {}", res.status().as_u16()),
            Err(e) => format!("{}", e.without_url()),
        };
        let spent = started.elapsed().as_secs_f64();
        if r.max_retry_time < 0.0 || spent + delay > r.max_retry_time {
            tracing::warn!(error = %err, entries = n, "http-log: batch dropped after retries");
            dropped(n);
            return;
        }
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        delay = (delay * 2.0).min(r.max_retry_delay);
    }
}
