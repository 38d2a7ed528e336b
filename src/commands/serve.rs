//! Owns `gantry serve`: turns flags into a [`GatewayConfig`], binds, prints one ready line per
//! listener (`gantry: proxy listening on ADDR`), and runs until SIGINT/SIGTERM, then drains.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use embedded_gateway::GatewayConfig;
use embedded_gateway::proxy::{BodyTimeouts, ProxyOptions};
use embedded_gateway::snapshot::ConfigSnapshot;

use crate::cli::ServeArgs;
use std::io::IsTerminal as _;

use crate::exit::ExitStatus;
use crate::paths;

pub fn run(args: ServeArgs) -> anyhow::Result<ExitStatus> {
    init_tracing();
    let config = gateway_config(&args)?;
    // The admin API and one proxy worker share this single-threaded runtime; the other proxy
    // workers get one each (`GatewayConfig::proxy_workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitStatus::Success)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal: quickstart's log file (and any redirect) gets plain text.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Builds the gateway's settings from the flags.
pub fn gateway_config(args: &ServeArgs) -> anyhow::Result<GatewayConfig> {
    let data_dir = paths::data_dir(args.data_dir.clone())?;
    let mut config = GatewayConfig::new(data_dir);
    config.proxy_listen = parse_listen("--proxy-listen", &args.proxy_listen)?;
    config.admin_listen = parse_listen("--admin-listen", &args.admin_listen)?;
    config.analytics_retention = match args.analytics_retention.trim() {
        "0" => None,
        raw => Some(
            embedded_gateway::analytics::parse_duration(raw)
                .map_err(|e| anyhow::anyhow!("--analytics-retention: {e}"))?,
        ),
    };
    config.status_listen = args
        .status_listen
        .as_deref()
        .map(|raw| parse_listen("--status-listen", raw))
        .transpose()?;
    config.control_plane = args.control_plane.clone();
    config.store_url = parse_store(args.store.as_deref())?;
    if let Some(poll) = args.store_poll {
        anyhow::ensure!(
            poll >= std::time::Duration::from_millis(50),
            "invalid --store-poll: at least 50ms"
        );
        config.store_poll = Some(poll);
    }
    config.admin_token = args.admin_token.clone().filter(|t| !t.is_empty());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    config.proxy_workers = args.workers.unwrap_or(cores).max(1) - 1;
    config.proxy_options = ProxyOptions {
        upstream_overrides: parse_overrides(&args.upstream_override)?,
        client_body: BodyTimeouts {
            idle: parse_duration("--client-body-timeout", &args.client_body_timeout)?,
            min_rate: args.client_body_min_rate,
        },
        ..ProxyOptions::default()
    };
    if !args.config.is_empty() {
        config.dbless = Some(load_dbless(&args.config)?);
    }
    Ok(config)
}

/// `60`, `60s` or `500ms` → a duration.
pub fn parse_duration(flag: &str, raw: &str) -> anyhow::Result<Duration> {
    let invalid = || {
        anyhow::anyhow!(
            "invalid {flag} '{raw}': expected seconds or a number with ms/s, like 60s or 500ms"
        )
    };
    let (digits, scale) = if let Some(ms) = raw.strip_suffix("ms") {
        (ms, 1)
    } else {
        (raw.strip_suffix('s').unwrap_or(raw), 1000)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    n.checked_mul(scale)
        .map(Duration::from_millis)
        .ok_or_else(invalid)
}

/// `--store`: a PostgreSQL URL, or empty / `sqlite` for the default SQLite store.
fn parse_store(raw: Option<&str>) -> anyhow::Result<Option<String>> {
    match raw.map(str::trim) {
        None | Some("") | Some("sqlite") => Ok(None),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Some(url.to_owned()))
        }
        Some(other) => anyhow::bail!(
            "invalid --store '{}': expected postgres://USER@HOST:PORT/DB (SQLite under --data-dir is the default)",
            embedded_gateway::store::postgres::redact_url(other)
        ),
    }
}

/// `127.0.0.1:8001`, `localhost:8001` or `[::1]:8001` → a socket address.
pub fn parse_listen(flag: &str, raw: &str) -> anyhow::Result<SocketAddr> {
    let invalid =
        || format!("invalid {flag} address '{raw}': expected HOST:PORT, like 127.0.0.1:8001");
    let mut addrs = raw.to_socket_addrs().with_context(invalid)?;
    addrs.next().with_context(invalid)
}

fn parse_overrides(raw: &[String]) -> anyhow::Result<HashMap<String, String>> {
    raw.iter()
        .map(|item| {
            let (provider, url) = item
                .split_once('=')
                .filter(|(p, u)| !p.is_empty() && !u.is_empty())
                .with_context(|| {
                    format!("invalid --upstream-override '{item}': expected PROVIDER=URL")
                })?;
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .with_context(|| {
                    format!("invalid --upstream-override '{item}': '{url}' is not an http(s) URL")
                })?;
            Ok((
                provider.to_owned(),
                parsed.as_str().trim_end_matches('/').to_owned(),
            ))
        })
        .collect()
}

/// DB-less boot: the same loader, templating and checks as `gantry validate`.
fn load_dbless(files: &[PathBuf]) -> anyhow::Result<ConfigSnapshot> {
    for f in files {
        if f.as_os_str() != "-" {
            std::fs::metadata(f)
                .with_context(|| format!("cannot read config file {}", f.display()))?;
        }
    }
    let loaded = crate::state::load(files, &crate::state::LoadOptions::default())
        .map_err(|problems| anyhow::anyhow!("invalid config file:\n{problems}"))?;
    Ok(crate::state::to_snapshot(&loaded))
}

async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let dir = match &config.store_url {
        Some(url) => std::path::PathBuf::from(embedded_gateway::store::postgres::redact_url(url)),
        None => config.data_dir.clone(),
    };
    let dbless = config.dbless.is_some();
    let gateway = embedded_gateway::bind(config).await?;
    // Listen for signals before saying we are ready: a SIGTERM right after the ready lines
    // must drain, not kill.
    let stop = shutdown_signal()?;
    let cp = gateway.control_plane();
    let source = if dbless {
        "DB-less config".to_owned()
    } else {
        dir.display().to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "gantry: serving control plane '{}' from {source}",
        cp.name
    )?;
    writeln!(out, "gantry: proxy listening on {}", gateway.proxy_addr())?;
    writeln!(out, "gantry: admin listening on {}", gateway.admin_addr())?;
    if let Some(addr) = gateway.status_addr() {
        writeln!(out, "gantry: status listening on {addr}")?;
    }
    out.flush()?;
    drop(out);
    gateway.run(stop).await;
    eprintln!("gantry: stopped");
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("gantry: shutting down, draining in-flight requests");
    })
}
