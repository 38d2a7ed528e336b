//! Owns snapshot compilation: routes → router + per-route plugin chains (see `chain.rs`),
//! services → upstream targets. Runs once per snapshot, never per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::chain::{Chain, InstanceCache};
use super::router::Router;
use crate::context::RouteRef;
use crate::model::{Route, Service};
use crate::plugins::{CompileEnv, ProxyOptions};
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
    pub chain: Chain,
    /// The route and service as the log phase names them.
    pub names: Arc<RouteRef>,
}

/// The compiled, immutable form of one snapshot.
#[derive(Debug, Default)]
pub struct Compiled {
    pub revision: u64,
    pub router: Router,
    pub routes: Vec<CompiledRoute>,
}

impl Compiled {
    pub fn build(s: &ConfigSnapshot, options: &ProxyOptions) -> Self {
        let services: HashMap<&str, &Service> =
            s.services.iter().map(|x| (x.id.as_str(), x)).collect();
        let env = CompileEnv::new(s, options);
        let mut cache = InstanceCache::new();
        let routes = s
            .routes
            .iter()
            .map(|r| compile_route(r, &services, &env, &mut cache))
            .collect();
        Self {
            revision: s.revision,
            router: Router::compile(&s.routes),
            routes,
        }
    }
}

fn compile_route(
    r: &Route,
    services: &HashMap<&str, &Service>,
    env: &CompileEnv<'_>,
    cache: &mut InstanceCache,
) -> CompiledRoute {
    let chain = Chain::build(r, &env.snapshot.plugins, env, cache);
    let svc = r.service.as_ref().and_then(|f| services.get(f.id.as_str()));
    let service = svc.filter(|s| s.enabled).map(|s| ServiceTarget {
        origin: format!("{}://{}:{}", s.protocol, s.host, s.port),
        path: s.path.clone(),
        timeout: Duration::from_millis(u64::from(s.connect_timeout) + u64::from(s.read_timeout)),
    });
    CompiledRoute {
        id: r.id.clone(),
        strip_path: r.strip_path,
        preserve_host: r.preserve_host,
        path_v1: r.path_handling == "v1",
        service,
        chain,
        names: Arc::new(RouteRef {
            id: r.id.clone(),
            name: r.name.clone(),
            service_id: svc.map(|s| s.id.clone()),
            service_name: svc.and_then(|s| s.name.clone()),
        }),
    }
}
