//! Owns the `ai-rate-limiting-advanced` plugin (Kong priority 905): token budgets per
//! identifier, in the 3.14 `policies[]` form (match on consumer, header, ip, model or path,
//! `partition_by`) and the older `llm_providers[]` form. The `access` phase refuses a request
//! whose budget is spent, with Kong's `X-AI-RateLimit-*` headers and exact 429 body; the `log`
//! phase charges the tokens (or cost) the provider reported, streamed or not. So the request
//! that crosses a limit completes and the next one is refused, as in Kong. Windows are fixed
//! or sliding; counters live in the process (`strategy: local`), shared by the worker threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{CompileEnv, Env, Flow, Plugin};
use super::limit_key::{By, identifier};
use crate::context::{Ctx, LogRecord, Payload};
use crate::headers::{X_KONG_RESPONSE_LATENCY, millis};
use crate::schema::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Identifier {
    #[default]
    Consumer,
    ConsumerGroup,
    Credential,
    Header,
    Ip,
    Path,
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowType {
    Fixed,
    #[default]
    Sliding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountStrategy {
    #[default]
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Local,
    Cluster,
    Redis,
}

/// `llm_providers[]` (deprecated in 3.14, still Kong's most common form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmProvider {
    pub name: String,
    pub limit: Vec<f64>,
    pub window_size: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    Consumer,
    ConsumerGroup,
    Header,
    Ip,
    Model,
    Path,
    Provider,
}

/// One condition of a policy; all of a policy's conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(rename = "type")]
    pub kind: MatchType,
    /// consumer: `id`, `username` or `custom_id`; header: the header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// No values: any value matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// The matched value becomes part of the counter key (a budget per model, per consumer…).
    #[serde(default)]
    pub partition_by: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimit {
    pub limit: f64,
    pub window_size: u64,
    #[serde(default)]
    pub tokens_count_strategy: CountStrategy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A reusable policy entity's id (not supported: Gantry has no policy entity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// No conditions: the fallback for requests no other policy matched.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Match>,
    #[serde(default)]
    pub limits: Vec<PolicyLimit>,
    #[serde(default)]
    pub window_type: WindowType,
}

fn default_error_code() -> u16 {
    429
}
fn default_error_message() -> String {
    "AI token rate limit exceeded for provider(s): ".to_owned()
}
fn default_dictionary() -> String {
    "kong_rate_limiting_counters".to_owned()
}

/// `ai-rate-limiting-advanced` config, Kong 3.14's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ai-rate-limiting-advanced")]
pub struct AiRateLimitingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_providers: Option<Vec<LlmProvider>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyConfig>>,
    #[serde(default)]
    pub identifier: Identifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub window_type: WindowType,
    #[serde(default)]
    pub tokens_count_strategy: CountStrategy,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_rate: Option<f64>,
    #[serde(default = "default_dictionary")]
    pub dictionary_name: String,
    /// Instances sharing a namespace share counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default = "default_error_code")]
    #[schemars(range(min = 100, max = 599))]
    pub error_code: u16,
    #[serde(default = "default_error_message")]
    pub error_message: String,
    #[serde(default)]
    pub error_hide_providers: bool,
    #[serde(default)]
    pub hide_client_headers: bool,
    #[serde(default)]
    pub retry_after_jitter_max: f64,
    #[serde(default)]
    pub disable_penalty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_prompt_count_function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cost_count_function: Option<String>,
    #[serde(default)]
    pub decrease_by_fractions_in_redis: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_format: Option<String>,
    /// Kong's Redis settings; only read with `strategy: redis`, which Gantry does not run yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Value>,
}

const PROVIDERS: [&str; 9] = [
    "anthropic",
    "azure",
    "bedrock",
    "cohere",
    "gemini",
    "huggingface",
    "llama2",
    "mistral",
    "openai",
];

fn not_supported(field: &str, why: &str) -> FieldError {
    FieldError::new(field, format!("not supported by Gantry: {why}"))
}

fn config_errors(c: &AiRateLimitingConfig) -> Vec<FieldError> {
    let mut e = Vec::new();
    match (&c.llm_providers, &c.policies) {
        (Some(_), Some(_)) => e.push(FieldError::new(
            "",
            "only one of these fields may be set: 'llm_providers', 'policies'",
        )),
        (None, None) => e.push(FieldError::new(
            "",
            "at least one of these fields must be non-empty: 'llm_providers', 'policies'",
        )),
        _ => {}
    }
    for (i, p) in c.llm_providers.iter().flatten().enumerate() {
        let at = |f: &str| format!("llm_providers[{i}].{f}");
        if matches!(p.name.as_str(), "requestPrompt" | "customCost") {
            e.push(not_supported(&at("name"), "it needs a Lua count function"));
        } else if !PROVIDERS.contains(&p.name.as_str()) {
            e.push(FieldError::new(
                at("name"),
                format!("expected one of: {}", PROVIDERS.join(", ")),
            ));
        }
        if p.limit.len() != p.window_size.len() || p.limit.is_empty() {
            e.push(FieldError::new(
                at("limit"),
                "'limit' and 'window_size' must be non-empty and of the same length",
            ));
        }
    }
    for (i, p) in c.policies.iter().flatten().enumerate() {
        let at = |f: &str| format!("policies[{i}].{f}");
        if p.id.is_some() {
            e.push(not_supported(
                &at("id"),
                "there is no reusable policy entity; give the limits inline",
            ));
        }
        if p.limits.is_empty() {
            e.push(FieldError::new(
                at("limits"),
                "a policy needs at least one limit",
            ));
        }
        for (j, m) in p.matches.iter().enumerate() {
            let at = |f: &str| format!("policies[{i}].match[{j}].{f}");
            match m.kind {
                MatchType::ConsumerGroup => e.push(not_supported(
                    &at("type"),
                    "consumer groups are not built yet",
                )),
                MatchType::Provider => e.push(not_supported(
                    &at("type"),
                    "the provider is chosen after this plugin runs; match on the model instead",
                )),
                MatchType::Consumer
                    if !matches!(
                        m.key.as_deref(),
                        None | Some("id" | "username" | "custom_id")
                    ) =>
                {
                    e.push(FieldError::new(
                        at("key"),
                        "expected one of: id, username, custom_id",
                    ));
                }
                MatchType::Header if m.key.is_none() => {
                    e.push(FieldError::new(
                        at("key"),
                        "required field missing: a header match needs its header name in 'key'",
                    ));
                }
                _ => {}
            }
        }
    }
    match c.identifier {
        Identifier::ConsumerGroup => e.push(not_supported(
            "identifier",
            "consumer groups are not built yet",
        )),
        Identifier::Header if c.header_name.is_none() => e.push(FieldError::new(
            "header_name",
            "required field missing: identifier 'header' needs 'header_name'",
        )),
        Identifier::Path if c.path.is_none() => e.push(FieldError::new(
            "path",
            "required field missing: identifier 'path' needs 'path'",
        )),
        _ => {}
    }
    match c.strategy {
        Strategy::Local => {}
        Strategy::Cluster => e.push(not_supported("strategy", "use 'local'")),
        Strategy::Redis => e.push(not_supported(
            "strategy",
            "'redis' comes with scale-out; use 'local'",
        )),
    }
    if c.sync_rate.is_some_and(|r| r != -1.0) {
        e.push(not_supported(
            "sync_rate",
            "it applies to the redis strategy only",
        ));
    }
    if c.dictionary_name != default_dictionary() {
        e.push(not_supported(
            "dictionary_name",
            "Gantry has no shared dictionaries",
        ));
    }
    if c.disable_penalty {
        e.push(not_supported(
            "disable_penalty",
            "it applies to the requestPrompt provider only",
        ));
    }
    if c.request_prompt_count_function.is_some() || c.custom_cost_count_function.is_some() {
        e.push(not_supported(
            "request_prompt_count_function",
            "Gantry runs no Lua",
        ));
    }
    if c.decrease_by_fractions_in_redis {
        e.push(not_supported(
            "decrease_by_fractions_in_redis",
            "it applies to the redis strategy only",
        ));
    }
    if c.llm_format.as_deref().is_some_and(|f| f != "openai") {
        e.push(not_supported("llm_format", "only 'openai'"));
    }
    e
}

/// One limit, compiled: where its counter lives and how it counts.
#[derive(Debug, Clone)]
struct Limit {
    limit: f64,
    window: u64,
    strategy: CountStrategy,
    sliding: bool,
    /// `X-AI-RateLimit-{Limit,Remaining,Reset,Retry-After}-<window>-<budget>`, built once.
    headers: [HeaderName; 4],
}

/// The four header names of one limit of budget `name`.
fn limit_headers(name: &str, window: u64) -> [HeaderName; 4] {
    let w = window_name(window);
    ["limit", "remaining", "reset", "retry-after"].map(|kind| {
        HeaderName::try_from(format!("x-ai-ratelimit-{kind}-{w}-{name}").to_ascii_lowercase())
            .unwrap_or(HeaderName::from_static("x-ai-ratelimit"))
    })
}

/// A budget: the limits of one policy (or one provider), with its header name.
#[derive(Debug, Clone)]
struct Budget {
    /// `openai` or `policy-1`: the header suffix and the 429 message's name.
    name: String,
    /// `llm_providers` form: charged only for answers from this provider.
    provider: Option<String>,
    matches: Vec<Match>,
    limits: Vec<Limit>,
}

/// The compiled plugin.
#[derive(Debug)]
pub struct AiRateLimiting {
    config: AiRateLimitingConfig,
    budgets: Vec<Budget>,
    header_name: Option<HeaderName>,
    reads_model: bool,
    counters: Arc<TokenCounters>,
}

/// Counters shared by instances of one namespace (or owned by one instance).
static NAMESPACES: std::sync::LazyLock<Mutex<HashMap<String, Arc<TokenCounters>>>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

impl Plugin for AiRateLimiting {
    const NAME: &'static str = "ai-rate-limiting-advanced";
    const PRIORITY: u32 = 905;
    const SCHEMA: &'static str =
        include_str!("../../../schemas/plugins/ai-rate-limiting-advanced.schema.json");
    type Config = AiRateLimitingConfig;

    fn entity_errors(c: &AiRateLimitingConfig) -> Vec<FieldError> {
        config_errors(c)
    }

    fn compile(c: AiRateLimitingConfig, _env: &CompileEnv<'_>) -> Result<Self, String> {
        if let Some(e) = config_errors(&c).first() {
            return Err(format!("ai-rate-limiting-advanced: {e}"));
        }
        let sliding = c.window_type == WindowType::Sliding;
        let mut budgets = Vec::new();
        for p in c.llm_providers.iter().flatten() {
            budgets.push(Budget {
                name: p.name.clone(),
                provider: Some(p.name.clone()),
                matches: Vec::new(),
                limits: p
                    .limit
                    .iter()
                    .zip(&p.window_size)
                    .map(|(&limit, &window)| Limit {
                        limit,
                        window: window.max(1),
                        strategy: c.tokens_count_strategy,
                        sliding,
                        headers: limit_headers(&p.name, window.max(1)),
                    })
                    .collect(),
            });
        }
        for (i, p) in c.policies.iter().flatten().enumerate() {
            let name = format!("policy-{}", i + 1);
            budgets.push(Budget {
                provider: None,
                matches: p.matches.clone(),
                limits: p
                    .limits
                    .iter()
                    .map(|l| Limit {
                        limit: l.limit,
                        window: l.window_size.max(1),
                        strategy: l.tokens_count_strategy,
                        sliding: p.window_type == WindowType::Sliding,
                        headers: limit_headers(&name, l.window_size.max(1)),
                    })
                    .collect(),
                name,
            });
        }
        let counters = match &c.namespace {
            Some(ns) => NAMESPACES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(ns.clone())
                .or_default()
                .clone(),
            None => Arc::default(),
        };
        Ok(Self {
            reads_model: budgets
                .iter()
                .any(|b| b.matches.iter().any(|m| m.kind == MatchType::Model)),
            header_name: c
                .header_name
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
            budgets,
            counters,
            config: c,
        })
    }

    fn reads_body(&self) -> bool {
        self.reads_model
    }

    async fn access(&self, ctx: &mut Ctx, _env: &Env<'_>) -> Flow {
        let keys = self.keys(ctx);
        let now = now_secs();
        let mut over = Vec::new();
        let mut retry_after = 0u64;
        for (b, key) in self.budgets.iter().zip(&keys) {
            let Some(key) = key else { continue };
            for (j, l) in b.limits.iter().enumerate() {
                let used = self.counters.usage(&format!("{key}|{j}"), l, now);
                let remaining = (l.limit - used).max(0.0);
                if !self.config.hide_client_headers {
                    set(&mut ctx.response_headers, &l.headers[0], l.limit);
                    set(&mut ctx.response_headers, &l.headers[1], remaining);
                }
                if used >= l.limit {
                    let reset = self.counters.reset_after(l, now);
                    retry_after = retry_after.max(reset);
                    if !self.config.hide_client_headers {
                        set(&mut ctx.response_headers, &l.headers[2], reset as f64);
                        set(&mut ctx.response_headers, &l.headers[3], reset as f64);
                    }
                    if !over.contains(&b.name) {
                        over.push(b.name.clone());
                    }
                }
            }
        }
        if over.is_empty() {
            // Remember where this request's tokens go, for the log phase.
            ctx.ai_budget_keys = keys;
            return Flow::Continue;
        }
        let jitter = if self.config.retry_after_jitter_max > 0.0 {
            (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0
                * self.config.retry_after_jitter_max
        } else {
            0.0
        };
        let wait = retry_after + jitter.ceil() as u64;
        let message = if self.config.error_hide_providers {
            self.config
                .error_message
                .trim_end()
                .trim_end_matches(':')
                .to_owned()
        } else {
            format!("{}{}", self.config.error_message, over.join(", "))
        };
        let body =
            serde_json::to_string(&serde_json::json!({ "message": message })).unwrap_or_default();
        let mut r = Response::new(Body::from(body));
        *r.status_mut() =
            StatusCode::from_u16(self.config.error_code).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(wait));
        if !self.config.hide_client_headers {
            h.insert("x-ai-ratelimit-reset", HeaderValue::from(wait));
            h.insert("x-ai-ratelimit-retry-after", HeaderValue::from(wait));
        }
        h.insert(X_KONG_RESPONSE_LATENCY, millis(ctx.started.elapsed()));
        Flow::Respond(r)
    }

    fn has_log(&self) -> bool {
        true
    }

    /// Charges the provider's reported usage (a stream's too: the record is made when the
    /// body ended) to every budget the request counted against.
    fn log(&self, record: &Arc<LogRecord>) {
        let ctx = &record.ctx;
        let Some(ai) = &ctx.ai else { return };
        let Some(u) = ai.usage.get() else { return };
        let now = now_secs();
        for (b, key) in self.budgets.iter().zip(&ctx.ai_budget_keys) {
            let Some(key) = key else { continue };
            if b.provider.as_deref().is_some_and(|p| p != ai.provider) {
                continue;
            }
            for (j, l) in b.limits.iter().enumerate() {
                let amount = match l.strategy {
                    CountStrategy::TotalTokens => (u.prompt_tokens + u.completion_tokens) as f64,
                    CountStrategy::PromptTokens => u.prompt_tokens as f64,
                    CountStrategy::CompletionTokens => u.completion_tokens as f64,
                    CountStrategy::Cost => ai.cost(&u),
                };
                self.counters.add(&format!("{key}|{j}"), l, now, amount);
            }
        }
    }
}

fn set(h: &mut http::HeaderMap, name: &HeaderName, v: f64) {
    let value = if v.fract() == 0.0 {
        HeaderValue::from(v as i64)
    } else {
        HeaderValue::from_str(&v.to_string()).unwrap_or(HeaderValue::from_static("0"))
    };
    h.insert(name.clone(), value);
}

/// Kong names the usual windows; others go by their seconds.
fn window_name(secs: u64) -> String {
    match secs {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        2_592_000 => "month".into(),
        31_536_000 => "year".into(),
        n => n.to_string(),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl AiRateLimiting {
    /// Per budget, the counter key for this request, or `None` when the budget does not apply
    /// (a condition failed; the fallback policy applies only when no other one matched).
    fn keys(&self, ctx: &mut Ctx) -> Vec<Option<String>> {
        let id = self.identifier(ctx);
        let model = match &mut ctx.body {
            Payload::Buffered(b) if self.reads_model => b
                .field(&ctx.parts.headers, "model")
                .and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        };
        let mut keys: Vec<Option<String>> = self
            .budgets
            .iter()
            .map(|b| {
                if b.matches.is_empty() {
                    return Some(id.clone());
                }
                let mut parts = vec![id.clone()];
                for m in &b.matches {
                    let value = self.match_value(m, ctx, model.as_deref())?;
                    if let Some(vals) = &m.values
                        && !vals.contains(&value)
                    {
                        return None;
                    }
                    if m.partition_by {
                        parts.push(value);
                    }
                }
                Some(parts.join("|"))
            })
            .collect();
        // A policy without conditions is the fallback: only when no policy with conditions
        // matched.
        let matched = self
            .budgets
            .iter()
            .zip(&keys)
            .any(|(b, k)| b.provider.is_none() && !b.matches.is_empty() && k.is_some());
        if matched {
            for (b, k) in self.budgets.iter().zip(keys.iter_mut()) {
                if b.provider.is_none() && b.matches.is_empty() {
                    *k = None;
                }
            }
        }
        keys.iter_mut().zip(&self.budgets).for_each(|(k, b)| {
            if let Some(k) = k {
                *k = format!("{}|{k}", b.name);
            }
        });
        keys
    }

    fn match_value(&self, m: &Match, ctx: &Ctx, model: Option<&str>) -> Option<String> {
        match m.kind {
            MatchType::Consumer => {
                let a = ctx.auth.as_ref()?;
                match m.key.as_deref() {
                    Some("username") => a.consumer.username().map(str::to_owned),
                    Some("custom_id") => a
                        .consumer
                        .custom_id
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    _ => Some(a.consumer.id.clone()),
                }
            }
            MatchType::Header => ctx
                .parts
                .headers
                .get(m.key.as_deref()?)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            MatchType::Ip => Some(ctx.remote.ip().to_string()),
            MatchType::Model => model.map(str::to_owned),
            MatchType::Path => Some(ctx.parts.uri.path().to_owned()),
            MatchType::ConsumerGroup | MatchType::Provider => None,
        }
    }

    fn identifier(&self, ctx: &Ctx) -> String {
        let by = match self.config.identifier {
            Identifier::Consumer => By::Consumer,
            Identifier::Credential => By::Credential,
            // consumer-group is refused by validation.
            Identifier::Ip | Identifier::ConsumerGroup => By::Ip,
            Identifier::Service => By::Service,
            Identifier::Header => By::Header(self.header_name.as_ref()),
            Identifier::Path => By::Path(self.config.path.as_deref()),
        };
        identifier(by, ctx)
    }
}

/// Token counters: per key, the current and previous fixed window's totals.
#[derive(Debug, Default)]
pub struct TokenCounters {
    map: Mutex<HashMap<String, (u64, f64, f64)>>,
}

impl TokenCounters {
    fn window_start(l: &Limit, now: f64) -> u64 {
        let n = now as u64;
        n - n % l.window
    }

    /// Usage in the window now: fixed, or sliding (the previous window weighted by how much
    /// of it still overlaps, plus the current one).
    fn usage(&self, key: &str, l: &Limit, now: f64) -> f64 {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(start, cur, prev)) = map.get(key) else {
            return 0.0;
        };
        let this = Self::window_start(l, now);
        let (cur, prev) = if start == this {
            (cur, prev)
        } else if start + l.window == this {
            (0.0, cur)
        } else {
            (0.0, 0.0)
        };
        if !l.sliding {
            return cur;
        }
        let elapsed = (now - this as f64) / l.window as f64;
        cur + prev * (1.0 - elapsed).max(0.0)
    }

    fn add(&self, key: &str, l: &Limit, now: f64, amount: f64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let this = Self::window_start(l, now);
        let e = map.entry(key.to_owned()).or_insert((this, 0.0, 0.0));
        if e.0 != this {
            let prev = if e.0 + l.window == this { e.1 } else { 0.0 };
            *e = (this, 0.0, prev);
        }
        e.1 += amount;
    }

    /// Seconds until the budget has room again (the current window's end).
    fn reset_after(&self, l: &Limit, now: f64) -> u64 {
        let end = Self::window_start(l, now) + l.window;
        ((end as f64 - now).ceil() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(window: u64, sliding: bool) -> Limit {
        Limit {
            limit: 100.0,
            window,
            strategy: CountStrategy::TotalTokens,
            sliding,
            headers: limit_headers("test", window),
        }
    }

    #[test]
    fn a_fixed_window_counts_until_it_rolls_over() {
        let c = TokenCounters::default();
        let l = limit(60, false);
        let t = 1_700_000_040.0;
        c.add("k", &l, t, 70.0);
        c.add("k", &l, t + 1.0, 40.0);
        assert_eq!(c.usage("k", &l, t + 2.0), 110.0);
        assert_eq!(c.reset_after(&l, t + 2.0), 58);
        assert_eq!(c.usage("k", &l, t + 60.0), 0.0);
    }

    #[test]
    fn a_sliding_window_weighs_the_previous_window_by_its_overlap() {
        let c = TokenCounters::default();
        let l = limit(60, true);
        let start = 1_700_000_040.0;
        c.add("k", &l, start + 10.0, 100.0);
        // A quarter into the next window, three quarters of the last one still count.
        assert_eq!(c.usage("k", &l, start + 75.0), 75.0);
        assert_eq!(c.usage("k", &l, start + 130.0), 0.0);
    }
}
