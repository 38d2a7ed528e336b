//! Owns a route's plugin chain: for each plugin name that applies to the route, the instance
//! that wins by Kong's precedence (the most specific scope wins), resolved once per config
//! revision, in Kong's priority order. Consumer-scoped instances are looked up by the consumer
//! the auth plugins set, when the chain reaches them (Kong's plugins iterator does the same).

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Plugin, Route};
use crate::plugins::{CompileEnv, Instance};

/// Kong's precedence, most specific first (consumer groups arrive with their entity):
/// Consumer+Route+Service > ConsumerGroup+Route+Service > Consumer+Route > Consumer+Service >
/// ConsumerGroup+Route > ConsumerGroup+Service > Route+Service > Consumer > ConsumerGroup >
/// Route > Service > global. Higher is more specific.
pub fn rank(consumer: bool, group: bool, route: bool, service: bool) -> u8 {
    match (consumer, group, route, service) {
        (true, _, true, true) => 12,
        (false, true, true, true) => 11,
        (true, _, true, false) => 10,
        (true, _, false, true) => 9,
        (false, true, true, false) => 8,
        (false, true, false, true) => 7,
        (false, false, true, true) => 6,
        (true, _, false, false) => 5,
        (false, true, false, false) => 4,
        (false, false, true, false) => 3,
        (false, false, false, true) => 2,
        (false, false, false, false) => 1,
    }
}

/// An instance with the rank of the scope it was configured at.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub rank: u8,
    pub instance: Arc<Instance>,
}

/// One plugin name in a route's chain.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub priority: u32,
    /// The winner among instances not scoped to a consumer.
    pub default: Option<Ranked>,
    /// Consumer id → the winner among instances scoped to that consumer.
    pub by_consumer: HashMap<String, Ranked>,
}

impl Slot {
    /// The instance that runs for `consumer` (none authenticated yet: the default).
    pub fn pick(&self, consumer: Option<&str>) -> Option<&Arc<Instance>> {
        let scoped = if self.by_consumer.is_empty() {
            None
        } else {
            consumer.and_then(|c| self.by_consumer.get(c))
        };
        match (scoped, &self.default) {
            (Some(s), Some(d)) if d.rank > s.rank => Some(&d.instance),
            (Some(s), _) => Some(&s.instance),
            (None, d) => d.as_ref().map(|d| &d.instance),
        }
    }

    fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.default
            .iter()
            .chain(self.by_consumer.values())
            .map(|r| &*r.instance)
    }
}

/// A route's plugins, in priority order.
#[derive(Debug, Default)]
pub struct Chain {
    pub slots: Vec<Slot>,
    /// Some instance reads the request body, so it is buffered first.
    pub reads_body: bool,
    /// The body limit of the route's default instances (0 = none).
    pub body_limit: u64,
    pub has_response: bool,
    pub has_log: bool,
    /// A plugin whose config could not be used: the route answers 500 rather than run
    /// without it.
    pub invalid: Option<String>,
}

/// Compiled instances, shared by every route a plugin entity applies to.
pub type InstanceCache = HashMap<String, Result<Arc<Instance>, String>>;

impl Chain {
    pub fn build(
        route: &Route,
        plugins: &[Plugin],
        env: &CompileEnv<'_>,
        cache: &mut InstanceCache,
    ) -> Self {
        let mut chain = Chain::default();
        let mut by_name: HashMap<&str, Slot> = HashMap::new();
        for p in plugins.iter().filter(|p| p.enabled) {
            let Some(rank) = scope_rank(p, route) else {
                continue;
            };
            let Some(priority) = crate::plugins::priority(&p.name) else {
                chain.invalid = Some(format!(
                    "plugin {} is not supported by this gateway",
                    p.name
                ));
                continue;
            };
            let instance = match compile(p, env, cache) {
                Ok(i) => i,
                Err(e) => {
                    chain.invalid = Some(e);
                    continue;
                }
            };
            let slot = by_name.entry(p.name.as_str()).or_insert_with(|| Slot {
                name: p.name.clone(),
                priority,
                default: None,
                by_consumer: HashMap::new(),
            });
            let ranked = Ranked { rank, instance };
            let place = match &p.consumer {
                Some(c) => slot.by_consumer.get_mut(&c.id),
                None => slot.default.as_mut(),
            };
            match place {
                Some(cur) if cur.rank >= rank => {}
                Some(cur) => *cur = ranked,
                None => match &p.consumer {
                    Some(c) => {
                        slot.by_consumer.insert(c.id.clone(), ranked);
                    }
                    None => slot.default = Some(ranked),
                },
            }
        }
        // ai-proxy and ai-proxy-advanced are one job: the more specific instance wins, as the
        // proxy has always done (a route-level ai-proxy-advanced over a global ai-proxy).
        if by_name.contains_key("ai-proxy") && by_name.contains_key("ai-proxy-advanced") {
            by_name.remove("ai-proxy");
        }
        let mut slots: Vec<Slot> = by_name.into_values().collect();
        slots.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        for s in &slots {
            for i in s.instances() {
                chain.reads_body |= i.reads_body();
                chain.has_response |= i.has_response();
                chain.has_log |= i.has_log();
            }
            if let Some(d) = &s.default {
                chain.body_limit = chain.body_limit.max(d.instance.body_limit());
            }
        }
        chain.slots = slots;
        chain
    }
}

/// The rank of `p`'s scope for `route`, or `None` when it does not apply to the route.
fn scope_rank(p: &Plugin, route: &Route) -> Option<u8> {
    let route_ok = p.route.as_ref().is_none_or(|f| f.id == route.id);
    let service_ok = p
        .service
        .as_ref()
        .is_none_or(|f| route.service.as_ref().is_some_and(|s| s.id == f.id));
    (route_ok && service_ok).then(|| {
        rank(
            p.consumer.is_some(),
            false,
            p.route.is_some(),
            p.service.is_some(),
        )
    })
}

fn compile(
    p: &Plugin,
    env: &CompileEnv<'_>,
    cache: &mut InstanceCache,
) -> Result<Arc<Instance>, String> {
    let key = if p.id.is_empty() {
        format!("{p:p}")
    } else {
        p.id.clone()
    };
    cache
        .entry(key)
        .or_insert_with(|| Instance::compile(&p.name, &p.config, env).map(Arc::new))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::rank;

    #[test]
    fn kong_precedence_orders_every_scope_combination() {
        // Most specific first, as Kong's plugin docs list them.
        let order = [
            rank(true, false, true, true),
            rank(false, true, true, true),
            rank(true, false, true, false),
            rank(true, false, false, true),
            rank(false, true, true, false),
            rank(false, true, false, true),
            rank(false, false, true, true),
            rank(true, false, false, false),
            rank(false, true, false, false),
            rank(false, false, true, false),
            rank(false, false, false, true),
            rank(false, false, false, false),
        ];
        assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
    }
}
