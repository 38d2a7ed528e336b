//! Owns Vertex AI service-account auth (`auth.gcp_use_service_account`): the service-account
//! JSON (`auth.gcp_service_account_json`, else the `GCP_SERVICE_ACCOUNT` environment
//! variable) signs an RS256 JWT that is exchanged at its `token_uri` for an OAuth access
//! token (RFC 7523), cached until shortly before it expires and sent as `Authorization: Bearer`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::ai::AiError;
use crate::ai::config::Auth;

/// The scope Vertex AI accepts.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A cached token is replaced this long before Google says it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Issues and caches access tokens for one service account.
pub struct TokenSource {
    client_email: String,
    token_uri: String,
    key: KeyPair,
    cached: tokio::sync::Mutex<Option<(HeaderValue, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn auth_error(message: String) -> AiError {
    AiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "gcp_auth_failed",
        message,
    )
}

impl TokenSource {
    /// `None` unless `gcp_use_service_account` is set; `Some(Err)` says what is wrong with the
    /// service-account JSON (never quoting it).
    pub fn from_auth(auth: &Auth) -> Option<Result<Self, String>> {
        if !auth.gcp_use_service_account {
            return None;
        }
        let json = auth
            .gcp_service_account_json
            .clone()
            .or_else(|| std::env::var("GCP_SERVICE_ACCOUNT").ok());
        Some(match json {
            Some(j) => Self::from_json(&j),
            None => Err("gcp_use_service_account needs auth.gcp_service_account_json or the GCP_SERVICE_ACCOUNT environment variable".into()),
        })
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|_| "the GCP service account is not valid JSON".to_owned())?;
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        let client_email = field("client_email")
            .ok_or("the GCP service account has no client_email")?
            .to_owned();
        let pem = field("private_key").ok_or("the GCP service account has no private_key")?;
        let key = KeyPair::from_pkcs8(&pem_der(pem)?).map_err(|_| {
            "the GCP service account private_key is not an RSA PKCS#8 key".to_owned()
        })?;
        Ok(Self {
            client_email,
            token_uri: field("token_uri").unwrap_or(DEFAULT_TOKEN_URI).to_owned(),
            key,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// Sends the token exchange to `base` + `/token` instead of the account's `token_uri`
    /// (`serve --upstream-override gcp_oauth=URL`, used by `quickstart --mock-llm`).
    pub fn redirect_token_exchange(&mut self, base: &str) {
        self.token_uri = format!("{}/token", base.trim_end_matches('/'));
    }

    /// The signed JWT assertion for `now` (seconds since the epoch).
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
                            "iat": now, "exp": now + 3600});
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "the JWT could not be signed".to_owned())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// `Bearer <token>`, from the cache or a fresh exchange.
    pub async fn bearer(&self, client: &reqwest::Client) -> Result<HeaderValue, AiError> {
        let mut cached = self.cached.lock().await;
        if let Some((v, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(v.clone());
        }
        let (token, lifetime) = self.exchange(client).await?;
        let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| auth_error("Google returned an unusable access token".into()))?;
        v.set_sensitive(true);
        let until = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN);
        *cached = Some((v.clone(), until));
        Ok(v)
    }

    async fn exchange(&self, client: &reqwest::Client) -> Result<(String, Duration), AiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.assertion(now).map_err(auth_error)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let send = client
            .post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send();
        let failed =
            |why: String| auth_error(format!("could not obtain a Google access token: {why}"));
        let res = match tokio::time::timeout(TOKEN_TIMEOUT, send).await {
            Err(_) => return Err(failed("the token endpoint did not answer in time".into())),
            Ok(Err(e)) => return Err(failed(e.without_url().to_string())),
            Ok(Ok(r)) => r,
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            let reason = body.get("error").and_then(Value::as_str).unwrap_or("error");
            return Err(failed(format!("HTTP {} ({reason})", status.as_u16())));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| failed("the answer has no access_token".into()))?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        Ok((token.to_owned(), Duration::from_secs(lifetime)))
    }
}

/// The DER bytes of a PEM block (`-----BEGIN PRIVATE KEY-----` …).
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| "the GCP service account private_key is not PEM".to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    /// A throwaway service account with a freshly generated key (no key is stored anywhere).
    pub fn service_account_json(token_uri: &str) -> (String, Vec<u8>) {
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let public = aws_lc_rs::signature::KeyPair::public_key(&key)
            .as_ref()
            .to_vec();
        let json = json!({"type": "service_account", "project_id": "my-proj",
            "client_email": "gantry@my-proj.iam.gserviceaccount.com", "private_key": pem,
            "token_uri": token_uri});
        (json.to_string(), public)
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_google_can_verify() {
        let (json, public) = service_account_json("https://oauth2.googleapis.com/token");
        let ts = TokenSource::from_json(&json).unwrap();
        let jwt = ts.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "gantry@my-proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("signature verifies");
        assert!(!format!("{ts:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_broken_service_account_says_what_is_wrong_without_quoting_it() {
        let err =
            TokenSource::from_json("{\"client_email\":\"a@b\",\"private_key\":\"not a key\"}")
                .unwrap_err();
        assert!(err.contains("private_key"), "{err}");
        assert!(!err.contains("not a key"));
        assert!(
            TokenSource::from_json("nope")
                .unwrap_err()
                .contains("not valid JSON")
        );
        let auth = Auth {
            gcp_use_service_account: false,
            ..Default::default()
        };
        assert!(TokenSource::from_auth(&auth).is_none());
    }
}
