//! Owns the `prometheus` plugin (Kong priority 13): its configuration (Kong's metric switches,
//! all off by default) and its `log` phase, which records the request in the process's
//! metrics ([`crate::metrics`]) as Kong's exporter does: `kong_http_requests_total` with
//! `status_code_metrics`, the three latency histograms with `latency_metrics`,
//! `kong_bandwidth_bytes` with `bandwidth_metrics`, the `kong_ai_llm_*` families with
//! `ai_metrics` (for targets with `logging.log_statistics`), and the `consumer` label only
//! with `per_consumer`. Recording is a few atomic adds; the families are served by the admin
//! and status listeners' `GET /metrics`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::api::{CompileEnv, Plugin};
use super::serialize::cost;
use crate::context::LogRecord;
use crate::headers::X_KONG_UPSTREAM_LATENCY;
use crate::metrics::METRICS;
use crate::schema::FieldError;

/// `prometheus` config, Kong's fields and defaults (every switch off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "prometheus")]
pub struct PrometheusConfig {
    /// Adds the `consumer` label (the consumer's username) to the metrics that have it.
    #[serde(default)]
    pub per_consumer: bool,
    /// Records `kong_http_requests_total`.
    #[serde(default)]
    pub status_code_metrics: bool,
    /// Records the `kong_ai_llm_*` families.
    #[serde(default)]
    pub ai_metrics: bool,
    /// Records `kong_request_latency_ms`, `kong_upstream_latency_ms` and `kong_kong_latency_ms`.
    #[serde(default)]
    pub latency_metrics: bool,
    /// Records `kong_bandwidth_bytes`.
    #[serde(default)]
    pub bandwidth_metrics: bool,
    /// Kong's upstream health gauges; Gantry has no upstream health checks, so `true` is refused.
    #[serde(default)]
    pub upstream_health_metrics: bool,
    /// Kong's Wasm filter metrics; Gantry runs no Wasm, so `true` is refused.
    #[serde(default)]
    pub wasm_metrics: bool,
}

/// The compiled plugin: its switches.
#[derive(Debug)]
pub struct Prometheus {
    config: PrometheusConfig,
}

impl Plugin for Prometheus {
    const NAME: &'static str = "prometheus";
    const PRIORITY: u32 = 13;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/prometheus.schema.json");
    type Config = PrometheusConfig;

    fn entity_errors(c: &PrometheusConfig) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if c.upstream_health_metrics {
            errs.push(FieldError::new(
                "upstream_health_metrics",
                "not supported: Gantry has no upstream health checks",
            ));
        }
        if c.wasm_metrics {
            errs.push(FieldError::new(
                "wasm_metrics",
                "not supported: Gantry runs no Wasm filters",
            ));
        }
        errs
    }

    fn compile(config: PrometheusConfig, _env: &CompileEnv<'_>) -> Result<Self, String> {
        if let Some(e) = Self::entity_errors(&config).first() {
            return Err(format!("prometheus: {e}"));
        }
        Ok(Self { config })
    }

    fn has_log(&self) -> bool {
        true
    }

    fn log(&self, record: &Arc<LogRecord>) {
        record_request(&self.config, record);
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_millis() as f64
}

/// Records one request in the metrics, as Kong's exporter `log` does.
fn record_request(conf: &PrometheusConfig, r: &LogRecord) {
    let m = &*METRICS;
    let c = &r.ctx;
    let service = c.route.service_name.as_deref().unwrap_or("");
    let route = c.route.name.as_deref().unwrap_or(&c.route.id);
    let consumer = if conf.per_consumer {
        c.auth
            .as_ref()
            .and_then(|a| a.consumer.username())
            .unwrap_or("")
    } else {
        ""
    };
    // The upstream's latency: the AI engine's own measure, else the plain proxy's header.
    let upstream =
        c.ai.as_ref()
            .and_then(|a| a.upstream_latency.map(millis))
            .or_else(|| {
                r.response_headers
                    .get(X_KONG_UPSTREAM_LATENCY)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
            });
    if conf.status_code_metrics {
        let source = if upstream.is_some() {
            "service"
        } else {
            "kong"
        };
        let code = r.status.as_str();
        m.http_requests
            .with_label_values(&[service, route, code, source, "default", consumer])
            .inc();
    }
    if conf.latency_metrics {
        let labels = [service, route, "default"];
        let total = millis(r.total);
        m.request_latency.with_label_values(&labels).observe(total);
        if let Some(u) = upstream {
            m.upstream_latency.with_label_values(&labels).observe(u);
        }
        let kong = (total - upstream.unwrap_or(0.0)).max(0.0);
        m.kong_latency.with_label_values(&labels).observe(kong);
    }
    if conf.bandwidth_metrics {
        let ingress = c.request_size.unwrap_or(0) as u64;
        m.bandwidth
            .with_label_values(&[service, route, "ingress", "default", consumer])
            .inc_by(ingress);
        m.bandwidth
            .with_label_values(&[service, route, "egress", "default", consumer])
            .inc_by(r.response_size);
    }
    if let Some(ai) = &c.ai {
        // Every target in `tried` failed and handed the request on.
        {
            for t in &ai.tried {
                m.ai_failovers
                    .with_label_values(&[t.provider, t.model.as_str()])
                    .inc();
            }
        }
        if conf.ai_metrics && ai.log_statistics {
            let labels = [
                ai.provider,
                ai.model.as_str(),
                "",
                "",
                "",
                "",
                "default",
                consumer,
            ];
            m.ai_requests.with_label_values(&labels).inc();
            if let Some(l) = ai.upstream_latency {
                m.ai_latency.with_label_values(&labels).observe(millis(l));
            }
            if let Some(u) = ai.usage.get() {
                let cost = cost(ai, &u);
                if cost > 0.0 {
                    m.ai_cost.with_label_values(&labels).inc_by(cost);
                }
                let total = u.prompt_tokens + u.completion_tokens;
                for (kind, n) in [
                    ("prompt_tokens", u.prompt_tokens),
                    ("completion_tokens", u.completion_tokens),
                    ("total_tokens", total),
                ] {
                    let [a, b, c, d, e, f, g, h] = labels;
                    m.ai_tokens
                        .with_label_values(&[a, b, c, d, e, f, g, h, kind])
                        .inc_by(n);
                }
            }
        }
    }
}
