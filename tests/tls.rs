//! The TLS flags through the real binary against a real HTTPS admin endpoint: a TLS
//! terminator (rustls, certificates made with rcgen) in front of a real `gantry serve` admin
//! API, with and without client-certificate authentication.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::util::{Gateway, Workspace};

/// A CA and certificates it signs, as PEM and DER.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gantry test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { ca }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// Terminates TLS on a loopback port and forwards the bytes to `backend`; runs until the test
/// process ends.
fn tls_front(
    server: &Leaf,
    client_ca: Option<CertificateDer<'static>>,
    backend: SocketAddr,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![server.cert_der.clone()], server.key_der.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut back) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                });
            }
        });
    });
    addr
}

fn admin_addr(gw: &Gateway) -> SocketAddr {
    gw.admin_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

fn ping(ws: &Workspace, url: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["ping", "--kong-addr", url, "--timeout", "5"];
    args.extend(extra);
    ws.run(&args)
}

#[track_caller]
fn connected(run: &crate::util::Run) {
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(
        run.stdout.starts_with("Successfully connected to Kong!"),
        "{}",
        run.stdout
    );
}

#[track_caller]
fn refused(run: &crate::util::Run, needle: &str) {
    assert_eq!(run.code, 1, "stdout:\n{}", run.stdout);
    assert!(
        run.stderr.contains(needle),
        "wanted {needle:?} in:\n{}",
        run.stderr
    );
}

#[test]
fn ca_certificates_and_skip_verify_against_an_https_admin_api() {
    let gw = Gateway::start(None);
    let pki = Pki::new();
    let server = pki.leaf(&["localhost", "127.0.0.1"]);
    let front = tls_front(&server, None, admin_addr(&gw));
    let url = format!("https://{front}");
    let ws = Workspace::new();
    let ca_file = ws.write("ca.pem", &pki.ca_pem());
    let ca_file = ca_file.to_str().unwrap();

    // The test CA is unknown to the system: refused, naming the certificate problem.
    refused(&ping(&ws, &url, &[]), "certificate");
    connected(&ping(&ws, &url, &["--ca-cert-file", ca_file]));
    connected(&ping(&ws, &url, &["--ca-cert", &pki.ca_pem()]));
    connected(&ping(&ws, &url, &["--tls-skip-verify"]));
    // The same through decK's variables.
    connected(&ping(
        &Workspace::new().env("DECK_CA_CERT_FILE", ca_file),
        &url,
        &[],
    ));
    connected(&ping(
        &Workspace::new().env("DECK_TLS_SKIP_VERIFY", "true"),
        &url,
        &[],
    ));
    // --ca-cert wins over --ca-cert-file (decK's rule): a bad inline PEM is used and rejected.
    refused(
        &ping(
            &ws,
            &url,
            &["--ca-cert", "not a pem", "--ca-cert-file", ca_file],
        ),
        "--ca-cert: not a valid PEM certificate",
    );
    let missing = ping(&ws, &url, &["--ca-cert-file", "/nonexistent/ca.pem"]);
    refused(
        &missing,
        "cannot read --ca-cert-file file '/nonexistent/ca.pem'",
    );

    // The reconciling commands use the same client: a sync over HTTPS lands.
    let ws = ws
        .env("DECK_KONG_ADDR", &url)
        .env("DECK_CA_CERT_FILE", ca_file);
    ws.write(
        "kong.yaml",
        "_format_version: \"3.0\"\nservices:\n  - name: over-tls\n    url: http://example.com\n",
    );
    ws.run(&["sync", "kong.yaml"]).assert_ok();
    assert_eq!(gw.get("/services")["data"][0]["name"], "over-tls");
}

#[test]
fn tls_server_name_verifies_against_the_given_name() {
    let gw = Gateway::start(None);
    let pki = Pki::new();
    // The certificate names only a DNS name, not the address we connect to.
    let server = pki.leaf(&["admin.gantry.test"]);
    let front = tls_front(&server, None, admin_addr(&gw));
    let url = format!("https://{front}");
    let ws = Workspace::new();
    let ca = ws.write("ca.pem", &pki.ca_pem());
    let ca = ca.to_str().unwrap();
    refused(&ping(&ws, &url, &["--ca-cert-file", ca]), "certificate");
    connected(&ping(
        &ws,
        &url,
        &[
            "--ca-cert-file",
            ca,
            "--tls-server-name",
            "admin.gantry.test",
        ],
    ));
    refused(
        &ping(
            &ws,
            &url,
            &[
                "--ca-cert-file",
                ca,
                "--tls-server-name",
                "other.gantry.test",
            ],
        ),
        "certificate",
    );
    connected(&ping(
        &Workspace::new().env("DECK_TLS_SERVER_NAME", "admin.gantry.test"),
        &url,
        &["--ca-cert-file", ca],
    ));
}

#[test]
fn client_certificates_for_mutual_tls() {
    let gw = Gateway::start(None);
    let pki = Pki::new();
    let server = pki.leaf(&["127.0.0.1"]);
    let client = pki.leaf(&["gantry-client"]);
    let front = tls_front(&server, Some(pki.ca_der()), admin_addr(&gw));
    let url = format!("https://{front}");
    let ws = Workspace::new();
    let ca = ws.write("ca.pem", &pki.ca_pem());
    let cert = ws.write("client.pem", &client.cert_pem);
    let key = ws.write("client-key.pem", &client.key_pem);
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );

    // Without a client certificate the server ends the handshake.
    let run = ping(&ws, &url, &["--ca-cert-file", ca]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    connected(&ping(
        &ws,
        &url,
        &[
            "--ca-cert-file",
            ca,
            "--tls-client-cert-file",
            cert,
            "--tls-client-key-file",
            key,
        ],
    ));
    connected(&ping(
        &ws,
        &url,
        &[
            "--ca-cert-file",
            ca,
            "--tls-client-cert",
            &client.cert_pem,
            "--tls-client-key",
            &client.key_pem,
        ],
    ));
    connected(&ping(
        &Workspace::new()
            .env("DECK_TLS_CLIENT_CERT_FILE", cert)
            .env("DECK_TLS_CLIENT_KEY_FILE", key),
        &url,
        &["--ca-cert-file", ca],
    ));
    // decK's pairing rule.
    refused(
        &ping(
            &ws,
            &url,
            &["--ca-cert-file", ca, "--tls-client-cert-file", cert],
        ),
        "--tls-client-cert and --tls-client-key / --tls-client-cert-file and --tls-client-key-file must be used in conjunction but only one was provided",
    );
    // The key never shows in --help, even when set in the environment.
    let help = Workspace::new()
        .env("DECK_TLS_CLIENT_KEY", &client.key_pem)
        .run(&["ping", "--help"]);
    assert!(!help.stdout.contains("PRIVATE KEY"), "{}", help.stdout);
}
