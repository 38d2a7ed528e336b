//! Owns the `rate-limiting` plugin (Kong priority 910): its configuration (Kong's fields,
//! defaults and entity rules) and its `access` phase: fixed, UTC-aligned windows per second,
//! minute, hour, day, month (30 days) and year, counted per identifier (`limit_by`), with
//! Kong's `X-RateLimit-*` / `RateLimit-*` headers, `Retry-After` and 429 body. The check and
//! the count are one step under a lock, so concurrent requests never exceed a limit.
//! `policy: local` only; `cluster` and `redis` are refused until they are built.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{CompileEnv, Env, Flow, Plugin};
use super::limit_key::{By, identifier};
use crate::context::Ctx;
use crate::headers::millis;
use crate::schema::FieldError;

/// The periods, shortest first, with their length in seconds (month = 30 days, as Kong).
const PERIODS: [(&str, u64); 6] = [
    ("second", 1),
    ("minute", 60),
    ("hour", 3600),
    ("day", 86_400),
    ("month", 2_592_000),
    ("year", 31_536_000),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitBy {
    #[default]
    Consumer,
    Credential,
    Ip,
    Service,
    Header,
    Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Local,
    Cluster,
    Redis,
}

fn yes() -> bool {
    true
}
fn default_error_code() -> u16 {
    429
}
fn default_error_message() -> String {
    "API rate limit exceeded".to_owned()
}
fn default_sync_rate() -> f64 {
    -1.0
}

/// `rate-limiting` config, Kong 3.14's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "rate-limiting")]
pub struct RateLimitingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub minute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub hour: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub day: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub month: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub year: Option<f64>,
    #[serde(default)]
    pub limit_by: LimitBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default = "yes")]
    pub fault_tolerant: bool,
    #[serde(default)]
    pub hide_client_headers: bool,
    #[serde(default = "default_error_code")]
    #[schemars(range(min = 100, max = 599))]
    pub error_code: u16,
    #[serde(default = "default_error_message")]
    pub error_message: String,
    #[serde(default = "default_sync_rate")]
    pub sync_rate: f64,
    /// Kong's Redis settings; only read with `policy: redis`, which Gantry does not run yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Value>,
}

impl RateLimitingConfig {
    /// The configured limits, shortest period first: (index into `PERIODS`, limit).
    fn limits(&self) -> Vec<(usize, f64)> {
        [
            self.second,
            self.minute,
            self.hour,
            self.day,
            self.month,
            self.year,
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i, l)))
        .collect()
    }
}

/// The compiled plugin: its limits and the counters of every identifier it has seen.
#[derive(Debug)]
pub struct RateLimiting {
    config: RateLimitingConfig,
    limits: Vec<(usize, f64)>,
    header_name: Option<HeaderName>,
    /// `X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>` per limit, built once.
    period_headers: Vec<(HeaderName, HeaderName)>,
    counters: Counters,
}

impl Plugin for RateLimiting {
    const NAME: &'static str = "rate-limiting";
    const PRIORITY: u32 = 910;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/rate-limiting.schema.json");
    type Config = RateLimitingConfig;

    fn entity_errors(c: &RateLimitingConfig) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let limits = c.limits();
        if limits.is_empty() {
            errs.push(FieldError::new(
                "",
                "at least one of these fields must be non-empty: 'second', 'minute', 'hour', 'day', 'month', 'year'",
            ));
        }
        for w in limits.windows(2) {
            let ((lo, lo_limit), (hi, hi_limit)) = (w[0], w[1]);
            if hi_limit < lo_limit {
                errs.push(FieldError::new(
                    "",
                    format!(
                        "The limit for {}({hi_limit:.1}) cannot be lower than the limit for {}({lo_limit:.1})",
                        PERIODS[hi].0, PERIODS[lo].0
                    ),
                ));
            }
        }
        if c.limit_by == LimitBy::Header && c.header_name.is_none() {
            errs.push(FieldError::new(
                "header_name",
                "required field missing: limit_by 'header' needs 'header_name'",
            ));
        }
        if c.limit_by == LimitBy::Path && c.path.is_none() {
            errs.push(FieldError::new(
                "path",
                "required field missing: limit_by 'path' needs 'path'",
            ));
        }
        match c.policy {
            Policy::Local => {}
            Policy::Cluster => errs.push(FieldError::new(
                "policy",
                "'cluster' is not supported by Gantry: use 'local'",
            )),
            Policy::Redis => errs.push(FieldError::new(
                "policy",
                "'redis' is not supported by Gantry yet: use 'local'",
            )),
        }
        if c.sync_rate != -1.0 {
            errs.push(FieldError::new(
                "sync_rate",
                "sync_rate can only be used with the redis policy",
            ));
        }
        errs
    }

    fn compile(config: RateLimitingConfig, _env: &CompileEnv<'_>) -> Result<Self, String> {
        if let Some(e) = Self::entity_errors(&config).first() {
            return Err(format!("rate-limiting: {e}"));
        }
        let header_name = config
            .header_name
            .as_deref()
            .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok());
        Ok(Self {
            period_headers: config
                .limits()
                .iter()
                .map(|(p, _)| {
                    let period = PERIODS[*p].0;
                    (
                        HeaderName::try_from(format!("x-ratelimit-limit-{period}"))
                            .expect("a period name is a header name"),
                        HeaderName::try_from(format!("x-ratelimit-remaining-{period}"))
                            .expect("a period name is a header name"),
                    )
                })
                .collect(),
            limits: config.limits(),
            header_name,
            config,
            counters: Counters::default(),
        })
    }

    async fn access(&self, ctx: &mut Ctx, _env: &Env<'_>) -> Flow {
        let id = self.identifier(ctx);
        let now = unix_seconds();
        let outcome = self.counters.take(&id, &self.limits, now);
        if !self.config.hide_client_headers {
            let h = &mut ctx.response_headers;
            for (((_, limit), (limit_name, remaining_name)), remaining) in self
                .limits
                .iter()
                .zip(&self.period_headers)
                .zip(&outcome.remaining)
            {
                h.insert(limit_name.clone(), HeaderValue::from(*limit as u64));
                h.insert(remaining_name.clone(), HeaderValue::from(*remaining));
            }
            let (limit, remaining, reset) = outcome.most_restrictive;
            h.insert(RATELIMIT_LIMIT, HeaderValue::from(limit));
            h.insert(RATELIMIT_REMAINING, HeaderValue::from(remaining));
            h.insert(RATELIMIT_RESET, HeaderValue::from(reset));
        }
        if !outcome.allowed {
            let status = StatusCode::from_u16(self.config.error_code)
                .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let body = json!({
                "message": self.config.error_message,
                "request_id": ctx.request_id.to_str().unwrap_or_default(),
            });
            let mut r = Response::new(Body::from(body.to_string()));
            *r.status_mut() = status;
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            h.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(outcome.most_restrictive.2),
            );
            h.insert(
                crate::headers::X_KONG_RESPONSE_LATENCY,
                millis(ctx.started.elapsed()),
            );
            return Flow::Respond(r);
        }
        Flow::Continue
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RateLimiting {
    fn identifier(&self, ctx: &Ctx) -> String {
        let by = match self.config.limit_by {
            LimitBy::Consumer => By::Consumer,
            LimitBy::Credential => By::Credential,
            LimitBy::Ip => By::Ip,
            LimitBy::Service => By::Service,
            LimitBy::Header => By::Header(self.header_name.as_ref()),
            LimitBy::Path => By::Path(self.config.path.as_deref()),
        };
        identifier(by, ctx)
    }
}

/// What one check-and-count decided.
#[derive(Debug)]
struct Outcome {
    allowed: bool,
    /// Remaining per configured limit (after this request), in `limits` order.
    remaining: Vec<u64>,
    /// (limit, remaining, seconds to reset) of the period with the least left (ties: longer).
    most_restrictive: (u64, u64, u64),
}

/// Per-identifier counters of one plugin instance: for each configured period, the window's
/// start and its count. Sharded so that identifiers rarely share a lock.
#[derive(Debug)]
struct Counters {
    shards: Vec<Mutex<Windows>>,
}

/// Identifier → (window start, count) per configured period.
type Windows = HashMap<String, Vec<(u64, u64)>>;

impl Default for Counters {
    fn default() -> Self {
        Self {
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Counters {
    fn take(&self, id: &str, limits: &[(usize, f64)], now: u64) -> Outcome {
        let shard = &self.shards[shard_of(id, self.shards.len())];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Forget identifiers whose longest window has passed.
            map.retain(|_, w| {
                w.iter()
                    .zip(limits)
                    .any(|((start, _), (p, _))| start + PERIODS[*p].1 > now)
            });
        }
        let windows = map
            .entry(id.to_owned())
            .or_insert_with(|| vec![(0, 0); limits.len()]);
        for ((start, count), (p, _)) in windows.iter_mut().zip(limits) {
            let len = PERIODS[*p].1;
            let current = now - now % len;
            if *start != current {
                *start = current;
                *count = 0;
            }
        }
        let allowed = windows
            .iter()
            .zip(limits)
            .all(|((_, count), (_, limit))| (*count as f64) < *limit);
        if allowed {
            for (_, count) in windows.iter_mut() {
                *count += 1;
            }
        }
        let mut remaining = Vec::with_capacity(limits.len());
        let mut most: Option<(u64, u64, u64)> = None;
        for ((start, count), (p, limit)) in windows.iter().zip(limits) {
            let left = (*limit - *count as f64).max(0.0) as u64;
            remaining.push(left);
            let reset = (start + PERIODS[*p].1).saturating_sub(now).max(1);
            let cand = (*limit as u64, left, reset);
            most = Some(match most {
                Some(m) if m.1 < left => m,
                _ => cand,
            });
        }
        Outcome {
            allowed,
            remaining,
            most_restrictive: most.unwrap_or((0, 0, 1)),
        }
    }
}

fn shard_of(id: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(usize, f64)]) -> Vec<(usize, f64)> {
        pairs.to_vec()
    }

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_rolls_over() {
        let c = Counters::default();
        let l = limits(&[(1, 3.0)]);
        let t0 = 1_700_000_080; // 40 s into a minute
        for left in [2, 1, 0] {
            let o = c.take("a", &l, t0);
            assert!(o.allowed);
            assert_eq!(o.remaining, vec![left]);
        }
        let o = c.take("a", &l, t0 + 5);
        assert!(!o.allowed);
        assert_eq!(o.most_restrictive, (3, 0, 15));
        assert!(
            c.take("b", &l, t0 + 5).allowed,
            "another identifier has its own count"
        );
        assert!(
            c.take("a", &l, t0 + 20).allowed,
            "the next UTC minute starts afresh"
        );
    }

    #[test]
    fn a_refused_request_is_not_counted_and_every_period_must_have_room() {
        let c = Counters::default();
        let l = limits(&[(0, 1.0), (1, 2.0)]);
        let t = 1_700_000_000;
        assert!(c.take("a", &l, t).allowed);
        assert!(!c.take("a", &l, t).allowed, "second limit");
        assert!(c.take("a", &l, t + 1).allowed);
        let o = c.take("a", &l, t + 2);
        assert!(!o.allowed, "minute limit");
        assert_eq!(o.remaining, vec![1, 0]);
    }

    #[test]
    fn counts_are_exact_under_concurrency() {
        let c = std::sync::Arc::new(Counters::default());
        let l = limits(&[(5, 50.0)]);
        let allowed: usize = (0..8)
            .map(|_| {
                let (c, l) = (c.clone(), l.clone());
                std::thread::spawn(move || {
                    (0..25)
                        .filter(|_| c.take("x", &l, 1_700_000_000).allowed)
                        .count()
                })
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 50);
    }
}
