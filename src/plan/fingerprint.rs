//! Owns the short fingerprints that show a secret changed without showing it: the first
//! 8 hex digits of HMAC-SHA256 under a 256-bit key drawn from the OS once per run and never
//! written anywhere. Without the key a fingerprint cannot be checked against a guess, so even
//! a short secret cannot be brute-forced from it; within one report, equal secrets have equal
//! fingerprints and different ones (almost surely) differ.

use std::sync::LazyLock;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use embedded_gateway::plugins::MASK;
use serde_json::Value;

static KEY: LazyLock<hmac::Key> = LazyLock::new(|| {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random source is available");
    hmac::Key::new(hmac::HMAC_SHA256, &bytes)
});

/// `[masked:1a2b3c4d]` for a secret value (strings by their text, anything else by its JSON).
pub fn fingerprint(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tag = hmac::sign(&KEY, text.as_bytes());
    let hex: String = tag.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let open = MASK.trim_end_matches(']');
    format!("{open}:{hex}]")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fingerprints_tell_values_apart_and_read_as_masks() {
        let a = fingerprint(&json!("Bearer sk-old"));
        let b = fingerprint(&json!("Bearer sk-new"));
        assert_ne!(a, b);
        assert_eq!(a, fingerprint(&json!("Bearer sk-old")));
        assert!(embedded_gateway::plugins::is_mask(&a), "{a}");
        assert_eq!(a.len(), "[masked:".len() + 8 + 1);
    }

    #[test]
    fn a_fingerprint_is_not_a_plain_hash_of_the_secret() {
        // SHA-256("x") starts with 2d711642: a keyed fingerprint must not.
        assert!(!fingerprint(&json!("x")).contains("2d711642"));
    }
}
