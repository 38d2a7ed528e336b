//! Owns `gantry file openapi2kong`: an OpenAPI 3 spec to a decK file, with decK's naming
//! rules. The document is one service (`x-kong-name`, else `info.title`, slugified); each
//! operation one route named `<doc>_<operationId>`, else `<doc>_<path>_<method>` (a path ending
//! in `/` gets a `~`), with an anchored regex path (`{param}` → `(?<param>[^#?/]+)`), priority
//! 200 (100 with parameters) and `strip_path: false`. Several servers make an upstream
//! `<name>.upstream` with one target each. `servers` or `x-kong-service-defaults` on a path or
//! operation make a service of their own. `x-kong-{service,route,upstream}-defaults`,
//! `x-kong-plugin-<name>` (with `$ref: #/components/x-kong/…`) and `x-kong-tags` are honoured.
//! IDs are UUIDv5 of `<name>.service|.route|.upstream|.plugin.<plugin>` in the DNS namespace
//! (or `--uuid-base`), as decK's.
//!
//! Differences: an empty `upstreams` list is left out (decK writes `upstreams: []`, which
//! Gantry's state files do not have). Not done (refused or documented): request-validator schema generation (refused), OIDC
//! security generation, routing by header parameters (as decK's `--skip-route-by-header`).

use serde_json::{Map, Value, json};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(m: impl Into<String>) -> OpenApiError {
    OpenApiError::Invalid(m.into())
}

/// Conversion options (decK's flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--select-tag`: tags for every entity; `x-kong-tags` when `None`.
    pub tags: Option<Vec<String>>,
    /// `--uuid-base`: namespace of the generated ids.
    pub namespace: Uuid,
    /// `--no-id`: generate no ids.
    pub skip_id: bool,
    /// `--skip-route-by-header`: do not split routes by required header enums (which Gantry
    /// does not do; without this flag such a spec is refused).
    pub skip_route_by_header: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tags: None,
            namespace: Uuid::NAMESPACE_DNS,
            skip_id: false,
            skip_route_by_header: false,
        }
    }
}

/// decK's (go-slugify) slug: characters outside `[A-Za-z0-9]` become `sep`, runs collapse,
/// the ends are trimmed, and the result is lowercased.
pub fn slugify(s: &str, sep: char) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || (sep == '-' && c == '-') {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with(sep) {
            out.push(sep);
        }
    }
    out.trim_matches(sep).to_owned()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const ESCAPED: [char; 8] = ['(', ')', '.', '+', '?', '*', '[', '$'];

struct Ctx<'a> {
    opts: &'a Options,
    tags: Vec<String>,
    components: Map<String, Value>,
    upstreams: Vec<Value>,
}

impl Ctx<'_> {
    fn id(&self, name: &str) -> Option<Value> {
        (!self.opts.skip_id)
            .then(|| Value::String(Uuid::new_v5(&self.opts.namespace, name.as_bytes()).to_string()))
    }

    fn tags(&self) -> Value {
        json!(self.tags)
    }

    /// An `x-kong-…` object, following a `$ref` into `#/components/x-kong/`.
    fn x_object(
        &self,
        node: &Value,
        key: &str,
    ) -> Result<Option<Map<String, Value>>, OpenApiError> {
        let Some(v) = node.get(key) else {
            return Ok(None);
        };
        let Some(obj) = v.as_object() else {
            return Err(invalid(format!("expected '{key}' to be a JSON object")));
        };
        let Some(reference) = obj.get("$ref") else {
            return Ok(Some(obj.clone()));
        };
        let pointer = reference
            .as_str()
            .ok_or_else(|| invalid("expected '$ref' pointer to be a string"))?;
        let rest = pointer
            .strip_prefix("#/components/x-kong/")
            .ok_or_else(|| {
                invalid("all 'x-kong-...' references must be at '#/components/x-kong/...'")
            })?;
        let mut target = &Value::Object(self.components.clone());
        let mut found = None;
        for segment in rest.split('/') {
            target = target
                .get(segment)
                .ok_or_else(|| invalid(format!("reference '{pointer}' not found")))?;
            found = Some(target);
        }
        found
            .and_then(Value::as_object)
            .cloned()
            .map(Some)
            .ok_or_else(|| invalid(format!("expected '{pointer}' to be a JSON object")))
    }

    /// `x-kong-plugin-<name>` entries of a node, on top of inherited ones, sorted by name, with
    /// ids for `base`.
    fn plugins(
        &self,
        node: &Value,
        inherited: &[Map<String, Value>],
        base: &str,
    ) -> Result<Vec<Map<String, Value>>, OpenApiError> {
        let mut by_name: std::collections::BTreeMap<String, Map<String, Value>> = inherited
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p.clone()))
            .collect();
        if let Some(obj) = node.as_object() {
            for key in obj.keys() {
                let Some(name) = key.strip_prefix("x-kong-plugin-") else {
                    continue;
                };
                if name == "request-validator" {
                    return Err(invalid(
                        "x-kong-plugin-request-validator: generating the request-validator's schemas from the spec is not supported",
                    ));
                }
                let mut config = self.x_object(node, key)?.unwrap_or_default();
                match config.get("name").and_then(Value::as_str) {
                    Some(n) if n != name => {
                        return Err(invalid(format!(
                            "extension '{key}' specifies a different name than the config; '{name}'"
                        )));
                    }
                    _ => {}
                }
                if config.get("consumer").is_some_and(|c| !c.is_null()) {
                    return Err(invalid(format!(
                        "{key}: plugins bound to a consumer are not supported by gantry's openapi2kong"
                    )));
                }
                config.insert("name".into(), json!(name));
                config.remove("service");
                config.remove("route");
                by_name.insert(name.to_owned(), config);
            }
        }
        Ok(by_name
            .into_values()
            .map(|mut p| {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                match self.id(&format!("{base}.plugin.{name}")) {
                    Some(id) => {
                        p.insert("id".into(), id);
                    }
                    None => {
                        p.remove("id");
                    }
                }
                p.insert("tags".into(), self.tags());
                p
            })
            .collect())
    }

    /// A service (and an upstream when there are several servers or upstream defaults).
    fn service(
        &mut self,
        base: &str,
        servers: &[Value],
        defaults: Option<Map<String, Value>>,
        upstream_defaults: Option<Map<String, Value>>,
    ) -> Result<(Map<String, Value>, Option<Value>), OpenApiError> {
        let mut svc = defaults.unwrap_or_default();
        let mut upstream = None;
        if let Some(id) = self.id(&format!("{base}.service")) {
            svc.insert("id".into(), id);
        }
        svc.insert("name".into(), json!(base));
        svc.insert("tags".into(), self.tags());
        svc.insert("plugins".into(), json!([]));
        svc.insert("routes".into(), json!([]));
        let default_scheme = svc
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("https")
            .to_owned();
        let targets = server_urls(servers, &default_scheme)?;
        let first = &targets[0];
        svc.entry("protocol").or_insert_with(|| json!(first.scheme));
        svc.entry("path").or_insert_with(|| json!(first.path));
        svc.entry("port").or_insert_with(|| json!(first.port));
        if !svc.contains_key("host") {
            if targets.len() == 1 && upstream_defaults.is_none() {
                svc.insert("host".into(), json!(first.host));
            } else {
                let name = format!("{base}.upstream");
                let mut up = upstream_defaults.unwrap_or_default();
                if let Some(id) = self.id(&name) {
                    up.insert("id".into(), id);
                }
                up.insert("name".into(), json!(name));
                up.insert("tags".into(), self.tags());
                let list: Vec<Value> = match up.get("targets") {
                    Some(Value::Array(given)) => given
                        .iter()
                        .map(|t| {
                            let mut t = t.as_object().cloned().ok_or_else(|| {
                                invalid("expected entries in 'targets' to be objects")
                            })?;
                            t.insert("tags".into(), self.tags());
                            Ok(Value::Object(t))
                        })
                        .collect::<Result<_, OpenApiError>>()?,
                    Some(_) => return Err(invalid("expected 'targets' to be an array")),
                    None => server_urls(servers, "https")?
                        .iter()
                        .map(|t| json!({"target": format!("{}:{}", t.host, t.port), "tags": self.tags}))
                        .collect(),
                };
                up.insert("targets".into(), Value::Array(list));
                upstream = Some(Value::Object(up));
                svc.insert("host".into(), json!(name));
            }
        }
        Ok((svc, upstream))
    }

    /// Keeps a new service's upstream when this level asked for one (its own servers or
    /// upstream defaults); otherwise the service points at its parent's host, as decK does.
    fn place(
        &mut self,
        (mut svc, upstream): (Map<String, Value>, Option<Value>),
        new_upstream: bool,
        parent_host: Option<&Value>,
    ) -> Map<String, Value> {
        if let Some(up) = upstream {
            if new_upstream || parent_host.is_none() {
                self.upstreams.push(up);
            } else if let Some(host) = parent_host {
                svc.insert("host".into(), host.clone());
            }
        }
        svc
    }
}

struct Target {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

/// Server URLs with their variables' defaults filled in, and decK's defaults: `/` with no
/// servers, host `localhost`, scheme from the port (80/443) or `default_scheme`.
fn server_urls(servers: &[Value], default_scheme: &str) -> Result<Vec<Target>, OpenApiError> {
    let raw: Vec<String> = if servers.is_empty() {
        vec!["/".to_owned()]
    } else {
        servers
            .iter()
            .map(|s| {
                let mut u = s
                    .get("url")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_owned();
                if let Some(vars) = s.get("variables").and_then(Value::as_object) {
                    for (name, var) in vars {
                        let d = var
                            .get("default")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        u = u.replace(&format!("{{{name}}}"), d);
                    }
                }
                u
            })
            .collect()
    };
    raw.iter()
        .map(|u| {
            let (scheme, rest) = match u.split_once("://") {
                Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
                None => (None, u.as_str()),
            };
            let (authority, path) = if scheme.is_some() {
                match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                }
            } else {
                ("", rest)
            };
            if !path.is_empty() && !path.starts_with('/') {
                return Err(invalid(format!("failed to parse uri '{u}'")));
            }
            let split = if authority.starts_with('[') {
                authority
                    .find("]:")
                    .map(|i| (&authority[..=i], &authority[i + 2..]))
            } else {
                authority.rsplit_once(':')
            };
            let (host, port) = match split {
                Some((h, p)) => {
                    let port: u16 = p
                        .parse()
                        .map_err(|_| invalid(format!("failed to parse uri '{u}': bad port")))?;
                    (h.to_owned(), Some(port))
                }
                None => (authority.to_owned(), None),
            };
            let host = if host.is_empty() {
                "localhost".to_owned()
            } else {
                host
            };
            let scheme = scheme.unwrap_or_else(|| match port {
                Some(80) => "http".into(),
                Some(443) => "https".into(),
                _ => default_scheme.to_owned(),
            });
            let port = port.unwrap_or(if scheme == "http" { 80 } else { 443 });
            let path = if path.is_empty() { "/" } else { path };
            Ok(Target {
                scheme,
                host,
                port,
                path: path.to_owned(),
            })
        })
        .collect()
}

fn servers_of(node: &Value) -> Vec<Value> {
    node.get("servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn kong_name(node: &Value) -> Result<Option<String>, OpenApiError> {
    match node.get("x-kong-name") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid("expected 'x-kong-name' to be a string")),
    }
}

/// A required header parameter with an `enum`, which decK turns into one route per value.
fn routing_header(op: &Value, item: &Value) -> Option<String> {
    [op, item]
        .iter()
        .filter_map(|n| n.get("parameters").and_then(Value::as_array))
        .flatten()
        .find(|p| {
            p.get("in").and_then(Value::as_str) == Some("header")
                && p.get("required").and_then(Value::as_bool) == Some(true)
                && p.pointer("/schema/enum").is_some()
        })
        .and_then(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
}

/// True when the path parameter's schema has `minLength: 0` (it may be empty), looking at the
/// operation's parameters first, then the path item's.
fn may_be_empty(op: &Value, item: &Value, name: &str) -> bool {
    [op, item]
        .iter()
        .filter_map(|n| n.get("parameters").and_then(Value::as_array))
        .flatten()
        .find(|p| {
            p.get("in").and_then(Value::as_str) == Some("path")
                && p.get("name").and_then(Value::as_str) == Some(name)
        })
        .and_then(|p| p.pointer("/schema/minLength"))
        .and_then(Value::as_u64)
        == Some(0)
}

/// The regex path and priority of an OpenAPI path.
fn route_path(path: &str, empty_ok: &dyn Fn(&str) -> bool) -> Result<(String, i64), OpenApiError> {
    let mut out = String::new();
    for c in path.chars() {
        if ESCAPED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    let mut priority = 200;
    while let Some(start) = out.find('{') {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let var = out[start + 1..start + len].to_owned();
        let capture = slugify(&var, '_');
        if capture.len() >= 32 {
            return Err(invalid(format!(
                "path-parameter name exceeds 32 characters: '{var}' (sanitized to '{capture}')"
            )));
        }
        let repeat = if empty_ok(&var) { '*' } else { '+' };
        out.replace_range(
            start..start + len + 1,
            &format!("(?<{capture}>[^#?/]{repeat})"),
        );
        priority = 100;
    }
    Ok((format!("~{out}$"), priority))
}

/// Converts an OpenAPI 3 document.
pub fn convert(doc: &Value, opts: &Options) -> Result<Value, OpenApiError> {
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !version.starts_with("3.") {
        return Err(invalid(format!(
            "only OpenAPI 3 specs are supported (the 'openapi' field says '{version}')"
        )));
    }
    let tags = match &opts.tags {
        Some(t) => t.clone(),
        None => match doc.get("x-kong-tags") {
            None => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return Err(invalid("expected 'x-kong-tags' to be an array of strings")),
        },
    };
    let components = match doc.pointer("/components/x-kong") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("expected '/components/x-kong' to be a JSON object")),
    };
    let mut cx = Ctx {
        opts,
        tags,
        components,
        upstreams: Vec::new(),
    };
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let doc_name = match kong_name(doc)? {
        Some(n) => n,
        None if !title.is_empty() => title.to_owned(),
        None => Uuid::new_v4().to_string(),
    };
    let doc_base = slugify(&doc_name, '-');
    let doc_servers = servers_of(doc);
    let doc_svc_defaults = cx.x_object(doc, "x-kong-service-defaults")?;
    let doc_up_defaults = cx.x_object(doc, "x-kong-upstream-defaults")?;
    let doc_route_defaults = cx.x_object(doc, "x-kong-route-defaults")?;
    let doc_plugins = cx.plugins(doc, &[], &doc_base)?;
    let mut services: Vec<Map<String, Value>> = Vec::new();
    let built = cx.service(
        &doc_base,
        &doc_servers,
        doc_svc_defaults.clone(),
        doc_up_defaults.clone(),
    )?;
    let mut doc_svc = cx.place(built, true, None);
    doc_svc.insert("plugins".into(), json!(doc_plugins));
    services.push(doc_svc);
    let doc_index = 0;

    let empty = Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    for path in keys {
        let item = &paths[path];
        if !item.is_object() {
            continue;
        }
        let path_base = {
            let part = match kong_name(item)? {
                Some(n) => slugify(&n, '-'),
                None => {
                    let mut p = slugify(path, '-');
                    if path.ends_with('/') {
                        p.push('~');
                    }
                    p
                }
            };
            if part.is_empty() {
                doc_base.clone()
            } else {
                format!("{doc_base}_{part}")
            }
        };
        let path_svc_defaults = cx.x_object(item, "x-kong-service-defaults")?;
        let path_up_defaults = cx.x_object(item, "x-kong-upstream-defaults")?;
        let path_route_defaults = cx
            .x_object(item, "x-kong-route-defaults")?
            .or(doc_route_defaults.clone());
        let path_servers = servers_of(item);
        let new_path_upstream = path_up_defaults.is_some() || !path_servers.is_empty();
        let new_path_service = path_svc_defaults.is_some() || new_path_upstream;
        let path_servers = if path_servers.is_empty() {
            doc_servers.clone()
        } else {
            path_servers
        };
        let path_svc_defaults = path_svc_defaults.or(doc_svc_defaults.clone());
        let path_up_defaults = path_up_defaults.or(doc_up_defaults.clone());
        let (path_index, path_plugins) = if new_path_service {
            let plugins = cx.plugins(item, &doc_plugins, &path_base)?;
            let built = cx.service(
                &path_base,
                &path_servers,
                path_svc_defaults.clone(),
                path_up_defaults.clone(),
            )?;
            let parent = services[doc_index].get("host").cloned();
            let mut svc = cx.place(built, new_path_upstream, parent.as_ref());
            svc.insert("plugins".into(), json!(plugins));
            services.push(svc);
            (services.len() - 1, Vec::new())
        } else {
            (doc_index, cx.plugins(item, &[], &path_base)?)
        };
        let mut methods: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| item.get(*m).is_some_and(Value::is_object))
            .collect();
        methods.sort_by_key(|m| m.to_ascii_uppercase());
        for method in methods {
            let op = &item[method];
            let upper = method.to_ascii_uppercase();
            if !cx.opts.skip_route_by_header
                && let Some(header) = routing_header(op, item)
            {
                return Err(invalid(format!(
                    "{upper} {path}: decK makes one route per value of the required header '{header}'; gantry does not route by header, so give --skip-route-by-header to convert without it"
                )));
            }
            let op_base = match kong_name(op)? {
                Some(n) => format!("{path_base}_{}", slugify(&n, '-')),
                None => match op.get("operationId").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => format!("{doc_base}_{}", slugify(id, '-')),
                    _ => format!("{path_base}_{}", slugify(&upper, '-')),
                },
            };
            let op_svc_defaults = cx.x_object(op, "x-kong-service-defaults")?;
            let op_up_defaults = cx.x_object(op, "x-kong-upstream-defaults")?;
            let op_servers = servers_of(op);
            let new_op_upstream = op_up_defaults.is_some() || !op_servers.is_empty();
            let new_op_service = op_svc_defaults.is_some() || new_op_upstream;
            let route_defaults = cx
                .x_object(op, "x-kong-route-defaults")?
                .or(path_route_defaults.clone());
            let (index, plugins) = if new_op_service {
                let servers = if op_servers.is_empty() {
                    path_servers.clone()
                } else {
                    op_servers
                };
                let built = cx.service(
                    &op_base,
                    &servers,
                    op_svc_defaults.or(path_svc_defaults.clone()),
                    op_up_defaults.or(path_up_defaults.clone()),
                )?;
                let parent = services[path_index].get("host").cloned();
                let mut svc = cx.place(built, new_op_upstream, parent.as_ref());
                let inherited = cx.plugins(doc, &[], &op_base)?;
                let inherited = cx.plugins(item, &inherited, &op_base)?;
                let plugins = cx.plugins(op, &inherited, &op_base)?;
                svc.insert("plugins".into(), json!([]));
                services.push(svc);
                (services.len() - 1, plugins)
            } else if new_path_service {
                (path_index, cx.plugins(op, &[], &op_base)?)
            } else {
                (path_index, cx.plugins(op, &path_plugins, &op_base)?)
            };
            let mut route = route_defaults.unwrap_or_default();
            route.remove("service");
            let (regex, priority) = route_path(path, &|name| may_be_empty(op, item, name))?;
            route.insert("plugins".into(), json!(plugins));
            route.insert("paths".into(), json!([regex]));
            if let Some(id) = cx.id(&format!("{op_base}.route")) {
                route.insert("id".into(), id);
            }
            route.insert("name".into(), json!(op_base));
            route.insert("methods".into(), json!([upper]));
            route.insert("tags".into(), cx.tags());
            match route.get("regex_priority").and_then(Value::as_i64) {
                None => {
                    route.insert("regex_priority".into(), json!(priority));
                }
                Some(given) if priority == 100 => {
                    route.insert("regex_priority".into(), json!(given - 1));
                }
                Some(_) => {}
            }
            route.entry("strip_path").or_insert(json!(false));
            if let Some(Value::Array(routes)) = services[index].get_mut("routes") {
                routes.push(Value::Object(route));
            }
        }
    }
    // Without document-level servers, the document's own service is left out when other
    // services exist (decK's rule), but only if no route landed on it.
    let doc_unused = services[doc_index]
        .get("routes")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    if doc_servers.is_empty() && services.len() > 1 && doc_unused {
        services.remove(doc_index);
    }
    let mut out = Map::new();
    out.insert("_format_version".into(), json!("3.0"));
    out.insert("services".into(), json!(services));
    // decK always writes `upstreams: []`; Gantry leaves an empty list out, since its state files
    // have no upstreams (a spec with several servers still gets them, for Kong).
    if !cx.upstreams.is_empty() {
        out.insert("upstreams".into(), Value::Array(cx.upstreams));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_decks_rules() {
        assert_eq!(slugify("Simple API overview", '-'), "simple-api-overview");
        assert_eq!(slugify("/application/", '-'), "application");
        assert_eq!(slugify("x*()_-+=x", '_'), "x_x");
        assert_eq!(slugify("-To_Do", '_'), "to_do");
        assert_eq!(slugify(" white space ", '_'), "white_space");
    }

    #[test]
    fn paths_become_anchored_regexes() {
        let never = |_: &str| false;
        assert_eq!(route_path("/", &never).unwrap(), ("~/$".to_owned(), 200));
        assert_eq!(
            route_path("/demo/{something}/x.y", &never).unwrap(),
            ("~/demo/(?<something>[^#?/]+)/x\\.y$".to_owned(), 100)
        );
        assert_eq!(
            route_path("/a/{b}", &|n| n == "b").unwrap().0,
            "~/a/(?<b>[^#?/]*)$"
        );
        assert!(route_path("/{a_very_long_parameter_name_that_is_too_long}", &never).is_err());
    }
}
