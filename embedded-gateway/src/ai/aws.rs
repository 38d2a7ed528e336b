//! Owns AWS request signing: SigV4 for any service, and Bedrock's `aws_assume_role_arn` (an STS
//! `AssumeRole` call signed with the base credentials at `aws_sts_endpoint_url` or the region's
//! STS endpoint; the role's temporary credentials are cached until shortly before they expire).

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::ai::AiError;
use crate::ai::config::ModelOptions;

/// Requested lifetime of the role session.
const SESSION_SECONDS: u64 = 3600;
/// Cached credentials are replaced this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// One role to assume, with its cached session.
pub struct AssumeRole {
    role_arn: String,
    session_name: String,
    endpoint: String,
    region: String,
    cached: tokio::sync::Mutex<Option<(Credentials, Instant)>>,
}

impl std::fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn sts_error(why: String) -> AiError {
    AiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "aws_assume_role_failed",
        format!("the bedrock role could not be assumed: {why}"),
    )
}

impl AssumeRole {
    /// `None` unless `bedrock.aws_assume_role_arn` is set.
    pub fn from_options(o: &ModelOptions, region: Option<&str>) -> Option<Self> {
        let b = o.bedrock.as_ref()?;
        let role_arn = b.aws_assume_role_arn.clone()?;
        let region = region.unwrap_or("us-east-1").to_owned();
        Some(Self {
            role_arn,
            session_name: b
                .aws_role_session_name
                .clone()
                .unwrap_or_else(|| "gantry".to_owned()),
            endpoint: b
                .aws_sts_endpoint_url
                .clone()
                .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/")),
            region,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The role's credentials, from the cache or a fresh `AssumeRole` signed with `base`.
    pub async fn credentials(
        &self,
        client: &reqwest::Client,
        base: &Credentials,
    ) -> Result<Credentials, AiError> {
        let mut cached = self.cached.lock().await;
        if let Some((c, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(c.clone());
        }
        let creds = self.assume(client, base).await?;
        let until = Instant::now() + Duration::from_secs(SESSION_SECONDS) - REFRESH_MARGIN;
        *cached = Some((creds.clone(), until));
        Ok(creds)
    }

    async fn assume(
        &self,
        client: &reqwest::Client,
        base: &Credentials,
    ) -> Result<Credentials, AiError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", &self.session_name)
            .append_pair("DurationSeconds", &SESSION_SECONDS.to_string())
            .finish();
        let url = url::Url::parse(&self.endpoint)
            .map_err(|_| sts_error("aws_sts_endpoint_url is not a URL".into()))?;
        let mut req = reqwest::Request::new(reqwest::Method::POST, url);
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        sign_request(
            &mut req,
            form.as_bytes(),
            base,
            &self.region,
            "sts",
            SystemTime::now(),
        )?;
        *req.body_mut() = Some(form.into());
        let res = match tokio::time::timeout(STS_TIMEOUT, client.execute(req)).await {
            Err(_) => return Err(sts_error("STS did not answer in time".into())),
            Ok(Err(e)) => return Err(sts_error(e.without_url().to_string())),
            Ok(Ok(r)) => r,
        };
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            let code = tag(&text, "Code").unwrap_or("error");
            return Err(sts_error(format!(
                "STS answered HTTP {} ({code})",
                status.as_u16()
            )));
        }
        parse_credentials(&text).ok_or_else(|| sts_error("STS sent no credentials".into()))
    }
}

/// The text of the first `<name>…</name>` element.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].trim())
}

/// `AssumeRoleResponse/AssumeRoleResult/Credentials` → credentials.
pub fn parse_credentials(xml: &str) -> Option<Credentials> {
    let c = tag(xml, "Credentials")?;
    Some(Credentials::new(
        tag(c, "AccessKeyId")?,
        tag(c, "SecretAccessKey")?,
        tag(c, "SessionToken").map(str::to_owned),
        None,
        "sts-assume-role",
    ))
}

pub(crate) fn signing_error(why: &str) -> AiError {
    AiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "signing_failed",
        format!("the bedrock request could not be signed: {why}"),
    )
}

/// SigV4-signs `req` (host and content type signed) for `service` in `region` at `time`.
pub fn sign_request(
    req: &mut reqwest::Request,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), AiError> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| signing_error("invalid signing parameters"))?
        .into();
    let url = req.url().clone();
    let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let headers = [("host", host), ("content-type", content_type.as_str())];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| signing_error("the request URL cannot be signed"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| signing_error("signature computation failed"))?
        .into_parts();
    for (name, value) in instructions.headers() {
        let (Ok(n), Ok(mut v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) else {
            return Err(signing_error("invalid signature header"));
        };
        v.set_sensitive(true);
        req.headers_mut().insert(n, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><AssumedRoleId>AROA3XFRBF535PLBIFPI4:gantry</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock/gantry</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>IQoJb3JpZ2luX2VjEXAMPLE</SessionToken>
      <Expiration>2026-11-25T13:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn the_assume_role_answer_yields_temporary_credentials() {
        let c = parse_credentials(RESPONSE).unwrap();
        assert_eq!(c.access_key_id(), "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(c.session_token(), Some("IQoJb3JpZ2luX2VjEXAMPLE"));
        assert!(parse_credentials("<Error><Code>AccessDenied</Code></Error>").is_none());
    }

    #[test]
    fn the_sts_endpoint_defaults_to_the_region_and_the_session_name_to_gantry() {
        let o: ModelOptions = serde_json::from_value(serde_json::json!({"bedrock": {
            "aws_region": "eu-west-1", "aws_assume_role_arn": "arn:aws:iam::123456789012:role/bedrock"}}))
        .unwrap();
        let r = AssumeRole::from_options(&o, Some("eu-west-1")).unwrap();
        assert_eq!(r.endpoint, "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(r.session_name, "gantry");
        assert!(AssumeRole::from_options(&ModelOptions::default(), None).is_none());
    }
}
