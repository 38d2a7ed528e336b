//! Owns the bridge between decK documents and the gateway's flattened entity set: loading and
//! checking state files into a merged document, turning it into a `ConfigSnapshot` (defaults
//! filled, plugin configs normalised, select tags merged, deterministic ids), and turning a
//! snapshot back into a nested document (for `render` and `dump`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use embedded_gateway::model::{self, EntityKind, ForeignKey};
use embedded_gateway::plugins;
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::json;
use uuid::Uuid;

use crate::config::check::{self, ref_key};
use crate::config::document::{
    self, Consumer, Document, EntityDefaults, FORMAT_VERSION, KeyAuth, Plugin, Reference, Route,
    Service,
};
use crate::config::{Diagnostics, load};

pub use crate::config::load::LoadOptions;

/// A merged, checked set of state files.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// All files merged: entity lists concatenated in file order, file settings unified.
    pub document: Document,
    /// `_info.select_tags` from every file, sorted and deduplicated.
    pub select_tags: Vec<String>,
    /// `_konnect.control_plane_name`.
    pub control_plane_name: Option<String>,
    /// `_defaults.kongctl.namespace`.
    pub namespace: Option<String>,
    /// `_defaults.kongctl.protected`.
    pub protected: Option<bool>,
    /// References to entities no file defines (only with `live_references`), for the
    /// gateway to resolve.
    pub external: Vec<check::External>,
}

/// Reads, expands, parses and checks state files (files, directories, or `-` for stdin), and
/// merges them. On failure, every problem found is returned, each located at file:line:col.
pub fn load(files: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let read = load::read_all(files, opts);
    let mut diags = read.diags;
    // References across files only make sense when every file could be read.
    let mut external = Vec::new();
    if read.complete {
        let (problems, ext) = check::check(&read.parsed, opts.live_references);
        diags.extend(problems);
        external = ext;
    }
    if !diags.is_empty() {
        // In input order, then by place in the file.
        let rank = |file: &str| read.names.iter().position(|n| n == file);
        diags.sort_by_key(|d| (rank(&d.file), d.line, d.col));
        return Err(Diagnostics(diags));
    }
    let mut loaded = merge(read.parsed.into_iter().map(|p| p.document).collect());
    loaded.external = external;
    Ok(loaded)
}

fn merge(docs: Vec<Document>) -> Loaded {
    let mut out = Document {
        format_version: Some(FORMAT_VERSION.to_owned()),
        ..Document::default()
    };
    let mut tags = BTreeSet::new();
    let mut lookup = document::LookupTags::default();
    for d in docs {
        tags.extend(d.info.select_tags);
        let l = d.info.default_lookup_tags;
        for (all, more) in [
            (&mut lookup.services, l.services),
            (&mut lookup.routes, l.routes),
            (&mut lookup.consumers, l.consumers),
        ] {
            for t in more {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
        }
        if out.info.defaults.is_empty() {
            out.info.defaults = d.info.defaults;
        }
        if out.konnect.is_empty() {
            out.konnect = d.konnect;
        }
        if out.defaults.kongctl.namespace.is_none() {
            out.defaults.kongctl.namespace = d.defaults.kongctl.namespace;
        }
        if out.defaults.kongctl.protected.is_none() {
            out.defaults.kongctl.protected = d.defaults.kongctl.protected;
        }
        out.services.extend(d.services);
        out.routes.extend(d.routes);
        out.consumers.extend(d.consumers);
        out.plugins.extend(d.plugins);
    }
    out.info.select_tags = tags.into_iter().collect();
    out.info.default_lookup_tags = lookup;
    Loaded {
        select_tags: out.info.select_tags.clone(),
        control_plane_name: out.konnect.control_plane_name.clone(),
        namespace: out.defaults.kongctl.namespace.clone(),
        protected: out.defaults.kongctl.protected,
        external: Vec::new(),
        document: out,
    }
}

// ----- ids -------------------------------------------------------------------------------

/// The namespace every deterministic entity id is derived in (UUIDv5).
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6761_6e74_7279_4000_8000_0000_0000_0001);

/// The id of an entity with no `id` in the file: UUIDv5 of its kind and natural key, so the
/// same file always yields the same ids.
pub fn entity_id(kind: EntityKind, natural_key: &str) -> String {
    let name = format!("{}:{natural_key}", kind.display_name());
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

/// A plugin's natural key: name plus scope plus instance name.
pub fn plugin_key(
    name: &str,
    service: Option<&str>,
    route: Option<&str>,
    consumer: Option<&str>,
    instance_name: Option<&str>,
) -> String {
    fn part(v: Option<&str>) -> &str {
        v.unwrap_or("")
    }
    format!(
        "{name}|service={}|route={}|consumer={}|instance={}",
        part(service),
        part(route),
        part(consumer),
        part(instance_name)
    )
}

// ----- document → snapshot -----------------------------------------------------------------

/// Flattens a loaded document into the gateway's entity set at revision 0.
pub fn to_snapshot(loaded: &Loaded) -> ConfigSnapshot {
    to_snapshot_with(loaded, &HashMap::new())
}

/// Like [`to_snapshot`], with references to entities no file defines resolved to live ids:
/// `resolved` maps (kind, reference key) to the id the gateway has.
pub fn to_snapshot_with(
    loaded: &Loaded,
    resolved: &HashMap<(EntityKind, String), String>,
) -> ConfigSnapshot {
    let doc = &loaded.document;
    let mut ids = Ids::of(doc);
    for (key, id) in resolved {
        ids.by_key.entry(key.clone()).or_insert_with(|| id.clone());
    }
    let tags = |own: &Option<Vec<String>>| merge_tags(own.as_deref(), &loaded.select_tags);
    let defaults = &doc.info.defaults;
    let mut snap = ConfigSnapshot::default();
    for s in &doc.services {
        let sid = ids.service_id(s);
        snap.services
            .push(build_service(s, &sid, tags(&s.tags), defaults));
        for r in &s.routes {
            let rid = ids.route_id(r);
            let fk = Some(ForeignKey::new(sid.clone()));
            snap.routes
                .push(build_route(r, &rid, fk, tags(&r.tags), defaults));
        }
    }
    for r in &doc.routes {
        let fk = r
            .service
            .as_ref()
            .map(|s| ForeignKey::new(ids.resolve_service(s)));
        snap.routes.push(build_route(
            r,
            &ids.route_id(r),
            fk,
            tags(&r.tags),
            defaults,
        ));
    }
    for c in &doc.consumers {
        let cid = ids.consumer_id(c);
        snap.consumers.push(model::Consumer {
            id: cid.clone(),
            created_at: 0,
            updated_at: 0,
            username: c.username.clone(),
            custom_id: c.custom_id.clone(),
            tags: tags(&c.tags),
        });
        for k in &c.keyauth_credentials {
            snap.key_auths.push(build_key_auth(k, &cid, tags(&k.tags)));
        }
    }
    for site in check::plugin_sites(doc) {
        let p = site.plugin;
        let resolve = |key: &Option<String>, kind| key.as_ref().map(|k| ids.resolve_key(kind, k));
        let service = resolve(&site.scope.service, EntityKind::Service);
        let route = resolve(&site.scope.route, EntityKind::Route);
        let consumer = resolve(&site.scope.consumer, EntityKind::Consumer);
        let id = p.id.clone().unwrap_or_else(|| {
            let key = plugin_key(
                &p.name,
                site.scope.service.as_deref(),
                site.scope.route.as_deref(),
                site.scope.consumer.as_deref(),
                p.instance_name.as_deref(),
            );
            entity_id(EntityKind::Plugin, &key)
        });
        let raw = p.config.clone().unwrap_or(serde_json::Value::Null);
        let config = normalized(&p.name, raw);
        snap.plugins.push(model::Plugin {
            id,
            created_at: 0,
            updated_at: 0,
            name: p.name.clone(),
            instance_name: p.instance_name.clone(),
            service: service.map(ForeignKey::new),
            route: route.map(ForeignKey::new),
            consumer: consumer.map(ForeignKey::new),
            config,
            protocols: Some(
                p.protocols
                    .clone()
                    .unwrap_or_else(embedded_gateway::plugins::default_protocols),
            ),
            enabled: p.enabled.unwrap_or(true),
            tags: tags(&p.tags),
        });
    }
    snap
}

/// A plugin config with Kong's defaults filled, as a fixed point: normalising the result again
/// changes nothing (one pass fills `model.options` from `Default`, a second fills the defaults
/// inside it, such as `azure_api_version`), so a rendered or applied config never drifts.
/// Configs were checked by `load`; one that still fails keeps its raw value.
fn normalized(name: &str, raw: serde_json::Value) -> serde_json::Value {
    plugins::normalize_config(name, &raw).unwrap_or(raw)
}

/// An entity's own tags plus the select tags, sorted and deduplicated.
fn merge_tags(own: Option<&[String]>, select: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = own
        .unwrap_or_default()
        .iter()
        .chain(select)
        .cloned()
        .collect();
    set.into_iter().collect()
}

/// Names (and `id:<id>` keys) to ids, for resolving references.
struct Ids {
    by_key: HashMap<(EntityKind, String), String>,
}

impl Ids {
    fn of(doc: &Document) -> Self {
        let mut ids = Ids {
            by_key: HashMap::new(),
        };
        let routes = doc
            .services
            .iter()
            .flat_map(|s| s.routes.iter())
            .chain(&doc.routes);
        for s in &doc.services {
            let id = ids.service_id(s);
            ids.remember(EntityKind::Service, s.name.as_deref(), &id);
        }
        for r in routes {
            let id = ids.route_id(r);
            ids.remember(EntityKind::Route, r.name.as_deref(), &id);
        }
        for c in &doc.consumers {
            let id = ids.consumer_id(c);
            ids.remember(EntityKind::Consumer, c.username.as_deref(), &id);
            if c.username.is_none() {
                ids.remember(EntityKind::Consumer, c.custom_id.as_deref(), &id);
            }
        }
        ids
    }

    fn remember(&mut self, kind: EntityKind, name: Option<&str>, id: &str) {
        if let Some(n) = name {
            self.by_key.insert((kind, n.to_owned()), id.to_owned());
        }
        self.by_key
            .insert((kind, format!("id:{id}")), id.to_owned());
    }

    fn service_id(&self, s: &Service) -> String {
        s.id.clone()
            .unwrap_or_else(|| entity_id(EntityKind::Service, s.name.as_deref().unwrap_or("")))
    }

    fn route_id(&self, r: &Route) -> String {
        r.id.clone()
            .unwrap_or_else(|| entity_id(EntityKind::Route, r.name.as_deref().unwrap_or("")))
    }

    fn consumer_id(&self, c: &Consumer) -> String {
        c.id.clone()
            .unwrap_or_else(|| match (&c.username, &c.custom_id) {
                (Some(u), _) => entity_id(EntityKind::Consumer, u),
                (None, Some(cid)) => entity_id(EntityKind::Consumer, &format!("custom_id:{cid}")),
                (None, None) => entity_id(EntityKind::Consumer, ""),
            })
    }

    fn resolve_service(&self, r: &Reference) -> String {
        self.resolve_key(EntityKind::Service, &ref_key(r))
    }

    /// The id for a reference key (a name, or `id:<id>`); an unknown `id:` key is that id.
    fn resolve_key(&self, kind: EntityKind, key: &str) -> String {
        self.by_key
            .get(&(kind, key.to_owned()))
            .cloned()
            .unwrap_or_else(|| key.strip_prefix("id:").unwrap_or(key).to_owned())
    }
}

fn build_service(s: &Service, id: &str, tags: Vec<String>, d: &EntityDefaults) -> model::Service {
    // The model's serde defaults are Kong's; `host` is the only field without one.
    let mut m: model::Service = serde_json::from_value(json!({ "host": "" }))
        .expect("a service with only a host deserialises");
    let d = &d.service;
    let (protocol, host, port, path) = match &s.url {
        Some(url) => match document::split_url(url) {
            Ok((pr, h, po, pa)) => (Some(pr), Some(h), Some(po), pa),
            Err(_) => (None, None, None, None),
        },
        None => (s.protocol.clone(), s.host.clone(), s.port, s.path.clone()),
    };
    m.id = id.to_owned();
    m.name = s.name.clone();
    set(&mut m.protocol, protocol.or_else(|| d.protocol.clone()));
    set(&mut m.host, host.or_else(|| d.host.clone()));
    set(&mut m.port, port.or(d.port));
    m.path = path.or_else(|| {
        if s.url.is_none() {
            d.path.clone()
        } else {
            None
        }
    });
    set(&mut m.retries, s.retries.or(d.retries));
    set(
        &mut m.connect_timeout,
        s.connect_timeout.or(d.connect_timeout),
    );
    set(&mut m.write_timeout, s.write_timeout.or(d.write_timeout));
    set(&mut m.read_timeout, s.read_timeout.or(d.read_timeout));
    set(&mut m.enabled, s.enabled.or(d.enabled));
    m.tls_verify = s.tls_verify;
    m.tls_verify_depth = s.tls_verify_depth;
    m.tags = tags;
    m
}

fn build_route(
    r: &Route,
    id: &str,
    service: Option<ForeignKey>,
    tags: Vec<String>,
    d: &EntityDefaults,
) -> model::Route {
    let mut m: model::Route =
        serde_json::from_value(json!({})).expect("an empty route deserialises with defaults");
    let d = &d.route;
    m.id = id.to_owned();
    m.name = r.name.clone();
    set(
        &mut m.protocols,
        r.protocols.clone().or_else(|| d.protocols.clone()),
    );
    m.methods = r.methods.clone();
    m.hosts = r.hosts.clone();
    m.paths = r.paths.clone();
    m.headers = r.headers.clone();
    set(
        &mut m.https_redirect_status_code,
        r.https_redirect_status_code
            .or(d.https_redirect_status_code),
    );
    set(&mut m.regex_priority, r.regex_priority.or(d.regex_priority));
    set(&mut m.strip_path, r.strip_path.or(d.strip_path));
    set(&mut m.preserve_host, r.preserve_host.or(d.preserve_host));
    set(
        &mut m.request_buffering,
        r.request_buffering.or(d.request_buffering),
    );
    set(
        &mut m.response_buffering,
        r.response_buffering.or(d.response_buffering),
    );
    set(
        &mut m.path_handling,
        r.path_handling.clone().or_else(|| d.path_handling.clone()),
    );
    m.tags = tags;
    m.service = service;
    m
}

fn build_key_auth(k: &KeyAuth, consumer_id: &str, tags: Vec<String>) -> model::KeyAuthCredential {
    model::KeyAuthCredential {
        id: k
            .id
            .clone()
            .unwrap_or_else(|| entity_id(EntityKind::KeyAuth, &k.key)),
        created_at: 0,
        updated_at: 0,
        consumer: Some(ForeignKey::new(consumer_id)),
        key: k.key.clone(),
        tags,
        ttl: k.ttl,
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

// ----- snapshot → document -----------------------------------------------------------------

/// Nests a snapshot back into decK shape: routes under their service, a plugin under its one
/// parent (plugins with none or several go top-level with name references), credentials under
/// consumers; sorted by name; `id`s when `with_ids`, and always for a service or route without
/// a name (its id is then its only key, as in decK's dumps); timestamps never.
pub fn to_document(snap: &ConfigSnapshot, with_ids: bool) -> Document {
    let id = |v: &str| (with_ids && !v.is_empty()).then(|| v.to_owned());
    let key_id = |v: &str, name: &Option<String>| {
        (name.is_none() && !v.is_empty())
            .then(|| v.to_owned())
            .or_else(|| id(v))
    };
    let names = Names::of(snap);
    let mut doc = Document {
        format_version: Some(FORMAT_VERSION.to_owned()),
        ..Document::default()
    };
    let mut placed_routes = BTreeSet::new();
    let mut placed_plugins = BTreeSet::new();
    for s in &snap.services {
        let mut svc = service_doc(s, key_id(&s.id, &s.name));
        for r in snap.routes.iter().filter(|r| fk_is(&r.service, &s.id)) {
            placed_routes.insert(r.id.clone());
            let mut route = route_doc(r, key_id(&r.id, &r.name), None);
            route.plugins = nested_plugins(
                snap,
                |p| only_route(p, &r.id),
                &mut placed_plugins,
                with_ids,
            );
            svc.routes.push(route);
        }
        svc.routes.sort_by(|a, b| a.name.cmp(&b.name));
        svc.plugins = nested_plugins(
            snap,
            |p| only_service(p, &s.id),
            &mut placed_plugins,
            with_ids,
        );
        doc.services.push(svc);
    }
    doc.services.sort_by(|a, b| a.name.cmp(&b.name));
    for r in snap
        .routes
        .iter()
        .filter(|r| !placed_routes.contains(&r.id))
    {
        let service = r.service.as_ref().map(|fk| names.service(&fk.id));
        let mut route = route_doc(r, key_id(&r.id, &r.name), service);
        route.plugins = nested_plugins(
            snap,
            |p| only_route(p, &r.id),
            &mut placed_plugins,
            with_ids,
        );
        doc.routes.push(route);
    }
    doc.routes.sort_by(|a, b| a.name.cmp(&b.name));
    for c in &snap.consumers {
        let mut keys: Vec<KeyAuth> = snap
            .key_auths
            .iter()
            .filter(|k| fk_is(&k.consumer, &c.id))
            .map(|k| KeyAuth {
                id: id(&k.id),
                key: k.key.clone(),
                ttl: k.ttl,
                tags: non_empty(&k.tags),
            })
            .collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        doc.consumers.push(Consumer {
            id: id(&c.id),
            username: c.username.clone(),
            custom_id: c.custom_id.clone(),
            tags: non_empty(&c.tags),
            keyauth_credentials: keys,
            plugins: nested_plugins(
                snap,
                |p| only_consumer(p, &c.id),
                &mut placed_plugins,
                with_ids,
            ),
        });
    }
    doc.consumers
        .sort_by(|a, b| (&a.username, &a.custom_id).cmp(&(&b.username, &b.custom_id)));
    for p in snap
        .plugins
        .iter()
        .filter(|p| !placed_plugins.contains(&p.id))
    {
        let mut plugin = plugin_doc(p, id(&p.id));
        plugin.service = p.service.as_ref().map(|fk| names.service(&fk.id));
        plugin.route = p.route.as_ref().map(|fk| names.route(&fk.id));
        plugin.consumer = p.consumer.as_ref().map(|fk| names.consumer(&fk.id));
        doc.plugins.push(plugin);
    }
    sort_plugins(&mut doc.plugins);
    doc
}

/// Replaces every secret in a document with `[masked]`: credential keys, and plugin config
/// fields their schema marks `x-secret`. By field, never by searching text.
pub fn mask_secrets(doc: &mut Document) {
    let mask_all = |plugins: &mut Vec<Plugin>| {
        for p in plugins {
            if let Some(config) = &mut p.config {
                plugins::mask_secrets(&p.name, config);
            }
        }
    };
    for s in &mut doc.services {
        mask_all(&mut s.plugins);
        for r in &mut s.routes {
            mask_all(&mut r.plugins);
        }
    }
    for r in &mut doc.routes {
        mask_all(&mut r.plugins);
    }
    for c in &mut doc.consumers {
        mask_all(&mut c.plugins);
        for k in &mut c.keyauth_credentials {
            k.key = plugins::MASK.to_owned();
        }
    }
    mask_all(&mut doc.plugins);
}

fn fk_is(fk: &Option<ForeignKey>, id: &str) -> bool {
    fk.as_ref().is_some_and(|f| f.id == id)
}

fn only_service(p: &model::Plugin, id: &str) -> bool {
    fk_is(&p.service, id) && p.route.is_none() && p.consumer.is_none()
}

fn only_route(p: &model::Plugin, id: &str) -> bool {
    fk_is(&p.route, id) && p.service.is_none() && p.consumer.is_none()
}

fn only_consumer(p: &model::Plugin, id: &str) -> bool {
    fk_is(&p.consumer, id) && p.service.is_none() && p.route.is_none()
}

fn nested_plugins(
    snap: &ConfigSnapshot,
    belongs: impl Fn(&model::Plugin) -> bool,
    placed: &mut BTreeSet<String>,
    with_ids: bool,
) -> Vec<Plugin> {
    let mut out: Vec<Plugin> = snap
        .plugins
        .iter()
        .filter(|p| belongs(p))
        .map(|p| {
            placed.insert(p.id.clone());
            plugin_doc(p, (with_ids && !p.id.is_empty()).then(|| p.id.clone()))
        })
        .collect();
    sort_plugins(&mut out);
    out
}

fn sort_plugins(plugins: &mut [Plugin]) {
    plugins.sort_by(|a, b| (&a.name, &a.instance_name).cmp(&(&b.name, &b.instance_name)));
}

fn non_empty(tags: &[String]) -> Option<Vec<String>> {
    (!tags.is_empty()).then(|| tags.to_vec())
}

/// Entity ids to the names references use; an unnamed entity is referenced by `{id: …}`.
struct Names {
    services: HashMap<String, Option<String>>,
    routes: HashMap<String, Option<String>>,
    consumers: HashMap<String, Option<String>>,
}

impl Names {
    fn of(snap: &ConfigSnapshot) -> Self {
        Names {
            services: snap
                .services
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect(),
            routes: snap
                .routes
                .iter()
                .map(|r| (r.id.clone(), r.name.clone()))
                .collect(),
            consumers: snap
                .consumers
                .iter()
                .map(|c| (c.id.clone(), c.username.clone()))
                .collect(),
        }
    }

    fn reference(map: &HashMap<String, Option<String>>, id: &str) -> Reference {
        match map.get(id) {
            Some(Some(name)) => Reference::Name(name.clone()),
            _ => Reference::Object(document::ReferenceObject {
                id: Some(id.to_owned()),
                name: None,
                username: None,
            }),
        }
    }

    fn service(&self, id: &str) -> Reference {
        Self::reference(&self.services, id)
    }

    fn route(&self, id: &str) -> Reference {
        Self::reference(&self.routes, id)
    }

    fn consumer(&self, id: &str) -> Reference {
        Self::reference(&self.consumers, id)
    }
}

fn service_doc(s: &model::Service, id: Option<String>) -> Service {
    Service {
        id,
        name: s.name.clone(),
        url: None,
        protocol: Some(s.protocol.clone()),
        host: Some(s.host.clone()),
        port: Some(s.port),
        path: s.path.clone(),
        retries: Some(s.retries),
        connect_timeout: Some(s.connect_timeout),
        write_timeout: Some(s.write_timeout),
        read_timeout: Some(s.read_timeout),
        enabled: Some(s.enabled),
        tls_verify: s.tls_verify,
        tls_verify_depth: s.tls_verify_depth,
        tags: non_empty(&s.tags),
        routes: Vec::new(),
        plugins: Vec::new(),
    }
}

fn route_doc(r: &model::Route, id: Option<String>, service: Option<Reference>) -> Route {
    Route {
        id,
        name: r.name.clone(),
        service,
        protocols: Some(r.protocols.clone()),
        methods: r.methods.clone(),
        hosts: r.hosts.clone(),
        paths: r.paths.clone(),
        headers: r.headers.clone(),
        https_redirect_status_code: Some(r.https_redirect_status_code),
        regex_priority: Some(r.regex_priority),
        strip_path: Some(r.strip_path),
        preserve_host: Some(r.preserve_host),
        request_buffering: Some(r.request_buffering),
        response_buffering: Some(r.response_buffering),
        path_handling: Some(r.path_handling.clone()),
        tags: non_empty(&r.tags),
        plugins: Vec::new(),
    }
}

fn plugin_doc(p: &model::Plugin, id: Option<String>) -> Plugin {
    Plugin {
        id,
        name: p.name.clone(),
        instance_name: p.instance_name.clone(),
        service: None,
        route: None,
        consumer: None,
        enabled: Some(p.enabled),
        config: (!p.config.is_null()).then(|| p.config.clone()),
        protocols: p.protocols.clone(),
        tags: non_empty(&p.tags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_kind_scoped() {
        let a = entity_id(EntityKind::Service, "x");
        assert_eq!(a, entity_id(EntityKind::Service, "x"));
        assert_ne!(a, entity_id(EntityKind::Route, "x"));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    fn sample() -> Loaded {
        let doc = Document {
            info: document::Info {
                select_tags: vec!["t".into()],
                ..Default::default()
            },
            services: vec![Service {
                name: Some("svc".into()),
                url: Some("http://up:9000/base".into()),
                tags: Some(vec!["z".into(), "t".into()]),
                routes: vec![Route {
                    name: Some("r".into()),
                    paths: Some(vec!["/r".into()]),
                    plugins: vec![Plugin {
                        name: "key-auth".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            consumers: vec![Consumer {
                username: Some("app".into()),
                keyauth_credentials: vec![KeyAuth {
                    key: "k1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            plugins: vec![Plugin {
                name: "key-auth".into(),
                service: Some(Reference::Name("svc".into())),
                consumer: Some(Reference::Name("app".into())),
                ..Default::default()
            }],
            ..Default::default()
        };
        merge(vec![doc])
    }

    #[test]
    fn snapshots_fill_defaults_tags_ids_and_foreign_keys() {
        let snap = to_snapshot(&sample());
        let s = &snap.services[0];
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_deref()),
            ("up", 9000, Some("/base"))
        );
        assert_eq!((s.retries, s.connect_timeout), (5, 60_000));
        assert_eq!(s.tags, ["t", "z"]);
        assert_eq!(s.id, entity_id(EntityKind::Service, "svc"));
        let r = &snap.routes[0];
        assert_eq!(r.service.as_ref().unwrap().id, s.id);
        assert_eq!(r.tags, ["t"]);
        assert_eq!(
            snap.key_auths[0].consumer.as_ref().unwrap().id,
            snap.consumers[0].id
        );
        assert_eq!(snap.plugins[0].route.as_ref().unwrap().id, r.id);
        assert_eq!(snap.plugins[0].config["key_names"], json!(["apikey"]));
        assert_eq!(snap.plugins[1].service.as_ref().unwrap().id, s.id);
        assert_eq!(
            snap.plugins[1].consumer.as_ref().unwrap().id,
            snap.consumers[0].id
        );
        assert_eq!(snap.revision, 0);
    }

    #[test]
    fn documents_nest_single_parent_plugins_and_keep_multi_scope_ones_top_level() {
        let doc = to_document(&to_snapshot(&sample()), false);
        let s = &doc.services[0];
        assert_eq!(s.routes[0].plugins[0].name, "key-auth");
        assert!(s.plugins.is_empty());
        assert_eq!(doc.plugins.len(), 1);
        assert_eq!(doc.plugins[0].service, Some(Reference::Name("svc".into())));
        assert_eq!(doc.plugins[0].consumer, Some(Reference::Name("app".into())));
        assert_eq!(doc.consumers[0].keyauth_credentials[0].key, "k1");
        assert!(s.id.is_none());
        let with_ids = to_document(&to_snapshot(&sample()), true);
        assert!(with_ids.services[0].id.is_some());
    }

    #[test]
    fn snapshot_round_trips_through_a_document() {
        let snap = to_snapshot(&sample());
        let again = to_snapshot(&merge(vec![to_document(&snap, false)]));
        // Select tags are already in each entity's tags, so the round trip is exact.
        assert_eq!(again.services, snap.services);
        assert_eq!(again.routes, snap.routes);
        assert_eq!(again.key_auths, snap.key_auths);
        assert_eq!(again.plugins.len(), snap.plugins.len());
    }

    #[test]
    fn masking_replaces_keys_and_schema_secrets_only() {
        let mut doc = to_document(&to_snapshot(&sample()), false);
        doc.plugins.push(Plugin {
            name: "ai-proxy-advanced".into(),
            config: Some(json!({"targets": [{"auth": {"header_name": "Authorization", "header_value": "Bearer canary"}, "model": {"name": "Bearer canary"}}]})),
            ..Default::default()
        });
        mask_secrets(&mut doc);
        assert_eq!(doc.consumers[0].keyauth_credentials[0].key, "[masked]");
        let cfg = doc.plugins[1].config.as_ref().unwrap();
        assert_eq!(cfg["targets"][0]["auth"]["header_value"], "[masked]");
        assert_eq!(cfg["targets"][0]["auth"]["header_name"], "Authorization");
        assert_eq!(cfg["targets"][0]["model"]["name"], "Bearer canary");
    }
}
