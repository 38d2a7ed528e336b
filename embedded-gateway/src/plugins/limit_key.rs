//! Owns the identifier a rate limit counts by (Kong's `limit_by` / `identifier`): the
//! consumer, the credential, the client IP, the service, a header's value or the request path;
//! any that is missing for a request falls back to the client IP, as in Kong. Shared by
//! rate-limiting and ai-rate-limiting-advanced.

use http::HeaderName;

use crate::context::Ctx;

/// What to count by.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    Consumer,
    Credential,
    Ip,
    Service,
    Header(Option<&'a HeaderName>),
    Path(Option<&'a str>),
}

/// The counter identifier of `ctx`'s request.
pub fn identifier(by: By<'_>, ctx: &Ctx) -> String {
    let ip = || format!("ip:{}", ctx.remote.ip());
    match by {
        By::Consumer => ctx
            .auth
            .as_ref()
            .map(|a| format!("consumer:{}", a.consumer.id))
            .unwrap_or_else(ip),
        By::Credential => ctx
            .auth
            .as_ref()
            .and_then(|a| a.credential_id.as_ref())
            .and_then(|c| c.to_str().ok())
            .map(|c| format!("credential:{c}"))
            .unwrap_or_else(ip),
        By::Ip => ip(),
        By::Service => ctx
            .route
            .service_id
            .as_ref()
            .map(|s| format!("service:{s}"))
            .unwrap_or_else(ip),
        By::Header(name) => name
            .and_then(|h| ctx.parts.headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(|v| format!("header:{v}"))
            .unwrap_or_else(ip),
        By::Path(path) => match path {
            Some(p) if ctx.parts.uri.path() == p => format!("path:{p}"),
            _ => ip(),
        },
    }
}
