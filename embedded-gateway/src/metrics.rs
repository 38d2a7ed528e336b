//! Owns the process's Prometheus metrics: Kong's families (`kong_http_requests_total`, the
//! three latency histograms, `kong_bandwidth_bytes`, the `kong_ai_llm_*` families) with Kong's
//! names, labels and buckets, Gantry's own counters (log entries dropped by a full queue,
//! AI failovers per target), and their rendering in Prometheus' text format for `GET /metrics`.
//! Recording is lock-free counters behind a label lookup; nothing here blocks a request.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Kong's buckets for `kong_kong_latency_ms`.
const KONG_LATENCY_BUCKETS: [f64; 17] = [
    1.0, 2.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 750.0, 1000.0,
    3000.0, 6000.0,
];

/// Kong's buckets for `kong_upstream_latency_ms` and `kong_request_latency_ms`.
const UPSTREAM_LATENCY_BUCKETS: [f64; 13] = [
    25.0, 50.0, 80.0, 100.0, 250.0, 400.0, 700.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0,
];

/// Kong's buckets for `kong_ai_llm_provider_latency_ms`.
const AI_LATENCY_BUCKETS: [f64; 14] = [
    250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0, 5000.0, 10000.0,
    30000.0, 60000.0,
];

/// Labels of the `kong_ai_llm_*` families, in Kong's order (EE's `consumer` last).
const AI_LABELS: [&str; 8] = [
    "ai_provider",
    "ai_model",
    "cache_status",
    "vector_db",
    "embeddings_provider",
    "embeddings_model",
    "workspace",
    "consumer",
];

/// Every metric family the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub kong_latency: HistogramVec,
    pub upstream_latency: HistogramVec,
    pub request_latency: HistogramVec,
    pub bandwidth: IntCounterVec,
    pub ai_requests: IntCounterVec,
    pub ai_tokens: IntCounterVec,
    pub ai_cost: prometheus::CounterVec,
    pub ai_latency: HistogramVec,
    pub datastore_reachable: IntGauge,
    /// Log entries a logging plugin dropped (queue full, endpoint gone, write failed).
    pub log_dropped: IntCounterVec,
    /// Times a target failed and the balancer moved on to another one.
    pub ai_failovers: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], b: &[f64]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(b.to_vec()), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let route = ["service", "route", "workspace"];
        let mut ai_tokens = AI_LABELS.to_vec();
        ai_tokens.push("token_type");
        let cost = prometheus::CounterVec::new(
            Opts::new(
                "kong_ai_llm_cost_total",
                "AI requests cost per ai_provider/cache in Kong",
            ),
            &AI_LABELS,
        )
        .unwrap_or_else(|e| panic!("metric kong_ai_llm_cost_total: {e}"));
        r.register(Box::new(cost.clone()))
            .unwrap_or_else(|e| panic!("metric kong_ai_llm_cost_total: {e}"));
        let reachable = IntGauge::new(
            "kong_datastore_reachable",
            "Datastore reachable from Kong, 0 is unreachable",
        )
        .unwrap_or_else(|e| panic!("metric kong_datastore_reachable: {e}"));
        r.register(Box::new(reachable.clone()))
            .unwrap_or_else(|e| panic!("metric kong_datastore_reachable: {e}"));
        reachable.set(1);
        Self {
            http_requests: counter(
                &r,
                "kong_http_requests_total",
                "HTTP status codes per consumer/service/route in Kong",
                &[
                    "service",
                    "route",
                    "code",
                    "source",
                    "workspace",
                    "consumer",
                ],
            ),
            kong_latency: histogram(
                &r,
                "kong_kong_latency_ms",
                "Latency added by Kong and enabled plugins for each service/route in Kong",
                &route,
                &KONG_LATENCY_BUCKETS,
            ),
            upstream_latency: histogram(
                &r,
                "kong_upstream_latency_ms",
                "Latency added by upstream response for each service/route in Kong",
                &route,
                &UPSTREAM_LATENCY_BUCKETS,
            ),
            request_latency: histogram(
                &r,
                "kong_request_latency_ms",
                "Total latency incurred during requests for each service/route in Kong",
                &route,
                &UPSTREAM_LATENCY_BUCKETS,
            ),
            bandwidth: counter(
                &r,
                "kong_bandwidth_bytes",
                "Total bandwidth (ingress/egress) throughput in bytes",
                &["service", "route", "direction", "workspace", "consumer"],
            ),
            ai_requests: counter(
                &r,
                "kong_ai_llm_requests_total",
                "AI requests total per ai_provider in Kong",
                &AI_LABELS,
            ),
            ai_tokens: counter(
                &r,
                "kong_ai_llm_tokens_total",
                "AI tokens total per ai_provider/cache in Kong",
                &ai_tokens,
            ),
            ai_cost: cost,
            ai_latency: histogram(
                &r,
                "kong_ai_llm_provider_latency_ms",
                "LLM response Latency for each AI plugins per ai_provider in Kong",
                &AI_LABELS,
                &AI_LATENCY_BUCKETS,
            ),
            datastore_reachable: reachable,
            log_dropped: counter(
                &r,
                "gantry_log_entries_dropped_total",
                "Log entries a logging plugin dropped (queue full, endpoint unreachable, write failed)",
                &["plugin"],
            ),
            ai_failovers: counter(
                &r,
                "gantry_ai_failovers_total",
                "Times an AI target failed and the balancer tried another one",
                &["ai_provider", "ai_model"],
            ),
            registry: r,
        }
    }

    /// Every family in Prometheus' text exposition format (0.0.4), as Kong serves it.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a family that cannot encode is skipped.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
