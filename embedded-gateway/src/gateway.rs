//! Owns the wiring of a running gateway: opens the store (SQLite, PostgreSQL, or a DB-less
//! snapshot loaded into an in-memory one), ensures the served control plane, binds the proxy
//! and admin listeners, seeds the proxy with the current snapshot (or, when PostgreSQL is
//! down at start, with the last known good one), follows the store for changes made by other
//! nodes (`LISTEN`/`NOTIFY` plus a revision poll), and runs until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::admin::{self, AdminSettings, AdminState};
use crate::model::ControlPlane;
use crate::proxy::{Proxy, ProxyOptions};
use crate::served::{self, LastGood, Served};
use crate::server::{self, Limits, Protocols};
use crate::snapshot::ConfigSnapshot;
use crate::store::{self, Store, StoreError};

/// Everything `gantry serve` decides before the gateway starts.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub proxy_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Kong's status listener: `GET /metrics` without the admin token (off when `None`).
    pub status_listen: Option<SocketAddr>,
    /// Where `gantry.db` lives (unused in DB-less mode); with a PostgreSQL store, where the
    /// last known good snapshot is kept.
    pub data_dir: PathBuf,
    /// `postgres://…`: share the store with other nodes; `None` is SQLite under `data_dir`.
    pub store_url: Option<String>,
    /// How often the stored revision is polled for changes made elsewhere (the safety net
    /// under PostgreSQL's `NOTIFY`). `None`: 400 ms for SQLite, 2 s for PostgreSQL.
    pub store_poll: Option<Duration>,
    /// The control plane the proxy serves; created when missing.
    pub control_plane: String,
    /// DB-less mode: serve this snapshot; the admin API is read-only.
    pub dbless: Option<ConfigSnapshot>,
    /// Required in `Kong-Admin-Token` on every admin call when set.
    pub admin_token: Option<String>,
    pub proxy_options: ProxyOptions,
    pub limits: Limits,
    pub admin_body_limit: usize,
    /// Extra proxy worker threads, each with its own single-threaded runtime and upstream pool,
    /// accepting on the same listener. `0` serves the proxy on the caller's runtime only.
    /// One current-thread runtime per core costs about half the CPU per request of a
    /// work-stealing runtime on this workload (measured; see the README's benchmark).
    pub proxy_workers: usize,
    /// How long the local analytics store (`analytics.db` in the data dir) keeps its
    /// per-minute rollups; `None` turns analytics off.
    pub analytics_retention: Option<std::time::Duration>,
}

impl GatewayConfig {
    /// The defaults of `gantry serve`: proxy `0.0.0.0:8000`, admin `127.0.0.1:8001`,
    /// control plane `default`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            proxy_listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            status_listen: None,
            data_dir: data_dir.into(),
            store_url: None,
            store_poll: None,
            control_plane: "default".to_owned(),
            dbless: None,
            admin_token: None,
            proxy_options: ProxyOptions::default(),
            limits: Limits::default(),
            admin_body_limit: admin::DEFAULT_BODY_LIMIT,
            proxy_workers: 0,
            analytics_retention: Some(std::time::Duration::from_secs(7 * 86400)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "refusing to expose the admin API on {0} without a token; set --admin-token (or GANTRY_ADMIN_TOKEN) or listen on a loopback address"
    )]
    AdminExposed(SocketAddr),
    /// The reason is text, not a `source`, so that error chains say it once.
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        reason: String,
    },
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error("invalid DB-less configuration: {0}")]
    Dbless(StoreError),
    #[error("cannot use the PostgreSQL store {url}: {source}")]
    Postgres { url: String, source: StoreError },
    #[error(
        "the PostgreSQL store {url} is unreachable ({source}) and there is no last known good configuration to serve ({last_good})"
    )]
    NoLastGood {
        url: String,
        source: StoreError,
        last_good: served::LastGoodError,
    },
    #[error("--store and --config (DB-less mode) cannot be used together")]
    DblessWithStore,
    #[error("cannot open the analytics store")]
    Analytics(#[from] crate::analytics::AnalyticsError),
}

/// A gateway with its listeners bound, ready to [`Gateway::run`].
pub struct Gateway {
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    status_listener: Option<TcpListener>,
    proxy: Proxy,
    admin: axum::Router,
    control_plane: ControlPlane,
    limits: Limits,
    store: Store,
    served: Served,
    store_poll: Duration,
    proxy_workers: usize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("proxy_addr", &self.proxy_addr())
            .field("admin_addr", &self.admin_addr())
            .field("control_plane", &self.control_plane.name)
            .finish()
    }
}

/// Opens the store, ensures the control plane and binds both listeners.
pub async fn bind(config: GatewayConfig) -> Result<Gateway, GatewayError> {
    if !config.admin_listen.ip().is_loopback() && config.admin_token.is_none() {
        return Err(GatewayError::AdminExposed(config.admin_listen));
    }
    let dbless = config.dbless.is_some();
    if dbless && config.store_url.is_some() {
        return Err(GatewayError::DblessWithStore);
    }
    let (store, control_plane, served) = match &config.store_url {
        Some(url) => {
            let proxy = new_proxy(&config).await?;
            open_postgres(&config, url, &proxy).await?
        }
        None => {
            // The store first: a data dir that cannot hold it is the error to report.
            let (store, cp) = open_store(&config).await?;
            let proxy = new_proxy(&config).await?;
            let served = Served::new(proxy, None);
            let cp_id = cp.id.clone();
            let snapshot = store
                .call(move |c| store::snapshot(c, &cp_id))
                .await
                .map_err(|source| GatewayError::Store {
                    dir: config.data_dir.clone(),
                    source,
                })?;
            served.apply(&snapshot);
            (store, cp, served)
        }
    };
    let proxy = served.proxy().clone();
    let store_poll = config.store_poll.unwrap_or(match store {
        Store::Sqlite(_) => STORE_POLL,
        Store::Postgres(_) => POSTGRES_POLL,
    });
    let proxy_listener = listen_proxy(config.proxy_listen)
        .map_err(|e| bind_error("proxy", config.proxy_listen, &e))?;
    let admin_listener = listen("admin", config.admin_listen).await?;
    let status_listener = match config.status_listen {
        Some(addr) => Some(listen("status", addr).await?),
        None => None,
    };
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin_listen);
    let proxy_addr = proxy_listener.local_addr().unwrap_or(config.proxy_listen);
    let state = AdminState::with_served(
        store.clone(),
        served.clone(),
        AdminSettings {
            served_id: control_plane.id.clone(),
            served_name: control_plane.name.clone(),
            dbless,
            token: config.admin_token.clone(),
            admin_base: format!("http://{admin_addr}"),
            proxy_base: format!("http://{proxy_addr}"),
        },
    );
    Ok(Gateway {
        proxy_listener,
        admin_listener,
        status_listener,
        proxy,
        admin: admin::router(state, config.admin_body_limit),
        control_plane,
        limits: config.limits,
        store,
        served,
        store_poll,
        proxy_workers: config.proxy_workers,
    })
}

async fn open_store(config: &GatewayConfig) -> Result<(Store, ControlPlane), GatewayError> {
    let store_err = |source| GatewayError::Store {
        dir: config.data_dir.clone(),
        source,
    };
    let store = match &config.dbless {
        Some(_) => Store::in_memory(),
        None => {
            let dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || Store::open(&dir))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))
                .and_then(|r| r)
        }
    }
    .map_err(store_err)?;
    let name = config.control_plane.clone();
    let cp = store
        .call(move |c| store::ensure_control_plane(c, &name))
        .await
        .map_err(store_err)?;
    if let Some(snapshot) = config.dbless.clone() {
        let id = cp.id.clone();
        store
            .call(move |c| store::load_snapshot(c, &id, &snapshot))
            .await
            .map_err(GatewayError::Dbless)?;
    }
    Ok((store, cp))
}

/// Opens the PostgreSQL store: migrates, ensures the control plane and seeds the proxy. When
/// the database is unreachable, the last known good snapshot under the data dir is served
/// instead (and the store is followed until it is back); with no such snapshot, start fails.
async fn open_postgres(
    config: &GatewayConfig,
    url: &str,
    proxy: &Proxy,
) -> Result<(Store, ControlPlane, Served), GatewayError> {
    let shown = store::postgres::redact_url(url);
    let store = Store::postgres(url).map_err(|source| GatewayError::Postgres {
        url: shown.clone(),
        source,
    })?;
    let last_good_path = LastGood::path_for(&config.data_dir, &config.control_plane);
    let name = config.control_plane.clone();
    let opened = store
        .call(move |c| {
            let cp = store::ensure_control_plane(c, &name)?;
            let snapshot = store::snapshot(c, &cp.id)?;
            Ok((cp, snapshot))
        })
        .await;
    let (cp, snapshot, reachable) = match opened {
        Ok((cp, snapshot)) => (cp, snapshot, true),
        Err(source @ StoreError::Unavailable(_)) => {
            let saved =
                served::load(&last_good_path).map_err(|last_good| GatewayError::NoLastGood {
                    url: shown.clone(),
                    source,
                    last_good,
                })?;
            tracing::warn!(
                url = %shown,
                revision = saved.snapshot.revision,
                "the PostgreSQL store is unreachable; serving the last known good configuration"
            );
            let cp = ControlPlane {
                id: saved.cp_id,
                name: saved.cp_name,
                description: None,
                labels: Default::default(),
                config: crate::model::ControlPlaneConfig {
                    control_plane_endpoint: String::new(),
                    cluster_type: store::CLUSTER_TYPE.to_owned(),
                },
                revision: saved.snapshot.revision,
                created_at: String::new(),
                updated_at: String::new(),
            };
            (cp, saved.snapshot, false)
        }
        Err(source) => {
            return Err(GatewayError::Postgres { url: shown, source });
        }
    };
    let served = Served::new(
        proxy.clone(),
        Some(LastGood {
            path: last_good_path,
            cp_id: cp.id.clone(),
            cp_name: cp.name.clone(),
        }),
    );
    served.set_reachable(reachable);
    served.apply(&snapshot);
    Ok((store, cp, served))
}

async fn listen(what: &'static str, addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(what, addr, &e))
}

fn bind_error(what: &'static str, addr: SocketAddr, e: &std::io::Error) -> GatewayError {
    let reason = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "the address is already in use (is another gateway running?); pick another with --{what}-listen"
        )
    } else {
        e.to_string()
    };
    GatewayError::Bind { what, addr, reason }
}

/// The proxy, with the local analytics store it feeds when retention is on.
async fn new_proxy(config: &GatewayConfig) -> Result<Proxy, GatewayError> {
    let mut options = config.proxy_options.clone();
    if let Some(retention) = config.analytics_retention {
        let path = config.data_dir.join("analytics.db");
        let _ = std::fs::create_dir_all(&config.data_dir);
        let opened =
            tokio::task::spawn_blocking(move || crate::analytics::Recorder::open(&path, retention))
                .await
                .map_err(|_| crate::analytics::AnalyticsError::Stopped)??;
        options.analytics = Some(opened);
    }
    Ok(Proxy::new(options))
}

/// Binds the proxy listener. On Linux it is one of a group of `SO_REUSEPORT` sockets (one per
/// proxy worker, see [`worker_listener`]), so the kernel spreads connections evenly over the
/// workers as nginx's `reuseport` does; a plain bind first makes sure no other process holds
/// the port, since the group would otherwise share it silently.
fn listen_proxy(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if cfg!(target_os = "linux") {
        drop(std::net::TcpListener::bind(addr)?);
    }
    TcpListener::from_std(group_socket(addr)?)
}

/// A nonblocking listening socket on `addr`, in the port's `SO_REUSEPORT` group on Linux.
fn group_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(target_os = "linux")]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A listener for one more proxy worker: on Linux its own socket in the proxy port's
/// `SO_REUSEPORT` group, elsewhere a clone of the proxy listener (workers then race to accept).
fn worker_listener(listener: &TcpListener) -> std::io::Result<std::net::TcpListener> {
    if cfg!(target_os = "linux") {
        return group_socket(listener.local_addr()?);
    }
    let fd = socket2::SockRef::from(listener);
    let std: std::net::TcpListener = fd.try_clone()?.into();
    std.set_nonblocking(true)?;
    Ok(std)
}

impl Gateway {
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The served control plane, as it was at start.
    /// The status listener's address, when one was asked for.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The proxy (for tests that watch its revision).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves both listeners until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let rx_watch = rx.clone();
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let workers = spawn_proxy_workers(
            self.proxy_workers,
            &self.proxy_listener,
            &self.proxy,
            &self.limits,
            &rx,
        );
        // One Arc per listener: a request clones one pointer, not the proxy's parts.
        let proxy = Arc::new(self.proxy.clone());
        let proxy_task = server::serve(
            Protocols::Http1,
            self.proxy_listener,
            self.limits.clone(),
            move |req: Request<Incoming>, remote: SocketAddr| {
                let proxy = proxy.clone();
                async move { proxy.handle(req, remote).await }
            },
            stopped(rx.clone()),
        );
        let router = self.admin;
        let admin_task = server::serve(
            Protocols::Http1AndH2c,
            self.admin_listener,
            self.limits.clone(),
            move |req: Request<Incoming>, _remote: SocketAddr| {
                let router = router.clone();
                async move {
                    match router.oneshot(req.map(Body::new)).await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    }
                }
            },
            stopped(rx.clone()),
        );
        let status_task = self.status_listener.map(|listener| {
            let router = admin::metrics::status_router();
            server::serve(
                Protocols::Http1AndH2c,
                listener,
                self.limits.clone(),
                move |req: Request<Incoming>, _remote: SocketAddr| {
                    let router = router.clone();
                    async move {
                        match router.oneshot(req.map(Body::new)).await {
                            Ok(res) => res,
                            Err(never) => match never {},
                        }
                    }
                },
                stopped(rx.clone()),
            )
        });
        let status_task = async move {
            if let Some(t) = status_task {
                t.await;
            }
        };
        let watcher = follow_store(
            self.store.clone(),
            self.served.clone(),
            self.control_plane.id.clone(),
            self.store_poll,
            stopped(rx_watch),
        );
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        tokio::join!(proxy_task, admin_task, status_task, watcher);
        for w in workers {
            // Each worker drains its own connections after the stop signal, then returns.
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    }
}

/// Starts `count` proxy workers on their own threads, each accepting on its own listener (see
/// [`worker_listener`]) with its own current-thread runtime and upstream connection pool. They share the
/// route table, so a config swap reaches all of them at once.
fn spawn_proxy_workers(
    count: usize,
    listener: &TcpListener,
    proxy: &Proxy,
    limits: &Limits,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    for i in 0..count {
        let std_listener = match worker_listener(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start proxy worker; serving with fewer");
                break;
            }
        };
        let (proxy, limits, mut stop) =
            (proxy.with_separate_client(), limits.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("gantry-proxy-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start a proxy worker runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let proxy = Arc::new(proxy);
                    let handler = move |req: Request<Incoming>, remote: SocketAddr| {
                        let proxy = proxy.clone();
                        async move { proxy.handle(req, remote).await }
                    };
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    server::serve(Protocols::Http1, listener, limits, handler, stopped).await;
                });
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => tracing::warn!(error = %e, "cannot spawn a proxy worker thread"),
        }
    }
    handles
}

/// How often a SQLite store is checked for writes made by another process sharing the file.
pub const STORE_POLL: Duration = Duration::from_millis(400);

/// How often a PostgreSQL store's revision is polled, under `LISTEN`/`NOTIFY`.
pub const POSTGRES_POLL: Duration = Duration::from_secs(2);

/// Picks up writes made by other processes (other nodes on the same PostgreSQL database,
/// another `serve` on the same SQLite file): on a `NOTIFY` for the served control plane
/// (PostgreSQL) and every `poll`, the stored revision is compared with the served one and,
/// when they differ, the snapshot is rebuilt and swapped in. Writes through this node's admin
/// API swap immediately. A failed check leaves the proxy serving what it has.
async fn follow_store(
    store: Store,
    served: Served,
    cp_id: String,
    poll: Duration,
    stop: impl Future<Output = ()>,
) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = match &store {
        Store::Postgres(pg) => Some(tokio::spawn(listen_changes(
            pg.clone(),
            cp_id.clone(),
            poll,
            wake.clone(),
        ))),
        Store::Sqlite(_) => None,
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(poll) => {}
            () = wake.notified() => {}
        }
        refresh(&store, &served, &cp_id).await;
    }
    if let Some(l) = listener {
        l.abort();
    }
}

/// `LISTEN`s on the change channel and wakes the follower for the served control plane's
/// notifications. A lost connection is re-established after `retry`; since notifications
/// may have been missed meanwhile, the follower is woken then too.
async fn listen_changes(
    pg: store::PgStore,
    cp_id: String,
    retry: Duration,
    wake: Arc<tokio::sync::Notify>,
) {
    let prefix = format!("{cp_id} ");
    loop {
        match pg.listen().await {
            Ok(mut listener) => {
                wake.notify_one();
                loop {
                    match listener.recv().await {
                        Ok(n) if n.payload().starts_with(&prefix) => wake.notify_one(),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "lost the PostgreSQL change listener");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen for PostgreSQL changes"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Swaps in the stored snapshot when its revision differs from the served one.
async fn refresh(store: &Store, served: &Served, cp_id: &str) {
    let (target, id) = (served.clone(), cp_id.to_owned());
    let result = store
        .call(move |conn| {
            let stored = store::find_control_plane(conn, &id)?.map(|cp| cp.revision);
            if stored.is_some_and(|r| r != target.revision()) {
                target.apply(&store::snapshot(conn, &id)?);
            }
            Ok(())
        })
        .await;
    let reachable = !matches!(result, Err(StoreError::Unavailable(_)));
    let was = served.set_reachable(reachable);
    match result {
        Ok(()) if !was => tracing::warn!("the configuration database is reachable again"),
        Err(e) if was || !matches!(e, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %e, "cannot refresh the served configuration; serving the last known good one")
        }
        _ => {}
    }
}

/// Binds and runs a gateway until `shutdown` resolves.
pub async fn serve(
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    bind(config).await?.run(shutdown).await;
    Ok(())
}
