//! Owns the `X-Kong-*` header names every layer shares, latency header values, the per-request
//! id (`X-Kong-Request-Id`, 32 hex) and the one-walk header remover.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

pub const X_KONG_REQUEST_ID: HeaderName = HeaderName::from_static("x-kong-request-id");
pub const X_KONG_RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");
pub const X_KONG_UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
pub const X_KONG_PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
pub const X_KONG_LLM_MODEL: HeaderName = HeaderName::from_static("x-kong-llm-model");

pub const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
pub const X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
pub const X_CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
pub const X_CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
pub const X_ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");

/// Headers that describe the consumer to the upstream; client-sent copies are always cleared.
pub static CONSUMER_HEADERS: [HeaderName; 5] = [
    X_CONSUMER_ID,
    X_CONSUMER_USERNAME,
    X_CONSUMER_CUSTOM_ID,
    X_CREDENTIAL_IDENTIFIER,
    X_ANONYMOUS_CONSUMER,
];

/// Header values for 0–999 ms, built once: cloning one is a reference count, not an allocation.
static SMALL_MILLIS: LazyLock<Vec<HeaderValue>> =
    LazyLock::new(|| (0..1000u64).map(HeaderValue::from).collect());

/// A latency header value in whole milliseconds.
pub fn millis(d: Duration) -> HeaderValue {
    let ms = d.as_millis();
    match SMALL_MILLIS.get(ms as usize) {
        Some(v) if ms < 1000 => v.clone(),
        _ => HeaderValue::from(ms as u64),
    }
}

static SEED: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A request id: 32 lowercase hex characters, unique per process run, no syscall per request.
#[derive(Debug, Clone, Copy)]
pub struct RequestId([u8; 32]);

impl RequestId {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let a = splitmix(*SEED ^ n);
        let b = splitmix(a ^ n.rotate_left(32));
        let mut out = [0u8; 32];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in a
            .to_be_bytes()
            .iter()
            .chain(b.to_be_bytes().iter())
            .enumerate()
        {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 15) as usize];
        }
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// Removes the headers `drop` selects. Walks the few headers a request has once, instead of
/// looking up every name on a fixed list.
pub fn remove_headers(h: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let doomed: Vec<HeaderName> = h.keys().filter(|k| drop(k)).cloned().collect();
    for name in doomed {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_headers_are_whole_milliseconds() {
        assert_eq!(millis(Duration::from_micros(999)), "0");
        assert_eq!(millis(Duration::from_millis(999)), "999");
        assert_eq!(millis(Duration::from_millis(1000)), "1000");
        assert_eq!(millis(Duration::from_secs(90)), "90000");
    }

    #[test]
    fn request_ids_are_32_hex_and_distinct() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }
}
