//! Owns ai-proxy-advanced's targets compiled once per config: provider kind and endpoint
//! (resolved to a fixed plain-http endpoint when it never changes), credentials (header, query
//! or body parameter, minted bearer tokens, SigV4 signing), and the secrets to scrub from
//! anything a provider sends back.

use std::collections::HashMap;

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

use super::AiError;
use super::config::{ModelOptions, ParamLocation, Provider, Target};
use super::credentials::BearerSource;
use super::providers::ProviderKind;
use super::providers::bedrock::Signer;
use super::scrub::Secrets;
use crate::upstream::PlainEndpoint;

/// One target, with everything a request needs precomputed.
#[derive(Debug)]
pub(super) struct CompiledTarget {
    pub(super) kind: ProviderKind,
    pub(super) provider: &'static str,
    pub(super) model_name: Option<String>,
    /// `X-Kong-LLM-Model` for a configured model name.
    pub(super) model_header: Option<HeaderValue>,
    /// The provider endpoint, or why this target's config cannot name one.
    pub(super) url: Result<url::Url, String>,
    /// The endpoint resolved once, when it is plain `http` and the same for every request
    /// (no model in the path, no query credential, no request signing).
    pub(super) plain: Option<PlainEndpoint>,
    pub(super) options: ModelOptions,
    /// SigV4 signing (Bedrock).
    pub(super) signer: Option<Signer>,
    /// Minted access tokens (Vertex service account, Azure Entra ID).
    pub(super) tokens: Option<BearerSource>,
    pub(super) auth_header: Option<(HeaderName, HeaderValue)>,
    pub(super) auth_param: Option<(String, String, ParamLocation)>,
    pub(super) allow_override: bool,
    /// Secret strings scrubbed from any provider text passed downstream (hardening: whole,
    /// fragments and masked echoes; `ai/scrub.rs`).
    pub(super) secrets: Secrets,
    /// `logging.log_statistics`.
    pub(super) log_statistics: bool,
    /// `logging.log_payloads`.
    pub(super) log_payloads: bool,
}

impl CompiledTarget {
    /// Where one request goes, or the 500 for a target that cannot be used.
    /// `(input_cost, output_cost)` per million tokens, when both are configured.
    pub(super) fn cost(&self) -> Option<(f64, f64)> {
        self.options.input_cost.zip(self.options.output_cost)
    }

    pub(super) fn endpoint(&self, model: &str, stream: bool) -> Result<Endpoint<'_>, AiError> {
        match (&self.url, &self.plain) {
            (Ok(_), Some(ep)) => Ok(Endpoint::Plain(ep)),
            (Ok(u), None) => Ok(Endpoint::Url(self.kind.request_url(u, model, stream))),
            (Err(why), _) => Err(AiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "provider_misconfigured",
                why.clone(),
            )),
        }
    }
}

/// Where one request goes.
pub(super) enum Endpoint<'t> {
    /// The target's fixed plain-http endpoint.
    Plain(&'t PlainEndpoint),
    /// A URL built for this request.
    Url(url::Url),
}

pub(super) fn compile_target(t: &Target, overrides: &HashMap<String, String>) -> CompiledTarget {
    let kind = ProviderKind::for_target(t.model.provider, &t.model.options);
    let provider = t.model.provider.as_str();
    let mut url = kind.endpoint(
        &t.model.options,
        overrides.get(provider).map(String::as_str),
    );
    let tokens = match BearerSource::from_auth(&t.auth) {
        Some(Ok(mut ts)) => {
            if let (BearerSource::Gcp(g), Some(base)) = (
                &mut ts,
                overrides.get(crate::ai::providers::GCP_OAUTH_OVERRIDE),
            ) {
                g.redirect_token_exchange(base);
            }
            Some(ts)
        }
        Some(Err(why)) => {
            url = Err(why);
            None
        }
        None => None,
    };
    let signer =
        (t.model.provider == Provider::Bedrock).then(|| Signer::new(&t.auth, &t.model.options));
    let a = &t.auth;
    let auth_header = match (&a.header_name, &a.header_value) {
        (Some(n), Some(v)) => match (
            HeaderName::try_from(n.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                Some((n, v))
            }
            _ => None,
        },
        _ => None,
    };
    let auth_param = match (&a.param_name, &a.param_value, a.param_location) {
        (Some(n), Some(v), Some(l)) => Some((n.clone(), v.clone(), l)),
        _ => None,
    };
    let mut secrets = Vec::new();
    if let Some(v) = &a.header_value {
        secrets.push(v.clone());
        if let Some(token) = v.strip_prefix("Bearer ") {
            secrets.push(token.to_owned());
        }
    }
    if let Some(v) = &a.param_value {
        secrets.push(v.clone());
    }
    secrets.extend(a.aws_secret_access_key.iter().cloned());
    secrets.extend(a.azure_client_secret.iter().cloned());
    let secrets = Secrets::new(secrets); // hardening
    let fixed_url = url.as_ref().ok().filter(|u| {
        kind.request_url(u, "a", false) == kind.request_url(u, "b", true)
            && signer.is_none()
            && !matches!(auth_param, Some((_, _, ParamLocation::Query)))
    });
    CompiledTarget {
        kind,
        provider,
        plain: fixed_url.and_then(PlainEndpoint::new),
        model_header: t
            .model
            .name
            .as_ref()
            .and_then(|n| HeaderValue::from_str(&format!("{provider}/{n}")).ok()),
        model_name: t.model.name.clone(),
        url,
        options: t.model.options.clone(),
        signer,
        tokens,
        auth_header,
        auth_param,
        allow_override: a.allow_override,
        secrets,
        log_statistics: t.logging.log_statistics,
        log_payloads: t.logging.log_payloads,
    }
}
