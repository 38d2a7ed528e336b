//! Owns what the AI plugin reports about one request for the phases after it: the alias and
//! target chosen, provider and model, upstream latency, and token usage (filled at the end of
//! a stream, after the response head left, so it is shared with the response body).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::types::Usage;

/// Token usage reported by the provider. Streams fill it when their last event arrives, after
/// the response head left, so it is shared with the response body.
#[derive(Debug, Default)]
pub struct UsageCell(Mutex<Option<Usage>>);

impl UsageCell {
    pub fn set(&self, u: Usage) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(u);
        }
    }

    pub fn get(&self) -> Option<Usage> {
        self.0.lock().ok().and_then(|g| *g)
    }
}

/// What the AI plugin did with the request.
#[derive(Debug, Clone, Default)]
pub struct AiFacts {
    /// The alias that selected the target, when one matched.
    pub alias: Option<String>,
    /// Index of the target that answered, in the plugin's `targets`.
    pub target: Option<usize>,
    pub provider: &'static str,
    /// The upstream model name sent to the provider.
    pub model: String,
    pub stream: bool,
    /// Time from sending the upstream request to its response head.
    pub upstream_latency: Option<Duration>,
    pub usage: Arc<UsageCell>,
    /// The target's `logging.log_statistics`: the log entry carries `ai.proxy`.
    pub log_statistics: bool,
    /// The target's `model.options.input_cost` / `output_cost` (per million tokens).
    pub input_cost: Option<f64>,
    pub output_cost: Option<f64>,
    /// The targets that failed and handed the request on, in order (the one in `target` answered
    /// or failed last).
    pub tried: Vec<Tried>,
    /// The target's `logging.log_payloads`: the log entry carries `ai.proxy.payload`.
    pub log_payloads: bool,
    /// The client's request body, kept only with `log_payloads`.
    pub request_payload: Option<bytes::Bytes>,
    /// The target's credential values, kept only with `log_payloads`: scrubbed from payloads.
    pub secrets: Vec<String>,
}

/// One target tried for a request (the log's `ai.proxy.tried_targets`).
#[derive(Debug, Clone, Default)]
pub struct Tried {
    pub provider: &'static str,
    pub model: String,
}

impl AiFacts {
    /// Kong's cost of one request: `(prompt × input_cost + completion × output_cost) / 1e6`
    /// (costs are per million tokens; unset costs count 0).
    pub fn cost(&self, u: &Usage) -> f64 {
        (u.prompt_tokens as f64 * self.input_cost.unwrap_or(0.0)
            + u.completion_tokens as f64 * self.output_cost.unwrap_or(0.0))
            / 1e6
    }
}
