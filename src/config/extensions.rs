//! Owns the notes `validate` prints when a file uses a Gantry extension that Kong does not
//! have, so a team knows the file will not behave the same on a Kong gateway.

use super::document::Document;
use super::sites::plugin_sites;

/// One line per place that uses a Gantry extension.
pub fn notes(doc: &Document) -> Vec<String> {
    plugin_sites(doc)
        .into_iter()
        .filter(|s| s.plugin.name == "key-auth")
        .filter(|s| {
            s.plugin
                .config
                .as_ref()
                .and_then(|c| c.get("key_in_bearer"))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        })
        .map(|s| {
            format!(
                "{}.config.key_in_bearer is a Gantry extension: Kong's key-auth does not read the key from `Authorization: Bearer`",
                s.path
            )
        })
        .collect()
}
