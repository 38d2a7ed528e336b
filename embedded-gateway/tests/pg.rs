//! PostgreSQL for tests: the server from `GANTRY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), one fresh schema per test so tests run in
//! parallel. When the server cannot be reached, a test is skipped with a loud
//! `SKIPPED: PostgreSQL not reachable`, except under `CI=true`, where it fails.

use std::hash::{Hash, Hasher};
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
        blocking(async move { connect(&url).await.map(|_| ()) })
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
            eprintln!(
                "SKIPPED: PostgreSQL not reachable at {} ({e}); set GANTRY_TEST_POSTGRES_URL",
                server_url()
            );
            false
        }
    }
}

/// The schema name for `key` (a test's temp dir, say): the same key gives the same schema,
/// so a restarted gateway finds its data.
pub fn schema_for(key: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("gantry_t_{:016x}", h.finish())
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
