//! PostgreSQL for tests: the server from `GANTRY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), one fresh schema per test so tests run in
//! parallel. When the server cannot be reached, a test is skipped with a loud
//! `SKIPPED: PostgreSQL not reachable`, except under `CI=true`, where it fails.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection as _;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn server_url() -> String {
    std::env::var("GANTRY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// Runs `f` on its own thread and runtime, so sync harness code can set up the database.
fn blocking<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// Whether the test server answers (checked once per process). Under `CI=true` an
/// unreachable server fails the calling test.
pub fn reachable() -> bool {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = REACHABLE.get_or_init(|| {
        let url = server_url();
        blocking(async move {
            let mut conn = connect(&url).await?;
            drop_orphan_schemas(&mut conn).await;
            Ok(())
        })
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "PostgreSQL not reachable at {} (CI=true): {e}",
                server_url()
            )
        }
        Err(e) => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL not reachable at {} ({e}); set GANTRY_TEST_POSTGRES_URL",
                server_url()
            );
            false
        }
    }
}

/// The schema name for `key` (a test's temp dir, say): the same key gives the same schema,
/// so a restarted gateway finds its data. The name carries this process's id so that later
/// runs can drop it (see [`drop_orphan_schemas`]).
pub fn schema_for(key: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("gantry_t_{}_{:016x}", std::process::id(), h.finish())
}

/// Drops the test schemas (`gantry_t_PID_…`, `gantry_s_PID_…`) of test processes that are no
/// longer running, so repeated local runs do not pile schemas up.
pub async fn drop_orphan_schemas(conn: &mut sqlx::PgConnection) {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'gantry\\_t\\_%' OR nspname LIKE 'gantry\\_s\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for (name,) in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A store URL on schema `schema` (created if missing), or `None` when the server is not
/// reachable (see [`reachable`]).
pub fn schema_url(schema: &str) -> Option<String> {
    if !reachable() {
        return None;
    }
    let server = server_url();
    let name = schema.to_owned();
    blocking(async move {
        let mut conn = connect(&server).await.expect("PostgreSQL answers");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{name}\""
        )))
        .execute(&mut conn)
        .await
        .expect("create the test schema");
    });
    let mut url = url::Url::parse(&server_url()).expect("GANTRY_TEST_POSTGRES_URL is a URL");
    url.query_pairs_mut()
        .append_pair("options[search_path]", schema);
    Some(url.to_string())
}
