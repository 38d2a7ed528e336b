//! Owns `gantry file lint`: Gantry's built-in rules, run on the file as written (templates not
//! expanded), each finding located at `file:line:col` and named by its entity path.
//!
//! Rules:
//! - `plaintext-secret` (error): a plugin field the schema marks secret (provider keys in
//!   `auth.*`) holds a literal instead of a `${{ env "DECK_…" }}` / `$<< … >>` template or a
//!   `{vault://…}` reference.
//! - `route-without-auth` (error): a route reachable with no enabled authentication plugin on
//!   it, on its service, or global.
//! - `duplicate-model-alias` (warn): one `ai-proxy-advanced` plugin gives the same
//!   `model_alias` to several targets, so requests for it are balanced across them.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::config::load::parse_value;
use crate::config::position::{Positions, index, join};
use crate::config::template::{Syntax, line_col};

/// The authentication plugins that make a route "authenticated".
pub const AUTH_PLUGINS: &[&str] = &[
    "key-auth",
    "key-auth-enc",
    "basic-auth",
    "jwt",
    "hmac-auth",
    "oauth2",
    "openid-connect",
    "ldap-auth",
    "ldap-auth-advanced",
    "mtls-auth",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Hint,
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Hint => "hint",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: cannot lint: {message}")]
pub struct LintError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

struct Linter<'a> {
    file: &'a str,
    text: &'a str,
    positions: Positions,
    out: Vec<Finding>,
}

impl Linter<'_> {
    fn report(&mut self, path: &str, rule: &'static str, severity: Severity, message: String) {
        let (line, column) = self
            .positions
            .offset(path)
            .map_or((0, 0), |o| line_col(self.text, o));
        self.out.push(Finding {
            file: self.file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            rule,
            severity,
            message,
        });
    }
}

/// Lints one file's text.
pub fn lint(file: &str, text: &str) -> Result<Vec<Finding>, LintError> {
    let doc = parse_value(text, Syntax::Yaml).map_err(|(offset, message)| {
        let (line, col) = line_col(text, offset);
        LintError {
            file: file.to_owned(),
            line,
            col,
            message,
        }
    })?;
    let mut l = Linter {
        file,
        text,
        positions: Positions::of(text),
        out: Vec::new(),
    };
    let plugins = plugins(&doc);
    for (path, plugin) in &plugins {
        plaintext_secrets(&mut l, path, plugin.value);
        duplicate_aliases(&mut l, path, plugin.value);
    }
    routes_without_auth(&mut l, &doc, &plugins);
    l.out.sort_by_key(|f| (f.line, f.column));
    Ok(l.out)
}

/// A plugin and what it is attached to (by nesting or by reference).
struct Plugin<'a> {
    value: &'a Value,
    service: Option<String>,
    route: Option<String>,
    consumer: bool,
}

fn name_ref(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get("name")
            .or_else(|| m.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn entity_name(v: &Value) -> Option<String> {
    v.get("name")
        .or_else(|| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn add<'a>(
    path: String,
    value: &'a Value,
    service: Option<String>,
    route: Option<String>,
    consumer: bool,
    out: &mut Vec<(String, Plugin<'a>)>,
) {
    out.push((
        path,
        Plugin {
            value,
            service,
            route,
            consumer,
        },
    ));
}

/// Every plugin in the file with its path.
fn plugins(doc: &Value) -> Vec<(String, Plugin<'_>)> {
    let mut out = Vec::new();
    for (i, p) in items(doc, "plugins") {
        add(
            index("plugins", i),
            p,
            name_ref(p.get("service")),
            name_ref(p.get("route")),
            p.get("consumer").is_some_and(|c| !c.is_null()),
            &mut out,
        );
    }
    for (si, s) in items(doc, "services") {
        let sp = index("services", si);
        let sname = entity_name(s);
        for (i, p) in items(s, "plugins") {
            add(
                index(&join(&sp, "plugins"), i),
                p,
                sname.clone(),
                name_ref(p.get("route")),
                p.get("consumer").is_some_and(|c| !c.is_null()),
                &mut out,
            );
        }
        for (ri, r) in items(s, "routes") {
            let rp = index(&join(&sp, "routes"), ri);
            for (i, p) in items(r, "plugins") {
                add(
                    index(&join(&rp, "plugins"), i),
                    p,
                    sname.clone(),
                    entity_name(r),
                    p.get("consumer").is_some_and(|c| !c.is_null()),
                    &mut out,
                );
            }
        }
    }
    for (ri, r) in items(doc, "routes") {
        let rp = index("routes", ri);
        for (i, p) in items(r, "plugins") {
            add(
                index(&join(&rp, "plugins"), i),
                p,
                name_ref(r.get("service")),
                entity_name(r),
                p.get("consumer").is_some_and(|c| !c.is_null()),
                &mut out,
            );
        }
    }
    for (ci, c) in items(doc, "consumers") {
        for (i, p) in items(c, "plugins") {
            add(
                index(&join(&index("consumers", ci), "plugins"), i),
                p,
                None,
                None,
                true,
                &mut out,
            );
        }
    }
    out
}

/// True when the value is a template or a vault reference, not a literal secret.
fn is_reference(s: &str) -> bool {
    s.contains("${{") || s.contains("$<<") || s.trim_start().starts_with("{vault://")
}

fn plaintext_secrets(l: &mut Linter<'_>, path: &str, plugin: &Value) {
    let (Some(name), Some(config)) = (
        plugin.get("name").and_then(Value::as_str),
        plugin.get("config"),
    ) else {
        return;
    };
    let mut masked = config.clone();
    embedded_gateway::plugins::mask_secrets(name, &mut masked);
    let mut found = Vec::new();
    compare(config, &masked, &join(path, "config"), &mut found);
    for (p, value) in found {
        if !is_reference(&value) {
            l.report(
                &p,
                "plaintext-secret",
                Severity::Error,
                "secret field holds a literal value; use a template such as ${{ env \"DECK_…\" }} (or $<< env \"DECK_…\" >>) or a {vault://…} reference".to_owned(),
            );
        }
    }
}

/// Paths (and original text) of leaves that masking replaced.
fn compare(original: &Value, masked: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match (original, masked) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if let Some(m) = b.get(k) {
                    compare(v, m, &join(path, k), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, m)) in a.iter().zip(b).enumerate() {
                compare(v, m, &index(path, i), out);
            }
        }
        (o, Value::String(m)) if m == embedded_gateway::plugins::MASK && o != masked => {
            let text = match o {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((path.to_owned(), text));
        }
        _ => {}
    }
}

fn duplicate_aliases(l: &mut Linter<'_>, path: &str, plugin: &Value) {
    if plugin.get("name").and_then(Value::as_str) != Some("ai-proxy-advanced") {
        return;
    }
    let mut by_alias: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in items(plugin.get("config").unwrap_or(&Value::Null), "targets") {
        if let Some(a) = t.pointer("/model/model_alias").and_then(Value::as_str) {
            by_alias.entry(a.to_owned()).or_default().push(i);
        }
    }
    for (alias, targets) in by_alias {
        if targets.len() < 2 {
            continue;
        }
        let targets_path = join(&join(path, "config"), "targets");
        let listed: Vec<String> = targets.iter().map(|i| format!("targets[{i}]")).collect();
        let second = join(
            &join(&index(&targets_path, targets[1]), "model"),
            "model_alias",
        );
        l.report(
            &second,
            "duplicate-model-alias",
            Severity::Warn,
            format!(
                "model_alias '{alias}' is given to {}: requests for it are balanced across them; give each its own alias if that is not meant",
                listed.join(", ")
            ),
        );
    }
}

fn routes_without_auth(l: &mut Linter<'_>, doc: &Value, plugins: &[(String, Plugin<'_>)]) {
    let enabled_auth = |p: &&Plugin<'_>| {
        !p.consumer
            && p.value.get("enabled").and_then(Value::as_bool) != Some(false)
            && p.value
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| AUTH_PLUGINS.contains(&n))
    };
    let auth: Vec<&Plugin<'_>> = plugins
        .iter()
        .map(|(_, p)| p)
        .filter(enabled_auth)
        .collect();
    let global = auth
        .iter()
        .any(|p| p.service.is_none() && p.route.is_none());
    if global {
        return;
    }
    let services: HashSet<&str> = auth
        .iter()
        .filter(|p| p.route.is_none())
        .filter_map(|p| p.service.as_deref())
        .collect();
    let routes: HashSet<&str> = auth.iter().filter_map(|p| p.route.as_deref()).collect();
    let mut check = |path: String, route: &Value, service: Option<String>| {
        let rname = entity_name(route);
        let covered = rname.as_deref().is_some_and(|r| routes.contains(r))
            || service.as_deref().is_some_and(|s| services.contains(s));
        if !covered {
            l.report(
                &path,
                "route-without-auth",
                Severity::Error,
                format!(
                    "route {} has no authentication plugin ({}) on it, on its service or global",
                    rname.map_or("(unnamed)".to_owned(), |n| format!("'{n}'")),
                    AUTH_PLUGINS[..3].join(", ") + ", …"
                ),
            );
        }
    };
    for (si, s) in items(doc, "services") {
        for (ri, r) in items(s, "routes") {
            check(
                index(&join(&index("services", si), "routes"), ri),
                r,
                entity_name(s),
            );
        }
    }
    for (ri, r) in items(doc, "routes") {
        check(index("routes", ri), r, name_ref(r.get("service")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<(usize, &'static str, String)> {
        lint("kong.yaml", text)
            .unwrap()
            .into_iter()
            .map(|f| (f.line, f.rule, f.path))
            .collect()
    }

    const PROXY: &str = "      - name: ai-proxy-advanced\n        config:\n          targets:\n            - route_type: llm/v1/chat\n              auth:\n                header_name: Authorization\n                header_value: HEADER\n              model: {provider: openai, name: gpt-4o, model_alias: fast}\n";

    fn file(header: &str, auth: bool) -> String {
        let auth = if auth { "      - name: key-auth\n" } else { "" };
        format!(
            "_format_version: \"3.0\"\nservices:\n  - name: s\n    url: http://x\n    routes:\n      - name: r\n        paths: [/r]\n    plugins:\n{auth}{}",
            PROXY.replace("HEADER", header)
        )
    }

    #[test]
    fn literal_provider_keys_are_errors_templates_and_vault_references_are_not() {
        assert_eq!(
            rules(&file("Bearer sk-live-123", true)),
            [(
                16,
                "plaintext-secret",
                "services[0].plugins[1].config.targets[0].auth.header_value".to_owned()
            )]
        );
        for ok in [
            "${{ env \"DECK_KEY\" }}",
            "Bearer $<< env \"DECK_KEY\" >>",
            "\"{vault://env/openai-key}\"",
        ] {
            assert_eq!(rules(&file(ok, true)), [], "{ok}");
        }
    }

    #[test]
    fn routes_need_auth_on_route_service_or_globally() {
        let no_auth = file("${{ env \"DECK_K\" }}", false);
        assert_eq!(
            rules(&no_auth),
            [(6, "route-without-auth", "services[0].routes[0]".to_owned())]
        );
        let global = format!("{no_auth}plugins:\n  - name: basic-auth\n");
        assert_eq!(rules(&global), []);
        let disabled = format!("{no_auth}plugins:\n  - name: basic-auth\n    enabled: false\n");
        assert_eq!(rules(&disabled).len(), 1);
        let on_route = format!("{no_auth}plugins:\n  - name: jwt\n    route: r\n");
        assert_eq!(rules(&on_route), []);
        let other_route = format!("{no_auth}plugins:\n  - name: jwt\n    route: other\n");
        assert_eq!(rules(&other_route).len(), 1);
    }

    #[test]
    fn a_repeated_alias_in_one_plugin_is_a_warning_at_the_second_target() {
        let two = file("${{ env \"DECK_K\" }}", true).replace(
            "model: {provider: openai, name: gpt-4o, model_alias: fast}\n",
            "model: {provider: openai, name: gpt-4o, model_alias: fast}\n            - route_type: llm/v1/chat\n              model:\n                provider: openai\n                name: gpt-4o-mini\n                model_alias: fast\n",
        );
        let found = lint("kong.yaml", &two).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].rule, "duplicate-model-alias");
        assert_eq!(found[0].severity, Severity::Warn);
        assert_eq!(found[0].line, 22);
        assert!(
            found[0].message.contains("targets[0], targets[1]"),
            "{}",
            found[0].message
        );
    }
}
