//! Owns snapshot compilation: routes → router + per-route plugin chains (route > service >
//! global, consumer-scoped overrides resolved after auth, enabled plugins only), services →
//! upstream targets, credentials → key table. Runs once per snapshot, never per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::ProxyOptions;
use super::key_auth::{KeyAuth, KeyTable};
use super::router::Router;
use crate::ai::plugin::AiPlugin;
use crate::model::{Plugin, Route, Service};
use crate::plugins::{AiProxyAdvancedConfig, AiProxyConfig, KeyAuthConfig};
use crate::snapshot::ConfigSnapshot;

/// Where a plain (non-AI) route sends traffic.
#[derive(Debug)]
pub struct ServiceTarget {
    /// `scheme://host:port`.
    pub origin: String,
    pub path: Option<String>,
    pub timeout: Duration,
}

/// One route, ready to serve.
#[derive(Debug)]
pub struct CompiledRoute {
    pub id: String,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub path_v1: bool,
    pub service: Option<ServiceTarget>,
    pub key_auth: Option<KeyAuth>,
    pub ai: Option<Arc<AiPlugin>>,
    /// Consumer id → the ai plugin scoped to that consumer on this route.
    pub consumer_ai: HashMap<String, Arc<AiPlugin>>,
    /// A plugin whose config could not be used: the route answers 500 rather than run
    /// without it.
    pub invalid: Option<String>,
}

/// The compiled, immutable form of one snapshot.
#[derive(Debug, Default)]
pub struct Compiled {
    pub revision: u64,
    pub router: Router,
    pub routes: Vec<CompiledRoute>,
    pub keys: KeyTable,
}

const AI_NAMES: [&str; 2] = ["ai-proxy-advanced", "ai-proxy"];

impl Compiled {
    pub fn build(s: &ConfigSnapshot, options: &ProxyOptions) -> Self {
        let services: HashMap<&str, &Service> =
            s.services.iter().map(|x| (x.id.as_str(), x)).collect();
        let mut ai_cache: HashMap<String, Result<Arc<AiPlugin>, String>> = HashMap::new();
        let routes = s
            .routes
            .iter()
            .map(|r| compile_route(r, &services, &s.plugins, options, &mut ai_cache))
            .collect();
        Self {
            revision: s.revision,
            router: Router::compile(&s.routes),
            routes,
            keys: KeyTable::compile(&s.consumers, &s.key_auths),
        }
    }
}

/// How specific a plugin's scope is for `route` (higher wins), or `None` if it does not apply.
fn scope(p: &Plugin, route: &Route) -> Option<u8> {
    let route_ok = p.route.as_ref().is_none_or(|f| f.id == route.id);
    let service_ok = p
        .service
        .as_ref()
        .is_none_or(|f| route.service.as_ref().is_some_and(|s| s.id == f.id));
    (p.enabled && route_ok && service_ok)
        .then(|| u8::from(p.route.is_some()) * 2 + u8::from(p.service.is_some()))
}

fn best<'a>(plugins: impl Iterator<Item = &'a Plugin>, route: &Route) -> Option<&'a Plugin> {
    plugins
        .filter_map(|p| scope(p, route).map(|s| (s, p)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, p)| p)
}

fn config_or_empty(p: &Plugin) -> serde_json::Value {
    if p.config.is_null() {
        serde_json::json!({})
    } else {
        p.config.clone()
    }
}

/// Names the plugin, never the offending value: serde's messages quote values, and a
/// misplaced value may be a secret.
fn config_error(plugin: &str, e: &serde_json::Error) -> String {
    format!(
        "plugin {plugin} config does not match its schema ({:?} error); check it with the admin API's /schemas/plugins/validate",
        e.classify()
    )
}

fn compile_ai(
    p: &Plugin,
    options: &ProxyOptions,
    cache: &mut HashMap<String, Result<Arc<AiPlugin>, String>>,
) -> Result<Arc<AiPlugin>, String> {
    let key = if p.id.is_empty() {
        format!("{p:p}")
    } else {
        p.id.clone()
    };
    cache
        .entry(key)
        .or_insert_with(|| {
            let config: AiProxyAdvancedConfig = if p.name == "ai-proxy" {
                serde_json::from_value::<AiProxyConfig>(config_or_empty(p)).map(Into::into)
            } else {
                serde_json::from_value(config_or_empty(p))
            }
            .map_err(|e| config_error(&p.name, &e))?;
            Ok(Arc::new(AiPlugin::compile(
                &config,
                &options.upstream_overrides,
            )))
        })
        .clone()
}

fn compile_route(
    r: &Route,
    services: &HashMap<&str, &Service>,
    plugins: &[Plugin],
    options: &ProxyOptions,
    ai_cache: &mut HashMap<String, Result<Arc<AiPlugin>, String>>,
) -> CompiledRoute {
    let mut invalid = None;
    let unscoped = || plugins.iter().filter(|p| p.consumer.is_none());
    let key_auth = best(unscoped().filter(|p| p.name == "key-auth"), r).and_then(|p| {
        match serde_json::from_value::<KeyAuthConfig>(config_or_empty(p)) {
            Ok(c) => Some(KeyAuth::compile(c)),
            Err(e) => {
                invalid = Some(config_error("key-auth", &e));
                None
            }
        }
    });
    let ai_plugin = AI_NAMES
        .iter()
        .find_map(|name| best(unscoped().filter(|p| p.name == *name), r));
    let ai = ai_plugin.and_then(|p| match compile_ai(p, options, ai_cache) {
        Ok(a) => Some(a),
        Err(e) => {
            invalid = Some(e);
            None
        }
    });
    let mut consumer_ai = HashMap::new();
    let mut by_consumer: HashMap<&str, Vec<&Plugin>> = HashMap::new();
    for p in plugins
        .iter()
        .filter(|p| AI_NAMES.contains(&p.name.as_str()))
    {
        if let Some(c) = &p.consumer {
            by_consumer.entry(c.id.as_str()).or_default().push(p);
        }
    }
    for (consumer, ps) in by_consumer {
        if let Some(p) = best(ps.into_iter(), r) {
            match compile_ai(p, options, ai_cache) {
                Ok(a) => {
                    consumer_ai.insert(consumer.to_owned(), a);
                }
                Err(e) => invalid = Some(e),
            }
        }
    }
    let service = r
        .service
        .as_ref()
        .and_then(|f| services.get(f.id.as_str()))
        .filter(|s| s.enabled)
        .map(|s| ServiceTarget {
            origin: format!("{}://{}:{}", s.protocol, s.host, s.port),
            path: s.path.clone(),
            timeout: Duration::from_millis(
                u64::from(s.connect_timeout) + u64::from(s.read_timeout),
            ),
        });
    CompiledRoute {
        id: r.id.clone(),
        strip_path: r.strip_path,
        preserve_host: r.preserve_host,
        path_v1: r.path_handling == "v1",
        service,
        key_auth,
        ai,
        consumer_ai,
        invalid,
    }
}
