//! Owns the `key-auth` plugin: its configuration (Kong 3.14's field names, types and
//! defaults) and its `access` phase: the per-snapshot key table (keys indexed by a keyed SipHash
//! under a random per-table secret, confirmed with a constant-time compare, so hits and misses
//! take the same path), key extraction (header → query → body per `key_names`),
//! `hide_credentials`, the anonymous consumer, and Kong's 401 answers.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::api::{CompileEnv, Env, Flow, Plugin};
use crate::body::RequestBody;
use crate::context::{Authenticated, ConsumerInfo, Ctx, Payload};
use crate::errors;
use crate::model::{Consumer, KeyAuthCredential};

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
    /// Gantry extension (not in Kong): also read the key from `Authorization: Bearer <key>`,
    /// as the OpenAI and Anthropic SDKs send their `api_key`. Left out of the config when
    /// false, so a Kong file never shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_in_bearer: bool,
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
            key_in_bearer: false,
            run_on_preflight: true,
            realm: None,
        }
    }
}

#[derive(Debug)]
struct KeyEntry {
    key: Box<[u8]>,
    credential_id: Option<HeaderValue>,
    consumer: Arc<ConsumerInfo>,
}

/// A `u64` that is already a keyed hash indexes the table as it is.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// All credentials of one snapshot, indexed by a keyed hash of the key. The hash key is random
/// per table and never leaves memory, so a caller cannot aim guesses at a bucket; the key
/// itself is then confirmed in constant time.
#[derive(Debug)]
pub struct KeyTable {
    hasher: RandomState,
    entries: HashMap<u64, Vec<KeyEntry>, BuildHasherDefault<PreHashed>>,
    by_id: HashMap<String, Arc<ConsumerInfo>>,
    by_username: HashMap<String, Arc<ConsumerInfo>>,
}

impl Default for KeyTable {
    fn default() -> Self {
        Self::compile(&[], &[])
    }
}

impl KeyTable {
    pub fn compile(consumers: &[Consumer], credentials: &[KeyAuthCredential]) -> Self {
        let hasher = RandomState::new();
        let mut by_id = HashMap::new();
        let mut by_username = HashMap::new();
        for c in consumers {
            let info = Arc::new(ConsumerInfo::new(c));
            if let Some(u) = &c.username {
                by_username.insert(u.clone(), info.clone());
            }
            by_id.insert(c.id.clone(), info);
        }
        let mut entries: HashMap<u64, Vec<KeyEntry>, _> = HashMap::default();
        for cred in credentials {
            if cred.ttl == Some(0) || cred.key.is_empty() {
                continue;
            }
            let Some(consumer) = cred.consumer.as_ref().and_then(|f| by_id.get(&f.id)) else {
                continue;
            };
            entries
                .entry(hasher.hash_one(cred.key.as_bytes()))
                .or_default()
                .push(KeyEntry {
                    key: cred.key.as_bytes().into(),
                    credential_id: HeaderValue::from_str(&cred.id).ok(),
                    consumer: consumer.clone(),
                });
        }
        Self {
            hasher,
            entries,
            by_id,
            by_username,
        }
    }

    /// The credential owning `key`. Hit and miss run the same keyed hash, one table probe on a
    /// `u64`, and a constant-time compare of the key.
    fn lookup(&self, key: &[u8]) -> Option<&KeyEntry> {
        let h = self.hasher.hash_one(key);
        match self.entries.get(&h) {
            Some(list) => list.iter().find(|e| bool::from(e.key.as_ref().ct_eq(key))),
            None => {
                let _ = key.ct_eq(key);
                None
            }
        }
    }

    /// A consumer by id or username (for `anonymous`).
    pub fn consumer(&self, id_or_name: &str) -> Option<Arc<ConsumerInfo>> {
        self.by_id
            .get(id_or_name)
            .or_else(|| self.by_username.get(id_or_name))
            .cloned()
    }
}

/// Why key-auth refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Unknown,
    Duplicate,
    /// `anonymous` names a consumer that does not exist (a 500, as in Kong).
    AnonymousMissing(String),
}

impl Rejection {
    pub fn message(&self) -> String {
        match self {
            Rejection::Missing => "No API key found in request".into(),
            Rejection::Unknown => "No credentials found for given apikey".into(),
            Rejection::Duplicate => "Duplicate API key found".into(),
            Rejection::AnonymousMissing(a) => {
                format!("anonymous consumer {a} is configured but doesn't exist")
            }
        }
    }
}

/// The compiled key-auth plugin.
#[derive(Debug)]
pub struct KeyAuth {
    config: KeyAuthConfig,
    /// `key_names` as header names, parsed once (`None` where a name is not a valid header).
    header_names: Vec<Option<HeaderName>>,
    www_authenticate: HeaderValue,
    /// The snapshot's credentials, shared by every key-auth instance.
    keys: Arc<KeyTable>,
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer_token(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let (scheme, token) = s.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

enum Found<'a> {
    None,
    Duplicate,
    Key(std::borrow::Cow<'a, str>),
}

impl Plugin for KeyAuth {
    const NAME: &'static str = "key-auth";
    const PRIORITY: u32 = 1250;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/key-auth.schema.json");
    type Config = KeyAuthConfig;

    fn compile(config: KeyAuthConfig, env: &CompileEnv<'_>) -> Result<Self, String> {
        let keys = env.shared("key-auth.keys", || {
            KeyTable::compile(&env.snapshot.consumers, &env.snapshot.key_auths)
        });
        Ok(Self::new(config, keys))
    }

    fn reads_body(&self) -> bool {
        self.config.key_in_body
    }

    async fn access(&self, ctx: &mut Ctx, _env: &Env<'_>) -> Flow {
        if !(self.config.run_on_preflight || ctx.parts.method != http::Method::OPTIONS) {
            return Flow::Continue;
        }
        if ctx.logging {
            ctx.credential_headers
                .extend(self.header_names.iter().flatten().cloned());
            if self.config.key_in_bearer {
                ctx.credential_headers.push(http::header::AUTHORIZATION);
            }
        }
        let mut scratch = RequestBody::new(bytes::Bytes::new());
        let body = match &mut ctx.body {
            Payload::Buffered(b) => b,
            _ => &mut scratch,
        };
        if ctx.logging
            && let Found::Key(k) = self.find_key(&ctx.parts.headers, ctx.query.as_deref(), body)
            && !k.is_empty()
        {
            ctx.log_secrets.push(k.into_owned());
        }
        match self.run(&mut ctx.parts.headers, &mut ctx.query, body) {
            Ok(a) => {
                a.set_headers(&mut ctx.parts.headers);
                ctx.auth = Some(a);
                Flow::Continue
            }
            Err(r) => Flow::Respond(self.reject(&r, ctx.started)),
        }
    }
}

impl KeyAuth {
    pub fn new(config: KeyAuthConfig, keys: Arc<KeyTable>) -> Self {
        let www = match &config.realm {
            Some(r) => HeaderValue::from_str(&format!("Key realm=\"{r}\""))
                .unwrap_or(HeaderValue::from_static("Key")),
            None => HeaderValue::from_static("Key"),
        };
        let header_names = config
            .key_names
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        Self {
            config,
            header_names,
            www_authenticate: www,
            keys,
        }
    }

    /// Authenticates; with `hide_credentials` the key is removed on every outcome.
    pub fn run(
        &self,
        headers: &mut HeaderMap,
        query: &mut Option<String>,
        body: &mut RequestBody,
    ) -> Result<Authenticated, Rejection> {
        let outcome = self.identify(headers, query.as_deref(), body);
        if self.config.hide_credentials {
            self.hide(headers, query, body);
        }
        match outcome {
            Ok(a) => Ok(a),
            Err(r) => match &self.config.anonymous {
                Some(anon) => match self.keys.consumer(anon) {
                    Some(consumer) => Ok(Authenticated {
                        consumer,
                        credential_id: None,
                        anonymous: true,
                    }),
                    None => Err(Rejection::AnonymousMissing(anon.clone())),
                },
                None => Err(r),
            },
        }
    }

    fn identify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &mut RequestBody,
    ) -> Result<Authenticated, Rejection> {
        let key = match self.find_key(headers, query, body) {
            Found::None => return Err(Rejection::Missing),
            Found::Duplicate => return Err(Rejection::Duplicate),
            Found::Key(k) if k.is_empty() => return Err(Rejection::Missing),
            Found::Key(k) => k,
        };
        let e = self.keys.lookup(key.as_bytes()).ok_or(Rejection::Unknown)?;
        Ok(Authenticated {
            consumer: e.consumer.clone(),
            credential_id: e.credential_id.clone(),
            anonymous: false,
        })
    }

    /// Kong's answer to a refused request: 401 with `WWW-Authenticate`, or 500 when the
    /// `anonymous` consumer does not exist.
    fn reject(
        &self,
        r: &Rejection,
        started: std::time::Instant,
    ) -> http::Response<axum::body::Body> {
        if matches!(r, Rejection::AnonymousMissing(_)) {
            tracing::error!(message = %r.message(), "key-auth misconfiguration");
            return errors::gateway(StatusCode::INTERNAL_SERVER_ERROR, &r.message(), started);
        }
        let mut res = errors::gateway(StatusCode::UNAUTHORIZED, &r.message(), started);
        res.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            self.www_authenticate.clone(),
        );
        res
    }

    fn find_key<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        body: &mut RequestBody,
    ) -> Found<'a> {
        for (name, header) in self.config.key_names.iter().zip(&self.header_names) {
            if self.config.key_in_header
                && let Some(header) = header
            {
                let mut values = headers.get_all(header).iter();
                if let Some(v) = values.next() {
                    if values.next().is_some() {
                        return Found::Duplicate;
                    }
                    return Found::Key(String::from_utf8_lossy(v.as_bytes()));
                }
            }
            if self.config.key_in_query
                && let Some(q) = query
            {
                let mut hits =
                    url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == name.as_str());
                if let Some((_, v)) = hits.next() {
                    if hits.next().is_some() {
                        return Found::Duplicate;
                    }
                    return Found::Key(std::borrow::Cow::Owned(v.into_owned()));
                }
            }
            if self.config.key_in_body
                && let Some(v) = body.field(headers, name)
            {
                return match v {
                    Value::String(s) => Found::Key(std::borrow::Cow::Owned(s)),
                    Value::Array(_) => Found::Duplicate,
                    _ => Found::None,
                };
            }
        }
        if self.config.key_in_bearer {
            let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return Found::Duplicate;
                }
                if let Some(token) = bearer_token(v) {
                    return Found::Key(std::borrow::Cow::Owned(token.to_owned()));
                }
            }
        }
        Found::None
    }

    fn hide(&self, headers: &mut HeaderMap, query: &mut Option<String>, body: &mut RequestBody) {
        if self.config.key_in_bearer
            && headers
                .get(http::header::AUTHORIZATION)
                .and_then(bearer_token)
                .is_some()
        {
            headers.remove(http::header::AUTHORIZATION);
        }
        for (name, header) in self.config.key_names.iter().zip(&self.header_names) {
            if self.config.key_in_header
                && let Some(header) = header
            {
                headers.remove(header);
            }
            if self.config.key_in_query
                && let Some(q) = query.as_deref()
                && url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == name.as_str())
            {
                let kept: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != name.as_str())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                *query = (!kept.is_empty()).then(|| {
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(kept)
                        .finish()
                });
            }
            if self.config.key_in_body {
                body.remove_field(headers, name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> KeyTable {
        let c: Consumer =
            serde_json::from_value(serde_json::json!({"id": "c1", "username": "app"})).unwrap();
        let k: KeyAuthCredential = serde_json::from_value(
            serde_json::json!({"id": "k1", "consumer": {"id": "c1"}, "key": "secret-key"}),
        )
        .unwrap();
        let expired: KeyAuthCredential = serde_json::from_value(
            serde_json::json!({"id": "k2", "consumer": {"id": "c1"}, "key": "old", "ttl": 0}),
        )
        .unwrap();
        KeyTable::compile(&[c], &[k, expired])
    }

    #[test]
    fn lookup_finds_exact_keys_only() {
        let t = table();
        assert_eq!(
            t.lookup(b"secret-key").map(|e| e.consumer.id.as_str()),
            Some("c1")
        );
        for miss in [&b"secret-kez"[..], b"secret-key ", b"", b"old"] {
            assert!(t.lookup(miss).is_none(), "{miss:?}");
        }
    }

    #[test]
    fn anonymous_resolves_by_id_or_username() {
        let t = table();
        assert!(t.consumer("c1").is_some());
        assert!(t.consumer("app").is_some());
        assert!(t.consumer("nobody").is_none());
    }

    #[test]
    fn keys_are_read_in_key_names_order_header_before_query() {
        let ka = KeyAuth::new(
            KeyAuthConfig {
                key_names: vec!["x-key".into(), "apikey".into()],
                ..Default::default()
            },
            Arc::new(table()),
        );
        let mut h = HeaderMap::new();
        h.insert("apikey", HeaderValue::from_static("secret-key"));
        let mut q = Some("x-key=wrong".to_owned());
        let mut body = RequestBody::new(bytes::Bytes::new());
        assert_eq!(
            ka.run(&mut h, &mut q, &mut body).unwrap_err(),
            Rejection::Unknown
        );
        assert!(q.is_none(), "hide_credentials removed the query key");
        assert!(h.get("apikey").is_none());
    }

    #[test]
    fn duplicate_form_body_keys_are_rejected() {
        let ka = KeyAuth::new(
            KeyAuthConfig {
                key_in_body: true,
                ..Default::default()
            },
            Arc::new(table()),
        );
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let mut body = RequestBody::new(bytes::Bytes::from_static(b"apikey=a&apikey=b&x=1"));
        assert_eq!(
            ka.run(&mut h, &mut None, &mut body).unwrap_err(),
            Rejection::Duplicate
        );
        assert_eq!(&body.into_bytes()[..], b"x=1");
    }
}
