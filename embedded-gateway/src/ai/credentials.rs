//! Owns the credentials a provider mints per request: [`BearerSource`] (a Google service
//! account for Vertex, Microsoft Entra ID for Azure) behind one cached `Authorization: Bearer`.

use super::AiError;
use super::providers::{azure, vertex};

/// Where a minted `Authorization: Bearer` comes from, for providers that need one.
#[derive(Debug)]
pub enum BearerSource {
    /// Vertex AI with a Google service account.
    Gcp(vertex::TokenSource),
    /// Azure OpenAI with Microsoft Entra ID.
    Azure(azure::EntraToken),
}

impl BearerSource {
    /// The source a target's `auth` asks for: `Some(Err)` says why it cannot be built.
    pub fn from_auth(auth: &crate::ai::config::Auth) -> Option<Result<Self, String>> {
        if let Some(g) = vertex::TokenSource::from_auth(auth) {
            return Some(g.map(Self::Gcp));
        }
        azure::EntraToken::from_auth(auth).map(|a| Ok(Self::Azure(a)))
    }

    pub async fn bearer(&self, client: &reqwest::Client) -> Result<http::HeaderValue, AiError> {
        match self {
            Self::Gcp(g) => g.bearer(client).await,
            Self::Azure(a) => a.bearer(client).await,
        }
    }
}
