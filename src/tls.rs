//! Owns the admin client's TLS options (decK's `--tls-skip-verify`, `--tls-server-name`,
//! `--ca-cert[-file]`, `--tls-client-cert[-file]`, `--tls-client-key[-file]`): reading the PEMs
//! and configuring the reqwest client with them.

use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};

use crate::cli::TlsArgs;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} file '{path}': {reason}")]
    Read {
        flag: &'static str,
        path: String,
        reason: String,
    },
    #[error("{flag}: not a valid PEM certificate: {reason}")]
    Certificate { flag: &'static str, reason: String },
    #[error(
        "--tls-client-cert and --tls-client-key / --tls-client-cert-file and --tls-client-key-file must be used in conjunction but only one was provided"
    )]
    Unpaired,
    #[error("client certificate and key: not a valid PEM pair: {0}")]
    Identity(String),
    #[error("--tls-server-name: cannot resolve the admin address host '{host}': {reason}")]
    Resolve { host: String, reason: String },
}

/// The TLS settings as given (PEM text inline or as files).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub skip_verify: bool,
    pub server_name: Option<String>,
    ca: Pem,
    client_cert: Pem,
    client_key: Pem,
}

/// A PEM given inline (wins) or as a file.
#[derive(Debug, Clone, Default)]
struct Pem {
    inline: Option<String>,
    file: Option<PathBuf>,
}

impl Pem {
    fn given(&self) -> bool {
        self.inline.as_deref().is_some_and(|s| !s.is_empty()) || self.file.is_some()
    }

    fn read(&self, flag: &'static str) -> Result<Option<Vec<u8>>, TlsError> {
        if let Some(text) = self.inline.as_deref().filter(|s| !s.is_empty()) {
            return Ok(Some(text.as_bytes().to_vec()));
        }
        match &self.file {
            None => Ok(None),
            Some(path) => read_file(flag, path).map(Some),
        }
    }
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        flag,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl TlsOptions {
    pub fn from_args(args: &TlsArgs) -> Self {
        Self {
            skip_verify: args.tls_skip_verify,
            server_name: args.tls_server_name.clone().filter(|s| !s.is_empty()),
            ca: Pem {
                inline: args.ca_cert.clone(),
                file: args.ca_cert_file.clone(),
            },
            client_cert: Pem {
                inline: args.tls_client_cert.clone(),
                file: args.tls_client_cert_file.clone(),
            },
            client_key: Pem {
                inline: args.tls_client_key.clone(),
                file: args.tls_client_key_file.clone(),
            },
        }
    }

    /// Applies the options to a client builder. With `--tls-server-name` on an `https` address,
    /// returns the base URL to use instead: the server name as host, resolved to the address's
    /// own IPs, so that both SNI and certificate verification use that name.
    pub fn configure(
        &self,
        mut builder: reqwest::ClientBuilder,
        addr: &url::Url,
    ) -> Result<(reqwest::ClientBuilder, Option<String>), TlsError> {
        if self.client_cert.given() != self.client_key.given() {
            return Err(TlsError::Unpaired);
        }
        if self.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = self.ca.read("--ca-cert-file")? {
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TlsError::Certificate {
                    flag: "--ca-cert",
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::Certificate {
                    flag: "--ca-cert",
                    reason: "no certificate found".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (
            self.client_cert.read("--tls-client-cert-file")?,
            self.client_key.read("--tls-client-key-file")?,
        ) {
            let mut pem = key;
            pem.push(b'\n');
            pem.extend(cert);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| TlsError::Identity(e.to_string()))?;
            builder = builder.identity(identity);
        }
        let mut rewritten = None;
        if let Some(name) = &self.server_name
            && addr.scheme() == "https"
        {
            let host = addr.host_str().unwrap_or_default().to_owned();
            let port = addr.port_or_known_default().unwrap_or(443);
            let ips: Vec<_> = (host.trim_matches(['[', ']']), port)
                .to_socket_addrs()
                .map_err(|e| TlsError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            builder = builder.resolve_to_addrs(name, &ips);
            let mut url = addr.clone();
            url.set_host(Some(name)).map_err(|e| TlsError::Resolve {
                host: name.clone(),
                reason: e.to_string(),
            })?;
            rewritten = Some(url.to_string());
        }
        Ok((builder, rewritten))
    }
}
