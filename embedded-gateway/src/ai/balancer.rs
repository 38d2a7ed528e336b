//! Owns how ai-proxy-advanced picks a target among several, and what it remembers about each
//! target between requests: the `balancer.algorithm` (round-robin by weight,
//! consistent-hashing, least-connections, lowest-usage, lowest-latency, priority), the
//! circuit breaker (`max_fails`/`fail_timeout`, Kong's counting) and `Retry-After` cool-downs.
//! A pick skips targets already tried for the request and targets that are out.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::{
    Algorithm, Balancer as BalancerConfig, LatencyStrategy, Target, TokensCountStrategy,
};
use super::types::Usage;

/// How fast the latency average forgets: a sample's weight halves every this long.
const LATENCY_HALF_LIFE: Duration = Duration::from_secs(10);

/// What the balancer knows about one target at run time.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Requests in flight (least-connections).
    inflight: AtomicU32,
    /// Failures counted by the circuit breaker (total, not consecutive).
    fails: AtomicU32,
    /// When the last failure happened, in ms since the plugin was compiled (+1; 0 = never).
    last_fail: AtomicU64,
    /// When the last half-open probe was let through (ms since compile, +1; 0 = none). One
    /// probe per `fail_timeout`, so a probe whose request was abandoned cannot wedge it.
    probe_at: AtomicU64,
    /// Out until this time (ms since compile, +1) after a 429 with `Retry-After`.
    cool_until: AtomicU64,
    /// Usage accumulated for lowest-usage, in the strategy's unit (f64 bits).
    usage: AtomicU64,
    /// Decaying latency average for lowest-latency: (value ms, last update).
    latency: Mutex<Option<(f64, Instant)>>,
    /// Requests this target failed that went on to another target.
    pub failovers: AtomicU64,
}

/// The breaker and the clock all targets share.
#[derive(Debug)]
pub(super) struct Breaker {
    epoch: Instant,
    max_fails: u32,
    fail_timeout: u64,
}

impl Breaker {
    pub(super) fn new(config: &BalancerConfig) -> Self {
        Self {
            epoch: Instant::now(),
            max_fails: config.max_fails,
            fail_timeout: u64::from(config.fail_timeout),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// May `h` take a request now? A tripped target past `fail_timeout` lets one probe through.
    fn admits(&self, h: &Health, now: u64) -> bool {
        if h.cool_until.load(Ordering::Relaxed) > now {
            return false;
        }
        if self.max_fails == 0 || h.fails.load(Ordering::Relaxed) < self.max_fails {
            return true;
        }
        let since = now.saturating_sub(h.last_fail.load(Ordering::Relaxed));
        let probe = h.probe_at.load(Ordering::Relaxed);
        since >= self.fail_timeout
            && now.saturating_sub(probe) >= self.fail_timeout
            && h.probe_at
                .compare_exchange(probe, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// A success: the count resets only when `fail_timeout` has passed since the last failure
    /// (Kong: 2 failures and a success inside the window still count 2).
    pub(super) fn success(&self, h: &Health) {
        let last = h.last_fail.load(Ordering::Relaxed);
        if last != 0 && self.now().saturating_sub(last) >= self.fail_timeout {
            h.fails.store(0, Ordering::Relaxed);
            h.probe_at.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn failure(&self, h: &Health) {
        h.fails.fetch_add(1, Ordering::Relaxed);
        h.last_fail.store(self.now(), Ordering::Relaxed);
    }

    /// A 429's `Retry-After`: the target takes nothing for that long.
    pub(super) fn cool_down(&self, h: &Health, wait: Duration) {
        let until = self.now() + wait.as_millis() as u64;
        h.cool_until.fetch_max(until, Ordering::Relaxed);
    }
}

/// The per-target state of one compiled plugin, shared with the streams it serves.
#[derive(Debug)]
pub(super) struct Shared {
    pub health: Vec<Health>,
    pub breaker: Breaker,
}

/// One attempt's hold on its target: counts it in flight (least-connections) until dropped,
/// even at the end of a stream, and reports how the attempt went to the breaker and to the
/// usage and latency records.
#[derive(Debug)]
pub(super) struct Report {
    shared: Arc<Shared>,
    idx: usize,
    pick: Pick,
    cost: Option<(f64, f64)>,
    /// When the attempt began, when the algorithm keeps latency records.
    started: Option<Instant>,
}

impl Report {
    pub(super) fn new(
        shared: Arc<Shared>,
        idx: usize,
        pick: Pick,
        cost: Option<(f64, f64)>,
    ) -> Self {
        shared.health[idx].inflight.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            idx,
            pick,
            cost,
            started: pick.track.then(Instant::now),
        }
    }

    fn health(&self) -> &Health {
        &self.shared.health[self.idx]
    }

    pub(super) fn success(&self, usage: Option<Usage>) {
        self.shared.breaker.success(self.health());
        if let Some(started) = self.started {
            record(
                self.health(),
                &self.pick,
                usage,
                self.cost,
                started.elapsed(),
            );
        }
    }

    pub(super) fn failure(&self) {
        self.shared.breaker.failure(self.health());
    }

    pub(super) fn cool_down(&self, wait: Duration) {
        self.shared.breaker.cool_down(self.health(), wait);
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.shared.health[self.idx]
            .inflight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records a finished answer for lowest-usage and lowest-latency.
fn record(
    h: &Health,
    config: &Pick,
    usage: Option<Usage>,
    cost: Option<(f64, f64)>,
    elapsed: Duration,
) {
    if let Some(u) = usage {
        let amount = match config.tokens {
            TokensCountStrategy::TotalTokens => (u.prompt_tokens + u.completion_tokens) as f64,
            TokensCountStrategy::PromptTokens => u.prompt_tokens as f64,
            TokensCountStrategy::CompletionTokens => u.completion_tokens as f64,
            TokensCountStrategy::Cost => cost.map_or(0.0, |(i, o)| {
                (u.prompt_tokens as f64 * i + u.completion_tokens as f64 * o) / 1e6
            }),
        };
        let mut cur = h.usage.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + amount).to_bits();
            match h
                .usage
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    let sample = match config.latency {
        LatencyStrategy::E2e => ms,
        LatencyStrategy::Tpot => match usage {
            Some(u) if u.completion_tokens > 0 => ms / u.completion_tokens as f64,
            _ => ms,
        },
    };
    if let Ok(mut l) = h.latency.lock() {
        let now = Instant::now();
        *l = Some(match *l {
            None => (sample, now),
            Some((avg, at)) => {
                let age = now.duration_since(at).as_secs_f64();
                let keep = 0.5f64.powf(age / LATENCY_HALF_LIFE.as_secs_f64()) * 0.7;
                (avg * keep + sample * (1.0 - keep), now)
            }
        });
    }
}

/// The algorithm-wide settings a pick needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pick {
    pub tokens: TokensCountStrategy,
    pub latency: LatencyStrategy,
    /// The algorithm reads usage and latency records (lowest-usage, lowest-latency); the
    /// others skip keeping them.
    pub track: bool,
}

/// The candidates of one alias (or of all targets) and how to choose among them.
#[derive(Debug)]
pub(super) struct Pool {
    pub members: Vec<usize>,
    weights: Vec<u32>,
    how: How,
}

#[derive(Debug)]
enum How {
    RoundRobin(Schedule),
    /// A ring of `slots` entries, each naming a member (weighted rendezvous hashing, so a
    /// change of targets moves only the keys of the changed target).
    Hash {
        ring: Vec<u16>,
        fallback: Schedule,
    },
    LeastConnections(AtomicUsize),
    LowestUsage,
    LowestLatency,
    /// Member groups by weight, highest first, each with its own weighted order.
    Priority(Vec<(Vec<usize>, Schedule)>),
}

impl Pool {
    pub(super) fn new(members: Vec<usize>, targets: &[Target], config: &BalancerConfig) -> Self {
        let weights: Vec<u32> = members.iter().map(|&i| targets[i].weight.max(1)).collect();
        let rr = || Schedule::new(&members, &weights);
        let how = match config.algorithm {
            // `semantic` is refused by validation; a snapshot that still carries it balances by
            // round-robin rather than failing every request.
            Algorithm::RoundRobin | Algorithm::Semantic => How::RoundRobin(rr()),
            Algorithm::ConsistentHashing => How::Hash {
                ring: ring(&members, &weights, config.slots as usize),
                fallback: rr(),
            },
            Algorithm::LeastConnections => How::LeastConnections(AtomicUsize::new(0)),
            Algorithm::LowestUsage => How::LowestUsage,
            Algorithm::LowestLatency => How::LowestLatency,
            Algorithm::Priority => {
                let mut levels: Vec<u32> = weights.clone();
                levels.sort_unstable_by(|a, b| b.cmp(a));
                levels.dedup();
                How::Priority(
                    levels
                        .into_iter()
                        .map(|w| {
                            let (m, ws): (Vec<usize>, Vec<u32>) = members
                                .iter()
                                .zip(&weights)
                                .filter(|(_, x)| **x == w)
                                .map(|(m, x)| (*m, *x))
                                .unzip();
                            let s = Schedule::new(&m, &ws);
                            (m, s)
                        })
                        .collect(),
                )
            }
        };
        Self {
            members,
            weights,
            how,
        }
    }

    /// The next target for a request, skipping `tried` and targets that are out; `key` is the
    /// consistent-hashing header's value.
    pub(super) fn pick(
        &self,
        health: &[Health],
        breaker: &Breaker,
        key: Option<&[u8]>,
        tried: &[usize],
    ) -> Option<usize> {
        let now = breaker.now();
        let ok = |i: usize| !tried.contains(&i) && breaker.admits(&health[i], now);
        match &self.how {
            How::RoundRobin(s) => s.next_where(ok),
            How::Hash { ring, fallback } => match key {
                Some(k) => {
                    let start = (hash(k) % ring.len() as u64) as usize;
                    (0..ring.len())
                        .map(|d| self.members[ring[(start + d) % ring.len()] as usize])
                        .find(|&i| ok(i))
                }
                None => fallback.next_where(ok),
            },
            How::LeastConnections(turn) => {
                let score = |k: usize| {
                    let i = self.members[k];
                    f64::from(health[i].inflight.load(Ordering::Relaxed))
                        / f64::from(self.weights[k])
                };
                self.best_by(turn, score, ok)
            }
            How::LowestUsage => {
                let score = |k: usize| {
                    let i = self.members[k];
                    f64::from_bits(health[i].usage.load(Ordering::Relaxed))
                        / f64::from(self.weights[k])
                };
                self.best_by(&AtomicUsize::new(0), score, ok)
            }
            How::LowestLatency => {
                let score = |k: usize| {
                    let i = self.members[k];
                    health[i]
                        .latency
                        .lock()
                        .ok()
                        .and_then(|l| l.map(|(v, _)| v))
                        .unwrap_or(0.0)
                };
                self.best_by(&AtomicUsize::new(0), score, ok)
            }
            How::Priority(groups) => groups.iter().find_map(|(_, s)| s.next_where(ok)),
        }
    }

    /// The admitted member with the lowest score; ties go round by `turn`.
    fn best_by(
        &self,
        turn: &AtomicUsize,
        score: impl Fn(usize) -> f64,
        ok: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = self.members.len();
        let start = turn.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut order: Vec<(f64, usize)> = (0..n)
            .map(|d| (start + d) % n)
            .map(|k| (score(k), k))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        order
            .into_iter()
            .map(|(_, k)| self.members[k])
            .find(|&i| ok(i))
    }
}

/// A fixed-key SipHash, so a key lands on the same slot in every process and run.
fn hash(bytes: &[u8]) -> u64 {
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(bytes);
    h.finish()
}

/// Weighted rendezvous hashing over `slots` ring entries.
fn ring(members: &[usize], weights: &[u32], slots: usize) -> Vec<u16> {
    (0..slots.max(1))
        .map(|slot| {
            let mut best = (f64::NEG_INFINITY, 0u16);
            for (k, (&m, &w)) in members.iter().zip(weights).enumerate() {
                let h = hash(format!("{m}:{slot}").as_bytes());
                // Uniform in (0, 1]; the weighted score -w / ln(u) favours heavier members.
                let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                let score = -f64::from(w) / u.ln();
                if score > best.0 {
                    best = (score, k as u16);
                }
            }
            best.1
        })
        .collect()
}

/// A weighted round-robin order over target indices, walked by an atomic counter.
#[derive(Debug)]
pub(super) struct Schedule {
    order: Vec<usize>,
    next: AtomicUsize,
}

impl Schedule {
    /// Smooth weighted round-robin (nginx's algorithm) over `members`, expanded once.
    pub(super) fn new(members: &[usize], weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w.max(1))).collect();
        let g = weights.iter().copied().fold(0, gcd).max(1);
        let reduced: Vec<i64> = weights.iter().map(|w| w / g).collect();
        let total: i64 = reduced.iter().sum();
        let len = total.clamp(1, 100_000) as usize;
        let mut current = vec![0i64; members.len()];
        let mut order = Vec::with_capacity(len);
        for _ in 0..len {
            let mut best = 0;
            for (i, w) in reduced.iter().enumerate() {
                current[i] += w;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(members[best]);
        }
        Self {
            order,
            next: AtomicUsize::new(0),
        }
    }

    /// The next target in weighted order that `ok` admits.
    pub(super) fn next_where(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let first = self.order[n % self.order.len()];
        if ok(first) {
            return Some(first);
        }
        (1..self.order.len())
            .map(|d| self.order[(n + d) % self.order.len()])
            .find(|&i| ok(i))
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .map(|w| {
                serde_json::from_value(serde_json::json!({
                    "route_type": "llm/v1/chat",
                    "model": {"provider": "openai", "name": "m"},
                    "weight": w
                }))
                .unwrap()
            })
            .collect()
    }

    fn config(algorithm: &str, extra: serde_json::Value) -> BalancerConfig {
        let mut v = serde_json::json!({"algorithm": algorithm});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn setup(
        algorithm: &str,
        weights: &[u32],
        extra: serde_json::Value,
    ) -> (Pool, Vec<Health>, Breaker) {
        let t = targets(weights);
        let c = config(algorithm, extra);
        let health = (0..t.len()).map(|_| Health::default()).collect();
        (
            Pool::new((0..t.len()).collect(), &t, &c),
            health,
            Breaker::new(&c),
        )
    }

    #[test]
    fn round_robin_follows_weights() {
        let (p, h, b) = setup("round-robin", &[100, 100], serde_json::json!({}));
        let picks: Vec<usize> = (0..4).map(|_| p.pick(&h, &b, None, &[]).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        let (p, h, b) = setup("round-robin", &[300, 100], serde_json::json!({}));
        let picks: Vec<usize> = (0..8).map(|_| p.pick(&h, &b, None, &[]).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&x| x == 0).count(), 6);
    }

    #[test]
    fn a_pick_skips_targets_already_tried() {
        let (p, h, b) = setup("round-robin", &[100, 100, 100], serde_json::json!({}));
        for _ in 0..6 {
            let i = p.pick(&h, &b, None, &[0, 2]).unwrap();
            assert_eq!(i, 1);
        }
        assert_eq!(p.pick(&h, &b, None, &[0, 1, 2]), None);
    }

    #[test]
    fn consistent_hashing_is_sticky_and_spreads_keys() {
        let (p, h, b) = setup(
            "consistent-hashing",
            &[100, 100, 100],
            serde_json::json!({}),
        );
        let mut seen = [0usize; 3];
        for user in 0..300 {
            let key = format!("user-{user}");
            let first = p.pick(&h, &b, Some(key.as_bytes()), &[]).unwrap();
            for _ in 0..5 {
                assert_eq!(p.pick(&h, &b, Some(key.as_bytes()), &[]), Some(first));
            }
            seen[first] += 1;
        }
        // 300 keys over 3 equal targets: each gets a fair share (binomial, bound ±60).
        assert!(seen.iter().all(|&n| (40..=160).contains(&n)), "{seen:?}");
    }

    #[test]
    fn least_connections_prefers_the_idle_target() {
        let (p, h, b) = setup("least-connections", &[100, 100], serde_json::json!({}));
        h[0].inflight.store(2, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(p.pick(&h, &b, None, &[]), Some(1));
        }
    }

    #[test]
    fn lowest_latency_prefers_the_fast_target() {
        let (p, h, b) = setup(
            "lowest-latency",
            &[100, 100],
            serde_json::json!({"latency_strategy": "e2e"}),
        );
        let pick = Pick {
            tokens: TokensCountStrategy::TotalTokens,
            latency: LatencyStrategy::E2e,
            track: true,
        };
        for _ in 0..5 {
            record(&h[0], &pick, None, None, Duration::from_millis(900));
            record(&h[1], &pick, None, None, Duration::from_millis(40));
        }
        for _ in 0..10 {
            assert_eq!(p.pick(&h, &b, None, &[]), Some(1));
        }
    }

    #[test]
    fn lowest_usage_prefers_the_least_used_target() {
        let (p, h, b) = setup("lowest-usage", &[100, 100], serde_json::json!({}));
        let pick = Pick {
            tokens: TokensCountStrategy::TotalTokens,
            latency: LatencyStrategy::Tpot,
            track: true,
        };
        record(
            &h[1],
            &pick,
            Some(Usage::new(500, 500)),
            None,
            Duration::ZERO,
        );
        record(&h[0], &pick, Some(Usage::new(10, 10)), None, Duration::ZERO);
        assert_eq!(p.pick(&h, &b, None, &[]), Some(0));
    }

    #[test]
    fn priority_uses_the_heaviest_group_until_all_of_it_is_out() {
        let (p, h, b) = setup(
            "priority",
            &[100, 100, 10],
            serde_json::json!({"max_fails": 1, "fail_timeout": 60000}),
        );
        for _ in 0..6 {
            assert!(p.pick(&h, &b, None, &[]).unwrap() < 2);
        }
        b.failure(&h[0]);
        assert_eq!(p.pick(&h, &b, None, &[]), Some(1));
        b.failure(&h[1]);
        assert_eq!(p.pick(&h, &b, None, &[]), Some(2));
    }

    #[test]
    fn the_breaker_counts_total_failures_and_lets_one_probe_through_after_the_timeout() {
        let (p, h, b) = setup(
            "round-robin",
            &[100],
            serde_json::json!({"max_fails": 2, "fail_timeout": 50}),
        );
        b.failure(&h[0]);
        b.success(&h[0]);
        b.failure(&h[0]);
        // 2 failures and a success inside the window still count 2: out.
        assert_eq!(p.pick(&h, &b, None, &[]), None);
        std::thread::sleep(Duration::from_millis(60));
        // One probe only.
        assert_eq!(p.pick(&h, &b, None, &[]), Some(0));
        assert_eq!(p.pick(&h, &b, None, &[]), None);
        b.success(&h[0]);
        assert_eq!(p.pick(&h, &b, None, &[]), Some(0));
        assert_eq!(p.pick(&h, &b, None, &[]), Some(0));
    }

    #[test]
    fn retry_after_takes_a_target_out_for_that_long() {
        let (p, h, b) = setup("round-robin", &[100, 100], serde_json::json!({}));
        b.cool_down(&h[0], Duration::from_millis(40));
        for _ in 0..4 {
            assert_eq!(p.pick(&h, &b, None, &[]), Some(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        let picks: Vec<usize> = (0..4).map(|_| p.pick(&h, &b, None, &[]).unwrap()).collect();
        assert!(picks.contains(&0), "{picks:?}");
    }
}
