//! Owns how ai-proxy-advanced picks a target among several: smooth weighted round-robin
//! (nginx's algorithm) over a precomputed order walked by an atomic counter.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::config::Target;

/// A weighted round-robin order over target indices, walked by an atomic counter.
#[derive(Debug)]
pub(super) struct Schedule {
    order: Vec<usize>,
    next: AtomicUsize,
}

impl Schedule {
    /// Smooth weighted round-robin (nginx's algorithm) over `members`, expanded once.
    pub(super) fn new(members: &[usize], targets: &[Target]) -> Self {
        let weights: Vec<i64> = members
            .iter()
            .map(|&i| i64::from(targets[i].weight.max(1)))
            .collect();
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

    pub(super) fn pick(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.order[n % self.order.len()]
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

    #[test]
    fn round_robin_follows_weights() {
        let t = targets(&[100, 100]);
        let s = Schedule::new(&[0, 1], &t);
        let picks: Vec<usize> = (0..4).map(|_| s.pick()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        let t = targets(&[300, 100]);
        let s = Schedule::new(&[0, 1], &t);
        let picks: Vec<usize> = (0..8).map(|_| s.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 6);
    }
}
