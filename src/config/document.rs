//! Owns the decK `_format_version: "3.0"` document model: the typed shape of a state file,
//! with unknown fields refused and a JSON Schema (committed as `schemas/deck-file.schema.json`)
//! generated from these types.
//!
//! Every field is optional here so that a file can say as little as it likes; defaults are
//! filled when the document is turned into entities (`crate::state`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only format version Gantry reads and writes.
pub const FORMAT_VERSION: &str = "3.0";

/// Splits a service `url` into protocol, host, port (the scheme's default when absent) and path
/// (absent when the URL has none).
pub fn split_url(raw: &str) -> Result<(String, String, u16, Option<String>), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("invalid url: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "invalid url: missing host".to_owned())?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("invalid url: no port for scheme '{}'", url.scheme()))?;
    let after_authority = raw.split_once("://").map_or("", |(_, rest)| rest);
    let has_path = after_authority.contains('/');
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    Ok((
        url.scheme().to_owned(),
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        has_path.then_some(path),
    ))
}

/// A whole state file (or several merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "decK state file (_format_version 3.0)")]
pub struct Document {
    /// Must be "3.0".
    #[serde(
        rename = "_format_version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub format_version: Option<String>,
    #[serde(rename = "_info", default, skip_serializing_if = "Info::is_empty")]
    pub info: Info,
    #[serde(
        rename = "_konnect",
        default,
        skip_serializing_if = "Konnect::is_empty"
    )]
    pub konnect: Konnect,
    #[serde(
        rename = "_defaults",
        default,
        skip_serializing_if = "FileDefaults::is_empty"
    )]
    pub defaults: FileDefaults,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Routes not nested under a service; they name theirs with `service:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<Consumer>,
    /// Global plugins, or plugins scoped with `service:`, `route:` or `consumer:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
}

/// `_info`: scope and defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Info {
    /// Every entity in the file is tagged with all of these, and only live entities carrying
    /// all of them are in scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_tags: Vec<String>,
    /// Values used where an entity does not set the field.
    #[serde(default, skip_serializing_if = "EntityDefaults::is_empty")]
    pub defaults: EntityDefaults,
    /// Entities outside the select tags that references may name, found on the gateway by
    /// these tags; they are read, never changed (decK's `default_lookup_tags`).
    #[serde(default, skip_serializing_if = "LookupTags::is_empty")]
    pub default_lookup_tags: LookupTags,
}

impl Info {
    pub fn is_empty(&self) -> bool {
        self.select_tags.is_empty()
            && self.defaults.is_empty()
            && self.default_lookup_tags.is_empty()
    }
}

/// `_info.default_lookup_tags`: per kind, the tags (all of them) a looked-up entity carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupTags {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
}

impl LookupTags {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.routes.is_empty() && self.consumers.is_empty()
    }
}

/// `_info.defaults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityDefaults {
    #[serde(default, skip_serializing_if = "ServiceDefaults::is_empty")]
    pub service: ServiceDefaults,
    #[serde(default, skip_serializing_if = "RouteDefaults::is_empty")]
    pub route: RouteDefaults,
}

impl EntityDefaults {
    pub fn is_empty(&self) -> bool {
        self.service.is_empty() && self.route.is_empty()
    }
}

/// `_info.defaults.service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl ServiceDefaults {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `_info.defaults.route`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect_status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_path: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_host: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_buffering: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_buffering: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_handling: Option<String>,
}

impl RouteDefaults {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `_konnect`: which control plane the file is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Konnect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_name: Option<String>,
}

impl Konnect {
    pub fn is_empty(&self) -> bool {
        self.control_plane_name.is_none()
    }
}

/// `_defaults` (kongctl's): the namespace guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDefaults {
    #[serde(default, skip_serializing_if = "Kongctl::is_empty")]
    pub kongctl: Kongctl,
}

impl FileDefaults {
    pub fn is_empty(&self) -> bool {
        self.kongctl.is_empty()
    }
}

/// `_defaults.kongctl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kongctl {
    /// The control plane's `KONGCTL-namespace` label must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
}

impl Kongctl {
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none() && self.protected.is_none()
    }
}

/// A service. Give either `url` or `host` (with `protocol`, `port`, `path`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Shorthand for protocol, host, port and path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 32767))]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub connect_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub write_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub read_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify_depth: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
}

/// A route, nested under its service or top-level with `service:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only on top-level routes: the service's name (or `{name: …}` / `{id: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect_status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_path: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_host: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_buffering: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_buffering: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_handling: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
}

/// A consumer: the identity key-auth attaches to a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyauth_credentials: Vec<KeyAuth>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
}

/// A key-auth credential under a consumer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The API key. Secret: masked in output unless `--show-secrets`.
    #[schemars(extend("x-secret" = true))]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// A plugin instance. Nested plugins take their parent's scope; top-level ones name theirs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Checked against `schemas/plugins/<name>.schema.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// A reference to another entity: its name (username for consumers), or `{name}` / `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Reference {
    Name(String),
    Object(ReferenceObject),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl Reference {
    /// The name (or username) this reference uses, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Reference::Name(n) => Some(n),
            Reference::Object(o) => o.name.as_deref().or(o.username.as_deref()),
        }
    }

    /// The id this reference uses, if any.
    pub fn id(&self) -> Option<&str> {
        match self {
            Reference::Name(_) => None,
            Reference::Object(o) => o.id.as_deref(),
        }
    }

    /// How the reference reads in a message: `'name'` or `id 'x'`.
    pub fn describe(&self) -> String {
        match (self.name(), self.id()) {
            (Some(n), _) => format!("'{n}'"),
            (None, Some(id)) => format!("with id '{id}'"),
            (None, None) => "''".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_kong_fields() {
        assert_eq!(
            split_url("http://localhost:32000").unwrap(),
            ("http".into(), "localhost".into(), 32000, None)
        );
        assert_eq!(
            split_url("https://api.example.com/v1/chat").unwrap(),
            (
                "https".into(),
                "api.example.com".into(),
                443,
                Some("/v1/chat".into())
            )
        );
        assert!(
            split_url("not a url")
                .unwrap_err()
                .starts_with("invalid url")
        );
    }
}
