//! Owns the check that every secret written in a state file is a real secret: not the mask a
//! dump writes in its place (`[masked]`), nor the salted hash a decK `dump --sanitize` writes.
//! Applying either would silently replace the real key or provider credential.

use embedded_gateway::plugins;
use serde_json::Value;

use super::document::Document;
use super::position::{index, join};
use super::sites::plugin_sites;
use super::{Diagnostic, Source};

/// How to get a file with the real values, shown with every refusal.
const HINT: &str = "hint: dump with `--show-secrets`, or write the secret as a template such as `${{ env \"DECK_API_KEY\" }}` and set the variable";

/// What is wrong with a secret's value, if anything. `sanitized_context` says whether the
/// entity around it carries decK's sanitized shape too (see [`is_sanitized_hash`]).
fn problem(value: &str, sanitized_context: bool) -> Option<String> {
    if plugins::is_mask(value) {
        return Some(format!(
            "is the placeholder `{}` that a dump writes instead of a secret; applying it would replace the real value ({HINT})",
            plugins::MASK
        ));
    }
    if sanitized_context && is_sanitized_hash(value) {
        return Some(format!(
            "is a salted hash from a sanitized dump (`deck gateway dump --sanitize`), not a secret; applying it would replace the real value ({HINT})"
        ));
    }
    None
}

/// decK's sanitizer replaces every string with the hex SHA-256 of a random salt and the value
/// (64 lowercase hex digits), `redacted:<hash>` for `key:value` text.
pub fn is_sanitized_hash(text: &str) -> bool {
    let hex = text.strip_prefix("redacted:").unwrap_or(text);
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every refused secret in one file, located at the secret.
pub fn check(src: &Source, doc: &Document, out: &mut Vec<Diagnostic>) {
    for (ci, c) in doc.consumers.iter().enumerate() {
        // A sanitized dump hashes the consumer's username and custom_id along with its keys.
        let sanitized = [&c.username, &c.custom_id]
            .into_iter()
            .flatten()
            .any(|s| is_sanitized_hash(s));
        let base = join(&index("consumers", ci), "keyauth_credentials");
        for (ki, k) in c.keyauth_credentials.iter().enumerate() {
            if let Some(msg) = problem(&k.key, sanitized) {
                out.push(src.diag(&join(&index(&base, ki), "key"), msg));
            }
        }
    }
    for site in plugin_sites(doc) {
        let Some(config) = &site.plugin.config else {
            continue;
        };
        let secrets = plugins::secret_fields(&site.plugin.name, config);
        // Model names, header names and the like are never 64-digit hashes unless sanitized.
        let mut sanitized = false;
        leaves(config, "", &mut |path, text| {
            if is_sanitized_hash(text) && !secrets.iter().any(|(p, _)| p == path) {
                sanitized = true;
            }
        });
        for (path, value) in &secrets {
            let Some(text) = value.as_str() else { continue };
            if let Some(msg) = problem(text, sanitized) {
                let at = join(&join(&site.path, "config"), path);
                out.push(src.diag(&at, msg));
            }
        }
    }
}

/// Calls `f` with the path and text of every string leaf of `v`.
fn leaves(v: &Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, &join(path, k), f);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, &index(path, i), f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_hashes_are_64_lowercase_hex_digits() {
        let h = "a".repeat(63) + "0";
        assert!(is_sanitized_hash(&h));
        assert!(is_sanitized_hash(&format!("redacted:{h}")));
        assert!(!is_sanitized_hash(&h.to_uppercase()));
        assert!(!is_sanitized_hash(&h[1..]));
        assert!(!is_sanitized_hash("sk-live-123"));
    }

    #[test]
    fn a_hash_alone_is_a_secret_like_any_other() {
        let h = "0123456789abcdef".repeat(4);
        assert_eq!(problem(&h, false), None);
        assert!(problem(&h, true).unwrap().contains("sanitized dump"));
        assert!(
            problem("[masked]", false)
                .unwrap()
                .contains("--show-secrets")
        );
        assert_eq!(problem("my-[masked]-key", false), None);
    }
}
