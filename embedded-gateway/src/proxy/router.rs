//! Owns route matching, Kong's traditional router: path prefixes and `~` regex paths, methods,
//! hosts (with `*.` / `.*` wildcards), headers (`~*` regex values), and Kong's priority order.
//! Everything is compiled once per snapshot; matching allocates nothing.

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

use crate::model::Route;

#[derive(Debug)]
enum PathPattern {
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
enum HostPattern {
    Exact(String),
    /// `*.example.com` → matches hosts ending in `.example.com`.
    Suffix(String),
    /// `example.*` → matches hosts starting with `example.`.
    Prefix(String),
}

#[derive(Debug)]
enum ValuePattern {
    Exact(String),
    Regex(Regex),
}

/// One route's non-path conditions.
#[derive(Debug)]
struct Conditions {
    methods: Vec<Method>,
    hosts: Vec<HostPattern>,
    headers: Vec<(HeaderName, Vec<ValuePattern>)>,
}

#[derive(Debug)]
struct Entry {
    route: usize,
    path: Option<PathPattern>,
}

/// The result of a match: which route, and how much of the path the route consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: usize,
    /// Bytes of the request path matched by the route's path (0 without paths).
    pub matched_len: usize,
}

/// The compiled router of one snapshot.
#[derive(Debug, Default)]
pub struct Router {
    conditions: Vec<Conditions>,
    entries: Vec<Entry>,
}

/// Sort key: Kong's priority, higher first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Priority {
    fields: u8,
    plain_host: bool,
    headers: usize,
    is_regex: bool,
    regex_priority: i64,
    prefix_len: usize,
}

impl Router {
    /// Compiles `routes` (indices into the slice are the route ids returned by `find`).
    /// Invalid regexes are skipped with a warning.
    pub fn compile(routes: &[Route]) -> Self {
        let mut keyed = Vec::new();
        let mut conditions = Vec::with_capacity(routes.len());
        for (i, r) in routes.iter().enumerate() {
            let c = compile_conditions(r);
            let fields = u8::from(!c.methods.is_empty())
                + u8::from(!c.hosts.is_empty())
                + u8::from(!c.headers.is_empty())
                + u8::from(r.paths.as_ref().is_some_and(|p| !p.is_empty()));
            let plain_host = c.hosts.iter().any(|h| matches!(h, HostPattern::Exact(_)));
            let paths = r.paths.clone().unwrap_or_default();
            let base = |path: Option<PathPattern>, prefix_len: usize, is_regex: bool| {
                let key = Priority {
                    fields,
                    plain_host,
                    headers: c.headers.len(),
                    is_regex,
                    regex_priority: if is_regex { r.regex_priority } else { 0 },
                    prefix_len,
                };
                (
                    key,
                    std::cmp::Reverse(r.created_at),
                    Entry { route: i, path },
                )
            };
            if paths.is_empty() {
                keyed.push(base(None, 0, false));
            }
            for p in paths {
                match p.strip_prefix('~') {
                    Some(re) => match Regex::new(&format!("^(?:{re})")) {
                        Ok(re) => keyed.push(base(Some(PathPattern::Regex(re)), 0, true)),
                        Err(e) => {
                            tracing::warn!(route = %r.id, error = %e, "skipping invalid regex path")
                        }
                    },
                    None => {
                        let len = p.len();
                        keyed.push(base(Some(PathPattern::Prefix(p)), len, false));
                    }
                }
            }
            conditions.push(c);
        }
        keyed.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
        Self {
            conditions,
            entries: keyed.into_iter().map(|(_, _, e)| e).collect(),
        }
    }

    /// The highest-priority route matching the request, if any.
    pub fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<RouteMatch> {
        let host = host.map(strip_port);
        for e in &self.entries {
            let Some(matched_len) = match_path(e.path.as_ref(), path) else {
                continue;
            };
            if self.conditions[e.route].matches(method, host, headers) {
                return Some(RouteMatch {
                    route: e.route,
                    matched_len,
                });
            }
        }
        None
    }
}

fn match_path(p: Option<&PathPattern>, path: &str) -> Option<usize> {
    match p {
        None => Some(0),
        Some(PathPattern::Prefix(prefix)) => {
            path.starts_with(prefix.as_str()).then_some(prefix.len())
        }
        Some(PathPattern::Regex(re)) => re.find(path).map(|m| m.end()),
    }
}

impl Conditions {
    fn matches(&self, method: &Method, host: Option<&str>, headers: &HeaderMap) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        if !self.hosts.is_empty() {
            let Some(host) = host else { return false };
            if !self.hosts.iter().any(|p| p.matches(host)) {
                return false;
            }
        }
        self.headers.iter().all(|(name, patterns)| {
            headers.get_all(name).iter().any(|v| {
                let v = v.to_str().unwrap_or("");
                patterns.iter().any(|p| p.matches(v))
            })
        })
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            HostPattern::Prefix(p) => {
                host.len() > p.len()
                    && host.is_char_boundary(p.len())
                    && host[..p.len()].eq_ignore_ascii_case(p)
            }
        }
    }
}

impl ValuePattern {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValuePattern::Exact(e) => v.eq_ignore_ascii_case(e),
            ValuePattern::Regex(re) => re.is_match(v),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

fn compile_conditions(r: &Route) -> Conditions {
    let methods = r
        .methods
        .iter()
        .flatten()
        .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .collect();
    let hosts = r
        .hosts
        .iter()
        .flatten()
        .map(|h| {
            let h = strip_port(h).to_ascii_lowercase();
            if let Some(s) = h.strip_prefix('*') {
                HostPattern::Suffix(s.to_owned())
            } else if let Some(p) = h.strip_suffix('*') {
                HostPattern::Prefix(p.to_owned())
            } else {
                HostPattern::Exact(h)
            }
        })
        .collect();
    let headers = r
        .headers
        .iter()
        .flatten()
        .filter_map(|(name, values)| {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
            let patterns = values
                .iter()
                .filter_map(|v| match v.strip_prefix("~*") {
                    Some(re) => Regex::new(&format!("(?i){re}"))
                        .ok()
                        .map(ValuePattern::Regex),
                    None => Some(ValuePattern::Exact(v.clone())),
                })
                .collect();
            Some((name, patterns))
        })
        .collect();
    Conditions {
        methods,
        hosts,
        headers,
    }
}

/// The upstream path for a matched request: `strip_path` removes what the route matched, then
/// `path_handling` v0 joins it onto the service path (v1 concatenates).
pub fn upstream_path(
    service_path: Option<&str>,
    path: &str,
    strip: bool,
    matched_len: usize,
    v1: bool,
) -> String {
    let rest = if strip {
        &path[matched_len.min(path.len())..]
    } else {
        path
    };
    let base = service_path.unwrap_or("/");
    if v1 {
        let mut out = base.to_owned();
        if out.ends_with('/') && rest.starts_with('/') {
            out.push_str(&rest[1..]);
        } else {
            out.push_str(rest);
        }
        return if out.is_empty() { "/".into() } else { out };
    }
    if rest.is_empty() || rest == "/" {
        return if strip && rest.is_empty() && base != "/" {
            base.trim_end_matches('/').to_owned()
        } else {
            base.to_owned()
        };
    }
    let mut out = base.trim_end_matches('/').to_owned();
    if !rest.starts_with('/') {
        out.push('/');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: serde_json::Value) -> Route {
        serde_json::from_value(json).unwrap()
    }

    fn find(
        routes: &[Route],
        method: &str,
        host: Option<&str>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<usize> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Router::compile(routes)
            .find(
                &Method::from_bytes(method.as_bytes()).unwrap(),
                host,
                path,
                &h,
            )
            .map(|m| m.route)
    }

    #[test]
    fn route_matching_follows_kong_priorities() {
        let routes = vec![
            route(serde_json::json!({"paths": ["/"]})),
            route(serde_json::json!({"paths": ["/api"]})),
            route(serde_json::json!({"paths": ["/api/v1"]})),
            route(serde_json::json!({"paths": ["~/api/v\\d+/items$"], "regex_priority": 1})),
            route(serde_json::json!({"paths": ["/api"], "methods": ["POST"]})),
            route(serde_json::json!({"paths": ["/api"], "hosts": ["*.example.com"]})),
            route(serde_json::json!({"paths": ["/api"], "hosts": ["exact.example.com"]})),
            route(
                serde_json::json!({"paths": ["/api"], "headers": {"x-version": ["2", "~*^beta"]}}),
            ),
            route(serde_json::json!({"hosts": ["only.host"]})),
        ];
        /// method, host, path, headers → index of the route that must match.
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a [(&'a str, &'a str)],
            Option<usize>,
        );
        let table: &[Case] = &[
            ("GET", None, "/other", &[], Some(0)),
            ("GET", None, "/api/x", &[], Some(1)),
            ("GET", None, "/api/v1/x", &[], Some(2)),
            ("GET", None, "/api/v2/items", &[], Some(3)),
            ("POST", None, "/api/x", &[], Some(4)),
            ("GET", Some("a.example.com"), "/api/x", &[], Some(5)),
            (
                "GET",
                Some("exact.example.com:8000"),
                "/api/x",
                &[],
                Some(6),
            ),
            ("GET", None, "/api/x", &[("X-Version", "2")], Some(7)),
            ("GET", None, "/api/x", &[("x-version", "BETA-1")], Some(7)),
            ("GET", Some("only.host"), "/zzz", &[], Some(8)),
        ];
        for (m, host, path, headers, expected) in table {
            assert_eq!(
                find(&routes, m, *host, path, headers),
                *expected,
                "{m} {host:?} {path} {headers:?}"
            );
        }
    }

    #[test]
    fn no_route_means_none() {
        let routes = vec![route(
            serde_json::json!({"paths": ["/a"], "methods": ["GET"]}),
        )];
        assert_eq!(find(&routes, "GET", None, "/b", &[]), None);
        assert_eq!(find(&routes, "POST", None, "/a", &[]), None);
    }

    #[test]
    fn path_handling_v0_joins_with_single_slash() {
        assert_eq!(
            upstream_path(Some("/s"), "/fv0/req", true, 4, false),
            "/s/req"
        );
        assert_eq!(
            upstream_path(Some("/s"), "/fv0req", true, 4, false),
            "/s/req"
        );
        assert_eq!(
            upstream_path(Some("/s/"), "/fv0/req", true, 4, false),
            "/s/req"
        );
        assert_eq!(upstream_path(None, "/fv0/req", true, 4, false), "/req");
        assert_eq!(upstream_path(None, "/fv0/req", false, 4, false), "/fv0/req");
        assert_eq!(upstream_path(Some("/s"), "/fv0", true, 4, false), "/s");
        assert_eq!(upstream_path(Some("/s"), "/fv0req", true, 4, true), "/sreq");
    }
}
