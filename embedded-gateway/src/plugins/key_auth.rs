//! Owns the `key-auth` plugin's configuration: Kong 3.14's field names, types and defaults.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_owned()]
}
fn yes() -> bool {
    true
}

/// `key-auth` config. `hide_credentials` defaults to `true`, as in the Kong 3.14 schema the
/// recipe targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "key-auth")]
pub struct KeyAuthConfig {
    /// Header, query and body names the key is read from, in order.
    #[serde(default = "default_key_names")]
    #[schemars(length(min = 1), inner(regex(pattern = r"^[A-Za-z0-9_-]+$")))]
    pub key_names: Vec<String>,
    /// Remove the key from the request before proxying.
    #[serde(default = "yes")]
    pub hide_credentials: bool,
    /// Consumer id or username used when authentication fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<String>,
    #[serde(default = "yes")]
    pub key_in_header: bool,
    #[serde(default = "yes")]
    pub key_in_query: bool,
    #[serde(default)]
    pub key_in_body: bool,
    /// When false, `OPTIONS` preflight requests pass without a key.
    #[serde(default = "yes")]
    pub run_on_preflight: bool,
    /// Realm for the `WWW-Authenticate` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

impl Default for KeyAuthConfig {
    fn default() -> Self {
        Self {
            key_names: default_key_names(),
            hide_credentials: true,
            anonymous: None,
            key_in_header: true,
            key_in_query: true,
            key_in_body: false,
            run_on_preflight: true,
            realm: None,
        }
    }
}
