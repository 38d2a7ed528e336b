//! Owns the PostgreSQL side of the store: a lazily connecting pool (so a node can start and
//! serve its last known good configuration while the database is down), the schema
//! migrations (sqlx's migrator, recorded in `_sqlx_migrations`, run under an advisory lock so
//! nodes starting together do not race), [`Db`] for a pooled connection, the change channel
//! that `LISTEN`ers follow, and the mapping of driver errors to store errors.

use std::borrow::Cow;
use std::cell::{Cell as StdCell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column as _, Row as _, SqlSafeStr as _, TypeInfo as _};
use tokio::runtime::Handle;

use super::StoreError;
use super::db::{Arg, Cell, Db, Dialect, Row, dollar_placeholders};

/// The `NOTIFY` channel every committed change is announced on, with `"{cp_id} {revision}"`.
pub const CHANNEL: &str = "gantry_config";

/// How long a request waits for a pooled connection before the database counts as down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The migrations, in order. Append only: a released migration never changes (its checksum
/// is recorded).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        include_str!("migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "parent id indexes",
        include_str!("migrations/postgres/0002_parent_indexes.sql"),
    ),
];

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    AssertSqlSafe(*sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// A PostgreSQL store handle. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The URL without its password, for messages.
    shown: String,
    migrated: Arc<tokio::sync::Mutex<bool>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.shown).finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

impl PgStore {
    /// A store on `url` (`postgres://…` or `postgresql://…`). Connects on first use.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let options: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::BadRequest(format!("invalid PostgreSQL store URL {shown}: {e}"))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.application_name("gantry"));
        Ok(Self {
            pool,
            shown,
            migrated: Arc::new(tokio::sync::Mutex::new(false)),
        })
    }

    /// The URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Runs the pending migrations once per process (again after a failure).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        let mut done = self.migrated.lock().await;
        if !*done {
            migrator().run(&self.pool).await.map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => map_error(e),
                other => StoreError::Backend(format!("migration failed: {other}")),
            })?;
            *done = true;
        }
        Ok(())
    }

    /// Runs `f` on one pooled connection, on the blocking pool; each statement blocks on the
    /// caller's runtime. A connection that failed mid-way is closed, not reused.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.ensure_migrated().await?;
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let db = PgDb {
                conn: RefCell::new(&mut conn),
                handle,
                broken: StdCell::new(false),
            };
            let out = f(&db);
            let broken = db.broken.get();
            drop(db);
            if broken {
                conn.close_on_drop();
            }
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// A listener subscribed to [`CHANNEL`].
    pub async fn listen(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(map_error)?;
        listener.listen(CHANNEL).await.map_err(map_error)?;
        Ok(listener)
    }
}

/// Driver errors: lost or refused connections are [`StoreError::Unavailable`] (503); a
/// unique violation that got past the store's own checks (two nodes creating the same
/// control plane at once) is a conflict; the rest is a backend error.
pub fn map_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code == "23505" {
                StoreError::Conflict(db.message().to_owned())
            } else if code.starts_with("08") || code.starts_with("57P") {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Backend(e.to_string())
            }
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// One pooled connection seen through [`Db`].
struct PgDb<'c> {
    conn: RefCell<&'c mut PgConnection>,
    handle: Handle,
    broken: StdCell<bool>,
}

impl PgDb<'_> {
    fn run<T>(
        &self,
        fut: impl FnOnce(
            &mut PgConnection,
        ) -> futures_util::future::BoxFuture<'_, Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.borrow_mut();
        self.handle.block_on(fut(&mut conn)).map_err(|e| {
            let e = map_error(e);
            if matches!(e, StoreError::Unavailable(_) | StoreError::Backend(_)) {
                self.broken.set(true);
            }
            e
        })
    }
}

type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind(sql: &str, args: &[Arg<'_>]) -> PgQuery {
    let mut q = sqlx::query(AssertSqlSafe(dollar_placeholders(sql)));
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind((*s).to_owned()),
            Arg::OptText(s) => q.bind(s.map(str::to_owned)),
            Arg::Int(n) => q.bind(*n),
        };
    }
    q
}

fn to_row(r: &PgRow) -> Result<Row, sqlx::Error> {
    let mut cells = Vec::with_capacity(r.columns().len());
    for (i, col) in r.columns().iter().enumerate() {
        let cell = match col.type_info().name() {
            "INT8" => r.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
            "INT4" => r.try_get::<Option<i32>, _>(i)?.map(|n| Cell::Int(n.into())),
            "INT2" => r.try_get::<Option<i16>, _>(i)?.map(|n| Cell::Int(n.into())),
            "BOOL" => r
                .try_get::<Option<bool>, _>(i)?
                .map(|b| Cell::Int(b.into())),
            _ => r.try_get::<Option<String>, _>(i)?.map(Cell::Text),
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

impl Db for PgDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let q = bind(sql, args);
        self.run(move |c| Box::pin(async move { Ok(q.execute(c).await?.rows_affected()) }))
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let q = bind(sql, args);
        self.run(move |c| {
            Box::pin(async move { q.fetch_all(c).await?.iter().map(to_row).collect() })
        })
    }
}
