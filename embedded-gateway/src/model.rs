//! Owns the gateway's core entities in Kong Admin API shape: services, routes, consumers,
//! key-auth credentials, plugins and control planes, with Kong's defaults.
//!
//! These types are the contract between the store, the admin API, the proxy and the CLI:
//! the CLI builds them from decK files and compares them with what the admin API returns.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to another entity by id, as Kong serialises it: `{"id": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignKey {
    pub id: String,
}

impl ForeignKey {
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

/// The entity kinds Gantry stores, in dependency order (parents first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Service,
    Route,
    Consumer,
    KeyAuth,
    Plugin,
}

impl EntityKind {
    /// All kinds, parents first: the order creates run in. Deletes run in reverse.
    pub const ALL: [EntityKind; 5] = [
        EntityKind::Service,
        EntityKind::Route,
        EntityKind::Consumer,
        EntityKind::KeyAuth,
        EntityKind::Plugin,
    ];

    /// The Admin API collection name (`/services`, `/key-auths`, …).
    pub fn collection(self) -> &'static str {
        match self {
            EntityKind::Service => "services",
            EntityKind::Route => "routes",
            EntityKind::Consumer => "consumers",
            EntityKind::KeyAuth => "key-auths",
            EntityKind::Plugin => "plugins",
        }
    }

    /// The name decK prints in event lines (`creating key-auth …`).
    pub fn display_name(self) -> &'static str {
        match self {
            EntityKind::Service => "service",
            EntityKind::Route => "route",
            EntityKind::Consumer => "consumer",
            EntityKind::KeyAuth => "key-auth",
            EntityKind::Plugin => "plugin",
        }
    }

    /// The foreign-key fields of this kind and the kind each one points at.
    pub fn foreign_keys(self) -> &'static [(&'static str, EntityKind)] {
        match self {
            EntityKind::Route => &[("service", EntityKind::Service)],
            EntityKind::KeyAuth => &[("consumer", EntityKind::Consumer)],
            EntityKind::Plugin => &[
                ("service", EntityKind::Service),
                ("route", EntityKind::Route),
                ("consumer", EntityKind::Consumer),
            ],
            EntityKind::Service | EntityKind::Consumer => &[],
        }
    }

    pub fn from_collection(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.collection() == name)
    }
}

fn default_retries() -> u32 {
    5
}
fn default_protocol() -> String {
    "http".to_owned()
}
fn default_port() -> u16 {
    80
}
fn default_timeout() -> u32 {
    60_000
}
fn yes() -> bool {
    true
}
fn default_route_protocols() -> Vec<String> {
    vec!["http".to_owned(), "https".to_owned()]
}
fn default_redirect_code() -> u16 {
    426
}
fn default_path_handling() -> String {
    "v0".to_owned()
}

/// Kong's tag rule (`typedefs.tag`): one or more characters, each a space, printable ASCII
/// other than `,` and `/` (which the `?tags=` filter uses), or non-ASCII UTF-8. The admin API
/// and the CLI's file and flag checks share it, so a tag `diff` accepts is one `apply` can write.
pub fn tag_error(tag: &str) -> Option<String> {
    let ok = |c: char| c == ' ' || (c.is_ascii_graphic() && c != ',' && c != '/') || !c.is_ascii();
    if !tag.is_empty() && tag.chars().all(ok) {
        return None;
    }
    Some(format!(
        "invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
    ))
}

/// Kong's rule for a route path (`typedefs.router_path`), and its message.
pub const ROUTE_PATH_RULE: &str = "should start with: / (fixed path) or ~/ (regex path)";

/// True when `path` is a route path Kong accepts: fixed (`/…`) or regex (`~/…`).
pub fn route_path_ok(path: &str) -> bool {
    path.starts_with('/') || path.starts_with("~/")
}

/// A Kong service: where a route's traffic goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_retries")]
    #[schemars(range(max = 32767))]
    pub retries: u32,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub connect_timeout: u32,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub write_timeout: u32,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub read_timeout: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify_depth: Option<u8>,
}

/// A Kong route: how requests are matched to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_route_protocols")]
    pub protocols: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(default = "default_redirect_code")]
    pub https_redirect_status_code: u16,
    #[serde(default)]
    pub regex_priority: i64,
    #[serde(default = "yes")]
    pub strip_path: bool,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default = "yes")]
    pub request_buffering: bool,
    #[serde(default = "yes")]
    pub response_buffering: bool,
    #[serde(default = "default_path_handling")]
    pub path_handling: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ForeignKey>,
}

/// A Kong consumer: the identity key-auth attaches to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A key-auth credential (`keyauth_credentials`): an API key owned by a consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthCredential {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    /// Required on write; the admin API fills it in from the path for nested endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ForeignKey>,
    /// The API key. Secret: masked in every CLI output unless `--show-secrets`.
    #[serde(default)]
    #[schemars(extend("x-secret" = true))]
    pub key: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// A plugin instance, scoped globally or to a service, route and/or consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ForeignKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ForeignKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ForeignKey>,
    /// The plugin's configuration; normalised (defaults filled) by [`crate::plugins::normalize_config`].
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A control plane (Konnect shape): a named, labelled set of entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlane {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub config: ControlPlaneConfig,
    /// Every write to the control plane's entities bumps this.
    pub revision: u64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ControlPlaneConfig {
    pub control_plane_endpoint: String,
    pub cluster_type: String,
}

/// The label kongctl uses to mark which namespace owns a control plane.
pub const NAMESPACE_LABEL: &str = "KONGCTL-namespace";
/// The label that blocks updates and deletes of a control plane.
pub const PROTECTED_LABEL: &str = "KONGCTL-protected";
