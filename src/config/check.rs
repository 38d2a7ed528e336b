//! Owns the semantic checks that run after the schema: format version, service targets, route
//! matchers, consumers, plugin configs (Kong's plugin schemas and entity rules), dangling
//! references, duplicates, and agreement of file-level settings across merged files.

use std::collections::HashMap;

use embedded_gateway::model::{self, EntityKind};
use embedded_gateway::plugins;

use super::document::{Consumer, Document, FORMAT_VERSION, Reference, Route, Service};
use super::load::Parsed;
use super::position::{index, join};
use super::sites::entity_key;
pub use super::sites::{PluginSite, Scope, plugin_sites, ref_key};
use super::{Diagnostic, Source};

/// Service protocols Kong accepts.
const PROTOCOLS: [&str; 10] = [
    "http",
    "https",
    "grpc",
    "grpcs",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
    "ws",
    "wss",
];

/// Where something was first seen: which file, which path.
#[derive(Clone, Copy)]
struct Seen<'a> {
    source: &'a Source,
    path: &'a str,
}

impl Seen<'_> {
    fn at(&self) -> String {
        let d = self.source.diag(self.path, "");
        if d.line > 0 {
            format!("{}:{}:{}", d.file, d.line, d.col)
        } else {
            d.file
        }
    }
}

/// The first place each key was defined; later ones are duplicates.
struct Registry<'a> {
    what: &'static str,
    first: HashMap<String, (Seen<'a>, String)>,
}

impl<'a> Registry<'a> {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            first: HashMap::new(),
        }
    }

    /// Records `key`; on a repeat, reports the duplicate (with `shown` naming it).
    fn add(&mut self, key: String, shown: &str, seen: Seen<'a>, out: &mut Vec<Diagnostic>) {
        match self.first.get(&key) {
            Some((first, _)) => {
                let sep = if shown.is_empty() { "" } else { " " };
                let message = format!(
                    "duplicate {}{sep}{shown}; first defined at {}",
                    self.what,
                    first.at()
                );
                out.push(seen.source.diag(seen.path, message));
            }
            None => {
                self.first.insert(key, (seen, shown.to_owned()));
            }
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.first.contains_key(key)
    }
}

/// A reference to a service, route or consumer that no file defines. Offline (`validate`) it
/// is a problem; `diff`, `apply` and `sync` look it up on the gateway instead.
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    pub kind: EntityKind,
    /// The reference's key: a name (a consumer's username or custom_id), or `id:<id>`.
    pub key: String,
    /// How the reference reads in a message: `'name'` or `with id 'x'`.
    pub shown: String,
    /// Where it is written (the message is empty).
    pub at: Diagnostic,
}

/// Runs every semantic check over the merged files. Returns every problem found; with `live`,
/// references to entities no file defines are returned as [`External`]s instead of problems.
pub fn check(files: &[Parsed], live: bool) -> (Vec<Diagnostic>, Vec<External>) {
    let mut out = Vec::new();
    let mut external = Vec::new();
    settings(files, &mut out);
    let paths = Paths::of(files);
    let mut known = Known::new(files);
    for (f, p) in files.iter().zip(&paths) {
        known.register(f, p, &mut out);
    }
    for f in files {
        let ext = live.then_some(&mut external);
        references(f, &known, ext, &mut out);
        super::secrets::check(&f.source, &f.document, &mut out);
        tags(&f.source, &f.document, &mut out);
    }
    plugin_duplicates(files, &mut out);
    (out, external)
}

/// Every named entity across the files, for duplicate and reference checks.
struct Known<'a> {
    services: Registry<'a>,
    routes: Registry<'a>,
    consumers: Registry<'a>,
    custom_ids: Registry<'a>,
    keys: Registry<'a>,
    /// Ids given explicitly, which `{id: …}` references may use.
    service_ids: Vec<String>,
    route_ids: Vec<String>,
    consumer_ids: Vec<String>,
}

impl<'a> Known<'a> {
    fn new(files: &[Parsed]) -> Self {
        let ids = |f: &dyn Fn(&Document) -> Vec<String>| -> Vec<String> {
            files.iter().flat_map(|p| f(&p.document)).collect()
        };
        Known {
            services: Registry::new("service name"),
            routes: Registry::new("route name"),
            consumers: Registry::new("consumer username"),
            custom_ids: Registry::new("consumer custom_id"),
            keys: Registry::new("key-auth credential key"),
            service_ids: ids(&|d| d.services.iter().filter_map(|s| s.id.clone()).collect()),
            route_ids: ids(&|d| {
                let nested = d.services.iter().flat_map(|s| s.routes.iter());
                nested
                    .chain(&d.routes)
                    .filter_map(|r| r.id.clone())
                    .collect()
            }),
            consumer_ids: ids(&|d| d.consumers.iter().filter_map(|c| c.id.clone()).collect()),
        }
    }

    /// Checks one file's entities and records their names, reporting duplicates.
    fn register(&mut self, f: &'a Parsed, p: &'a Paths, out: &mut Vec<Diagnostic>) {
        let src = &f.source;
        for (si, s) in f.document.services.iter().enumerate() {
            service(src, &p.services[si], s, out);
            if let Some(key) = entity_key(s.name.as_deref(), s.id.as_deref()) {
                let shown = format!("'{}'", s.name.as_deref().unwrap_or(&key));
                self.services
                    .add(key, &shown, seen(src, &p.service_names[si]), out);
            }
            for (r, rp) in s.routes.iter().zip(&p.service_routes[si]) {
                route(src, rp, r, true, out);
                register_route(&mut self.routes, src, rp, r, out);
            }
        }
        for (r, rp) in f.document.routes.iter().zip(&p.routes) {
            route(src, rp, r, false, out);
            register_route(&mut self.routes, src, rp, r, out);
        }
        for (ci, c) in f.document.consumers.iter().enumerate() {
            consumer(src, &p.consumers[ci], c, out);
            if let Some(u) = &c.username {
                let at = seen(src, &p.usernames[ci]);
                self.consumers.add(u.clone(), &format!("'{u}'"), at, out);
            }
            if let Some(u) = &c.custom_id {
                let at = seen(src, &p.custom_ids[ci]);
                self.custom_ids.add(u.clone(), &format!("'{u}'"), at, out);
            }
            for (k, kp) in c.keyauth_credentials.iter().zip(&p.keys[ci]) {
                // The key is a secret: the message names where, never what.
                self.keys.add(k.key.clone(), "", seen(src, kp), out);
            }
        }
    }

    /// True when a reference of `kind` names a known entity.
    fn resolves(&self, kind: &str, r: &Reference) -> bool {
        let (reg, ids) = match kind {
            "service" => (&self.services, &self.service_ids),
            "route" => (&self.routes, &self.route_ids),
            _ => (&self.consumers, &self.consumer_ids),
        };
        match (r.name(), r.id()) {
            (Some(n), _) => reg.contains(n),
            (None, Some(id)) => ids.iter().any(|i| i == id) || reg.contains(&format!("id:{id}")),
            (None, None) => false,
        }
    }
}

/// Route and plugin references, nesting conflicts, and plugin configs in one file.
fn references(
    f: &Parsed,
    known: &Known<'_>,
    mut external: Option<&mut Vec<External>>,
    out: &mut Vec<Diagnostic>,
) {
    let src = &f.source;
    let mut dangling = |kind: &str, r: &Reference, path: &str, out: &mut Vec<Diagnostic>| {
        let entity = match kind {
            "service" => EntityKind::Service,
            "route" => EntityKind::Route,
            _ => EntityKind::Consumer,
        };
        match external.as_deref_mut() {
            Some(ext) => ext.push(External {
                kind: entity,
                key: ref_key(r),
                shown: r.describe(),
                at: src.diag(path, ""),
            }),
            None => out.push(src.diag(path, format!("{kind} {} not found", r.describe()))),
        }
    };
    for (ri, r) in f.document.routes.iter().enumerate() {
        if let Some(s) = &r.service
            && !known.resolves("service", s)
        {
            let path = join(&index("routes", ri), "service");
            dangling("service", s, &path, out);
        }
    }
    for site in plugin_sites(&f.document) {
        plugin(src, &site, out);
        let p = site.plugin;
        let refs = [
            ("service", &p.service),
            ("route", &p.route),
            ("consumer", &p.consumer),
        ];
        for (kind, r) in refs {
            let Some(r) = r else { continue };
            let path = join(&site.path, kind);
            if site.parent == Some(kind) {
                let msg = format!("a plugin nested under a {kind} cannot also name a {kind}");
                out.push(src.diag(&path, msg));
            } else if !known.resolves(kind, r) {
                dangling(kind, r, &path, out);
            }
        }
    }
}

/// Every tag in a file (`_info.select_tags` and each entity's `tags`) follows Kong's rule, so
/// a file `diff` accepts is one the admin API takes.
fn tags(src: &Source, doc: &Document, out: &mut Vec<Diagnostic>) {
    let mut check = |path: &str, tags: &[String]| {
        for (i, t) in tags.iter().enumerate() {
            if let Some(message) = model::tag_error(t) {
                out.push(src.diag(&index(path, i), message));
            }
        }
    };
    check("_info.select_tags", &doc.info.select_tags);
    let lookup = &doc.info.default_lookup_tags;
    check("_info.default_lookup_tags.services", &lookup.services);
    check("_info.default_lookup_tags.routes", &lookup.routes);
    check("_info.default_lookup_tags.consumers", &lookup.consumers);
    let own = |t: &Option<Vec<String>>| t.clone().unwrap_or_default();
    for (si, s) in doc.services.iter().enumerate() {
        let sp = index("services", si);
        check(&join(&sp, "tags"), &own(&s.tags));
        for (ri, r) in s.routes.iter().enumerate() {
            check(
                &join(&index(&join(&sp, "routes"), ri), "tags"),
                &own(&r.tags),
            );
        }
    }
    for (ri, r) in doc.routes.iter().enumerate() {
        check(&join(&index("routes", ri), "tags"), &own(&r.tags));
    }
    for (ci, c) in doc.consumers.iter().enumerate() {
        let cp = index("consumers", ci);
        check(&join(&cp, "tags"), &own(&c.tags));
        for (ki, k) in c.keyauth_credentials.iter().enumerate() {
            let kp = index(&join(&cp, "keyauth_credentials"), ki);
            check(&join(&kp, "tags"), &own(&k.tags));
        }
    }
    for site in plugin_sites(doc) {
        check(&join(&site.path, "tags"), &own(&site.plugin.tags));
    }
}

fn plugin_duplicates(files: &[Parsed], out: &mut Vec<Diagnostic>) {
    let sites: Vec<(&Source, PluginSite<'_>)> = files
        .iter()
        .flat_map(|f| {
            plugin_sites(&f.document)
                .into_iter()
                .map(|s| (&f.source, s))
        })
        .collect();
    let instance_paths: Vec<String> = sites
        .iter()
        .map(|(_, s)| join(&s.path, "instance_name"))
        .collect();
    let mut scopes = Registry::new("plugin");
    let mut instances = Registry::new("plugin instance_name");
    for ((src, site), ipath) in sites.iter().zip(&instance_paths) {
        let s = &site.scope;
        let key = format!(
            "{}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            site.plugin.name, s.service, s.route, s.consumer
        );
        let shown = format!("'{}' {}", site.plugin.name, describe_scope(s));
        scopes.add(key, &shown, seen(src, &site.path), out);
        if let Some(i) = &site.plugin.instance_name {
            instances.add(i.clone(), &format!("'{i}'"), seen(src, ipath), out);
        }
    }
}

fn describe_scope(s: &Scope) -> String {
    let parts: Vec<String> = [
        ("service", &s.service),
        ("route", &s.route),
        ("consumer", &s.consumer),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} '{v}'")))
    .collect();
    if parts.is_empty() {
        "(global)".to_owned()
    } else {
        format!("on {}", parts.join(", "))
    }
}

fn seen<'a>(source: &'a Source, path: &'a str) -> Seen<'a> {
    Seen { source, path }
}

fn register_route<'a>(
    reg: &mut Registry<'a>,
    src: &'a Source,
    rp: &'a RoutePaths,
    r: &Route,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(key) = entity_key(r.name.as_deref(), r.id.as_deref()) {
        let shown = format!("'{}'", r.name.as_deref().unwrap_or(&key));
        reg.add(key, &shown, seen(src, &rp.name), out);
    }
}

/// Precomputed paths, so registries can borrow them for the whole check.
struct Paths {
    services: Vec<String>,
    service_names: Vec<String>,
    service_routes: Vec<Vec<RoutePaths>>,
    routes: Vec<RoutePaths>,
    consumers: Vec<String>,
    usernames: Vec<String>,
    custom_ids: Vec<String>,
    keys: Vec<Vec<String>>,
}

struct RoutePaths {
    path: String,
    name: String,
}

impl Paths {
    fn of(files: &[Parsed]) -> Vec<Paths> {
        files.iter().map(|f| Self::one(&f.document)).collect()
    }

    fn one(d: &Document) -> Paths {
        let services: Vec<String> = (0..d.services.len())
            .map(|i| index("services", i))
            .collect();
        let route_paths = |base: &str, n: usize| -> Vec<RoutePaths> {
            (0..n)
                .map(|i| {
                    let path = index(base, i);
                    RoutePaths {
                        name: join(&path, "name"),
                        path,
                    }
                })
                .collect()
        };
        let consumers: Vec<String> = (0..d.consumers.len())
            .map(|i| index("consumers", i))
            .collect();
        Paths {
            service_names: services.iter().map(|p| join(p, "name")).collect(),
            service_routes: d
                .services
                .iter()
                .zip(&services)
                .map(|(s, p)| route_paths(&join(p, "routes"), s.routes.len()))
                .collect(),
            routes: route_paths("routes", d.routes.len()),
            usernames: consumers.iter().map(|p| join(p, "username")).collect(),
            custom_ids: consumers.iter().map(|p| join(p, "custom_id")).collect(),
            keys: d
                .consumers
                .iter()
                .zip(&consumers)
                .map(|(c, p)| {
                    (0..c.keyauth_credentials.len())
                        .map(|i| join(&index(&join(p, "keyauth_credentials"), i), "key"))
                        .collect()
                })
                .collect(),
            consumers,
            services,
        }
    }
}

/// File-level settings: the format version, and `_konnect`/`_defaults`/`_info.defaults` that
/// must agree across merged files.
fn settings(files: &[Parsed], out: &mut Vec<Diagnostic>) {
    for f in files {
        if let Some(v) = &f.document.format_version
            && v != FORMAT_VERSION
        {
            out.push(f.source.diag(
                "_format_version",
                format!("unsupported format version '{v}'; Gantry reads \"{FORMAT_VERSION}\""),
            ));
        }
    }
    if let Some(first) = files.first()
        && files.iter().all(|f| f.document.format_version.is_none())
    {
        out.push(first.source.diag(
            "_format_version",
            format!("required field missing (set _format_version: \"{FORMAT_VERSION}\")"),
        ));
    }
    agree(
        files,
        "_konnect.control_plane_name",
        |d| d.konnect.control_plane_name.clone(),
        out,
    );
    agree(
        files,
        "_defaults.kongctl.namespace",
        |d| d.defaults.kongctl.namespace.clone(),
        out,
    );
    agree(
        files,
        "_defaults.kongctl.protected",
        |d| d.defaults.kongctl.protected.map(|b| b.to_string()),
        out,
    );
    agree(
        files,
        "_info.defaults",
        |d| (!d.info.defaults.is_empty()).then(|| format!("{:?}", d.info.defaults)),
        out,
    );
}

/// A setting given in several files must have one value.
fn agree(
    files: &[Parsed],
    path: &str,
    get: impl Fn(&Document) -> Option<String>,
    out: &mut Vec<Diagnostic>,
) {
    let mut first: Option<(&Parsed, String)> = None;
    for f in files {
        let Some(v) = get(&f.document) else { continue };
        match &first {
            None => first = Some((f, v)),
            Some((ff, fv)) if *fv != v => out.push(f.source.diag(
                path,
                format!(
                    "differs from the value in {}",
                    ff.source.diag(path, "").file_line()
                ),
            )),
            Some(_) => {}
        }
    }
}

impl Diagnostic {
    fn file_line(&self) -> String {
        if self.line > 0 {
            format!("{}:{}:{}", self.file, self.line, self.col)
        } else {
            self.file.clone()
        }
    }
}

fn service(src: &Source, sp: &str, s: &Service, out: &mut Vec<Diagnostic>) {
    if s.name.is_none() && s.id.is_none() {
        out.push(src.diag(sp, "must set 'name' (or 'id')"));
    }
    let parts = [
        ("protocol", s.protocol.is_some()),
        ("host", s.host.is_some()),
        ("port", s.port.is_some()),
        ("path", s.path.is_some()),
    ];
    match &s.url {
        Some(url) => {
            for (field, set) in parts {
                if set {
                    out.push(src.diag(&join(sp, field), "cannot be combined with 'url'"));
                }
            }
            if let Err(e) = super::document::split_url(url) {
                out.push(src.diag(&join(sp, "url"), e));
            }
        }
        None if s.host.is_none() => out.push(src.diag(sp, "must set 'url' or 'host'")),
        None => {}
    }
    if let Some(p) = &s.protocol
        && !PROTOCOLS.contains(&p.as_str())
    {
        out.push(src.diag(
            &join(sp, "protocol"),
            format!("expected one of: {}", PROTOCOLS.join(", ")),
        ));
    }
    if let Some(path) = &s.path
        && !path.starts_with('/')
    {
        out.push(src.diag(&join(sp, "path"), "should start with: /"));
    }
}

fn route(src: &Source, rp: &RoutePaths, r: &Route, nested: bool, out: &mut Vec<Diagnostic>) {
    let rp = &rp.path;
    if r.name.is_none() && r.id.is_none() {
        out.push(src.diag(rp, "must set 'name' (or 'id')"));
    }
    if nested && r.service.is_some() {
        out.push(src.diag(
            &join(rp, "service"),
            "a route nested under a service cannot also name a service",
        ));
    }
    let http = r
        .protocols
        .as_ref()
        .is_none_or(|ps| ps.iter().any(|p| p == "http" || p == "https"));
    let matchers = [
        r.methods.as_ref().is_some_and(|v| !v.is_empty()),
        r.hosts.as_ref().is_some_and(|v| !v.is_empty()),
        r.headers.as_ref().is_some_and(|v| !v.is_empty()),
        r.paths.as_ref().is_some_and(|v| !v.is_empty()),
    ];
    if http && !matchers.iter().any(|m| *m) {
        out.push(src.diag(
            rp,
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'",
        ));
    }
    for (i, p) in r.paths.iter().flatten().enumerate() {
        if !model::route_path_ok(p) {
            out.push(src.diag(&index(&join(rp, "paths"), i), model::ROUTE_PATH_RULE));
        }
    }
}

fn consumer(src: &Source, cp: &str, c: &Consumer, out: &mut Vec<Diagnostic>) {
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    if empty(&c.username) && empty(&c.custom_id) {
        out.push(src.diag(
            cp,
            "at least one of these fields must be non-empty: 'custom_id', 'username'",
        ));
    }
    for (ki, k) in c.keyauth_credentials.iter().enumerate() {
        if k.key.is_empty() {
            let path = join(&index(&join(cp, "keyauth_credentials"), ki), "key");
            out.push(src.diag(&path, "must not be empty"));
        }
    }
}

/// A plugin's name and config: Kong's schema for the plugin, and its entity rules.
fn plugin(src: &Source, site: &PluginSite<'_>, out: &mut Vec<Diagnostic>) {
    let p = site.plugin;
    if !plugins::is_supported(&p.name) {
        let names: Vec<&str> = plugins::SUPPORTED.iter().map(|(n, _)| *n).collect();
        out.push(src.diag(
            &join(&site.path, "name"),
            format!(
                "unknown plugin '{}'; Gantry supports: {}",
                p.name,
                names.join(", ")
            ),
        ));
        return;
    }
    let config = p.config.clone().unwrap_or(serde_json::Value::Null);
    if let Err(errors) = plugins::normalize_config(&p.name, &config) {
        let base = join(&site.path, "config");
        for e in errors {
            let path = if e.path.is_empty() {
                base.clone()
            } else {
                join(&base, &e.path)
            };
            out.push(src.diag(&path, e.message));
        }
    }
}
