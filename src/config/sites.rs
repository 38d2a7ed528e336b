//! Owns the walk over every plugin in a document, nested or top-level, with the scope it sits
//! in (service, route, consumer), which the checks, the secret checks and the snapshot share.

use super::document::{Document, Plugin, Reference, Route};
use super::position::{index, join};

/// Where a plugin sits: its parent scope by name (or `id:<id>`), from nesting or references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub service: Option<String>,
    pub route: Option<String>,
    pub consumer: Option<String>,
}

/// One plugin in a document, with its path and effective scope.
pub struct PluginSite<'a> {
    pub path: String,
    pub plugin: &'a Plugin,
    pub scope: Scope,
    /// The kind of entity it is nested under (`service`, `route`, `consumer`), if nested.
    pub parent: Option<&'static str>,
}

/// The key a reference is matched by: its name, or `id:<id>`.
pub fn ref_key(r: &Reference) -> String {
    match (r.name(), r.id()) {
        (Some(n), _) => n.to_owned(),
        (None, Some(id)) => format!("id:{id}"),
        (None, None) => String::new(),
    }
}

pub(super) fn entity_key(name: Option<&str>, id: Option<&str>) -> Option<String> {
    name.map(str::to_owned)
        .or_else(|| id.map(|i| format!("id:{i}")))
}

/// Every plugin in a document: nested under services, their routes, top-level routes,
/// consumers, and top-level.
pub fn plugin_sites(doc: &Document) -> Vec<PluginSite<'_>> {
    let mut sites: Vec<(String, &Plugin, Scope, Option<&'static str>)> = Vec::new();
    for (si, s) in doc.services.iter().enumerate() {
        let sp = index("services", si);
        let skey = entity_key(s.name.as_deref(), s.id.as_deref());
        for (pi, p) in s.plugins.iter().enumerate() {
            let base = Scope {
                service: skey.clone(),
                ..Scope::default()
            };
            sites.push((index(&join(&sp, "plugins"), pi), p, base, Some("service")));
        }
        for (ri, r) in s.routes.iter().enumerate() {
            route_plugins(&index(&join(&sp, "routes"), ri), r, &mut sites);
        }
    }
    for (ri, r) in doc.routes.iter().enumerate() {
        route_plugins(&index("routes", ri), r, &mut sites);
    }
    for (ci, c) in doc.consumers.iter().enumerate() {
        let ckey =
            entity_key(c.username.as_deref(), c.id.as_deref()).or_else(|| c.custom_id.clone());
        for (pi, p) in c.plugins.iter().enumerate() {
            let base = Scope {
                consumer: ckey.clone(),
                ..Scope::default()
            };
            let path = index(&join(&index("consumers", ci), "plugins"), pi);
            sites.push((path, p, base, Some("consumer")));
        }
    }
    for (pi, p) in doc.plugins.iter().enumerate() {
        sites.push((index("plugins", pi), p, Scope::default(), None));
    }
    let own = |r: &Option<Reference>| r.as_ref().map(ref_key);
    sites
        .into_iter()
        .map(|(path, plugin, base, parent)| PluginSite {
            path,
            scope: Scope {
                service: base.service.or_else(|| own(&plugin.service)),
                route: base.route.or_else(|| own(&plugin.route)),
                consumer: base.consumer.or_else(|| own(&plugin.consumer)),
            },
            plugin,
            parent,
        })
        .collect()
}

fn route_plugins<'a>(
    rp: &str,
    r: &'a Route,
    sites: &mut Vec<(String, &'a Plugin, Scope, Option<&'static str>)>,
) {
    let rkey = entity_key(r.name.as_deref(), r.id.as_deref());
    for (pi, p) in r.plugins.iter().enumerate() {
        let base = Scope {
            route: rkey.clone(),
            ..Scope::default()
        };
        sites.push((index(&join(rp, "plugins"), pi), p, base, Some("route")));
    }
}
