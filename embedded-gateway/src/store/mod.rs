//! Owns the store: control planes and their entities, in an embedded SQLite file under the
//! data directory (the default) or in PostgreSQL (several gateway nodes sharing one
//! database). One set of functions over [`Db`] holds Kong's rules for both backends; every
//! write runs in one transaction that checks and bumps the control plane's revision.
//! Database work runs on tokio's blocking pool, never on the async runtime.

pub mod batch;
mod db;
mod entities;
mod error;
pub mod postgres;
mod sqlite;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde_json::Value;

use crate::model::{ControlPlane, ControlPlaneConfig, EntityKind};
use crate::snapshot::ConfigSnapshot;

pub use db::{Arg, Cell, Db, Dialect, Row};
pub use entities::{DEFAULT_PAGE, ListQuery, MAX_PAGE, Page, TagFilter};
pub use error::StoreError;
pub use postgres::PgStore;

/// The store file's name inside the data directory.
pub const DB_FILE: &str = "gantry.db";

/// The `cluster_type` every local control plane reports.
pub const CLUSTER_TYPE: &str = "CLUSTER_TYPE_CONTROL_PLANE";

/// A handle on the store. Cheap to clone. SQLite: all clones share one connection, so writes
/// are serialised. PostgreSQL: clones share a pool; writers of one control plane are
/// serialised by a row lock on its revision, across processes.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// The embedded SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Sqlite(s) => f.debug_struct("Store").field("path", &s.path).finish(),
            Store::Postgres(p) => p.fmt(f),
        }
    }
}

/// Seconds since the Unix epoch: Kong's entity timestamps.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) `gantry.db` in `data_dir`, in WAL mode.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn, Some(path))
    }

    /// An in-memory store: DB-less mode and tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// A PostgreSQL store on `url`. Connects (and migrates) on first use, so this never
    /// fails for an unreachable database.
    pub fn postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Store::Postgres(PgStore::connect_lazy(url)?))
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(sqlite::SCHEMA)?;
        Ok(Store::Sqlite(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        }))
    }

    /// The store file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Store::Sqlite(s) => s.path.as_deref(),
            Store::Postgres(_) => None,
        }
    }

    /// `sqlite` or `postgres`: what Kong's `GET /` calls `database`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Runs `f` with a connection on the blocking pool. Statements outside a transaction
    /// commit one by one.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => {
                let conn = s.conn.clone();
                tokio::task::spawn_blocking(move || {
                    let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                    f(&*guard)
                })
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
            }
            Store::Postgres(p) => p.call(f).await,
        }
    }

    /// Runs `f` synchronously (for callers outside an async runtime, like `quickstart -d`).
    /// SQLite only.
    pub fn call_blocking<T>(
        &self,
        f: impl FnOnce(&dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let guard = s.conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&*guard)
            }
            Store::Postgres(_) => Err(StoreError::Backend(
                "a PostgreSQL store is only reachable from the async runtime".to_owned(),
            )),
        }
    }
}

/// Runs `f` in one write transaction on control plane `cp_id`: locks the control plane's
/// row, checks `expected_revision` if given, bumps the revision by one on success, announces
/// the new revision (PostgreSQL `NOTIFY`, delivered on commit), and commits. Returns `f`'s
/// value and the new revision. Nothing is written when `f` fails.
pub fn write_tx<T>(
    db: &dyn Db,
    cp_id: &str,
    expected_revision: Option<u64>,
    f: impl FnOnce(&dyn Db) -> Result<T, StoreError>,
) -> Result<(T, u64), StoreError> {
    let dialect = db.dialect();
    db::in_tx(db, dialect.begin_write(), || {
        let current = revision_with(db, cp_id, dialect.lock_row())?;
        if let Some(expected) = expected_revision
            && expected != current
        {
            return Err(StoreError::RevisionConflict { current, expected });
        }
        let value = f(db)?;
        let next = current + 1;
        db.execute(
            "UPDATE control_planes SET revision = ?1 WHERE id = ?2",
            &[Arg::Int(next as i64), Arg::Text(cp_id)],
        )?;
        if dialect == Dialect::Postgres {
            db.execute(
                "SELECT pg_notify(?1, ?2)",
                &[
                    Arg::Text(postgres::CHANNEL),
                    Arg::Text(&format!("{cp_id} {next}")),
                ],
            )?;
        }
        Ok((value, next))
    })
}

fn revision_with(db: &dyn Db, cp_id: &str, suffix: &str) -> Result<u64, StoreError> {
    let sql = format!("SELECT revision FROM control_planes WHERE id = ?1{suffix}");
    db.query_opt(&sql, &[Arg::Text(cp_id)])?
        .map(|r| r.int(0).map(|n| n as u64))
        .transpose()?
        .ok_or_else(|| StoreError::ControlPlaneNotFound(cp_id.to_owned()))
}

/// The stored revision of a control plane.
pub fn revision(db: &dyn Db, cp_id: &str) -> Result<u64, StoreError> {
    revision_with(db, cp_id, "")
}

/// The complete entity set of a control plane at its current revision.
/// Read in one transaction, so the entities match the revision.
pub fn snapshot(db: &dyn Db, cp_id: &str) -> Result<ConfigSnapshot, StoreError> {
    db::in_tx(db, db.dialect().begin_read(), || read_snapshot(db, cp_id))
}

fn read_snapshot(db: &dyn Db, cp_id: &str) -> Result<ConfigSnapshot, StoreError> {
    let mut snap = ConfigSnapshot {
        revision: revision(db, cp_id)?,
        ..Default::default()
    };
    for kind in EntityKind::ALL {
        let bodies = entities::all_bodies(db, cp_id, kind)?;
        for body in bodies {
            match kind {
                EntityKind::Service => snap.services.push(serde_json::from_value(body)?),
                EntityKind::Route => snap.routes.push(serde_json::from_value(body)?),
                EntityKind::Consumer => snap.consumers.push(serde_json::from_value(body)?),
                EntityKind::KeyAuth => snap.key_auths.push(serde_json::from_value(body)?),
                EntityKind::Plugin => snap.plugins.push(serde_json::from_value(body)?),
            }
        }
    }
    Ok(snap)
}

/// Loads a DB-less snapshot into control plane `cp_id` (validating and filling defaults).
pub fn load_snapshot(db: &dyn Db, cp_id: &str, snap: &ConfigSnapshot) -> Result<u64, StoreError> {
    let bodies: Vec<(EntityKind, Value)> = snap
        .services
        .iter()
        .map(|e| (EntityKind::Service, serde_json::to_value(e)))
        .chain(
            snap.routes
                .iter()
                .map(|e| (EntityKind::Route, serde_json::to_value(e))),
        )
        .chain(
            snap.consumers
                .iter()
                .map(|e| (EntityKind::Consumer, serde_json::to_value(e))),
        )
        .chain(
            snap.key_auths
                .iter()
                .map(|e| (EntityKind::KeyAuth, serde_json::to_value(e))),
        )
        .chain(
            snap.plugins
                .iter()
                .map(|e| (EntityKind::Plugin, serde_json::to_value(e))),
        )
        .map(|(k, v)| v.map(|v| (k, v)))
        .collect::<Result<_, _>>()?;
    let ((), rev) = write_tx(db, cp_id, None, |tx| {
        for (kind, body) in bodies {
            entities::create(tx, cp_id, kind, body)?;
        }
        Ok(())
    })?;
    Ok(rev)
}

pub use entities::{create, delete, get, list, patch, upsert};

/// Validates an entity body without storing it (`POST /schemas/{entity}/validate`).
pub fn validate_entity(kind: EntityKind, body: Value) -> Result<Value, StoreError> {
    let mut body = body;
    if let Value::Object(map) = &mut body {
        map.entry("id")
            .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()));
    }
    validate::normalize(kind, body)
}

// ---- control planes ----------------------------------------------------------------------

/// Fields a control plane is created with.
#[derive(Debug, Clone, Default)]
pub struct NewControlPlane {
    pub name: String,
    pub description: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Changes to a control plane (`PATCH`). `None` leaves a field as is.
#[derive(Debug, Clone, Default)]
pub struct ControlPlanePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Keys mapped to `None` are removed.
    pub labels: Option<std::collections::BTreeMap<String, Option<String>>>,
}

fn cp_from_row(r: &Row) -> Result<ControlPlane, StoreError> {
    let labels = r.text(3)?;
    let created = r.int(5)?;
    let updated = r.int(6)?;
    Ok(ControlPlane {
        id: r.text(0)?,
        name: r.text(1)?,
        description: r.opt_text(2)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        config: ControlPlaneConfig {
            control_plane_endpoint: String::new(),
            cluster_type: CLUSTER_TYPE.to_owned(),
        },
        revision: r.int(4)? as u64,
        created_at: iso8601(created),
        updated_at: iso8601(updated),
    })
}

const CP_COLUMNS: &str = "id, name, description, labels, revision, created_at, updated_at";

pub fn list_control_planes(db: &dyn Db) -> Result<Vec<ControlPlane>, StoreError> {
    db.query(
        &format!("SELECT {CP_COLUMNS} FROM control_planes ORDER BY created_at, name"),
        &[],
    )?
    .iter()
    .map(cp_from_row)
    .collect()
}

/// Finds a control plane by id, or by name when no id matches.
pub fn find_control_plane(
    db: &dyn Db,
    id_or_name: &str,
) -> Result<Option<ControlPlane>, StoreError> {
    let sql = format!(
        "SELECT {CP_COLUMNS} FROM control_planes WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1"
    );
    db.query_opt(&sql, &[Arg::Text(id_or_name)])?
        .as_ref()
        .map(cp_from_row)
        .transpose()
}

pub fn create_control_plane(
    db: &dyn Db,
    new: &NewControlPlane,
) -> Result<ControlPlane, StoreError> {
    validate_cp_name(&new.name)?;
    for (k, v) in &new.labels {
        validate_label(k, v)?;
    }
    if find_by_name(db, &new.name)?.is_some() {
        return Err(StoreError::ControlPlaneExists(new.name.clone()));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_secs();
    db.execute(
        "INSERT INTO control_planes (id, name, description, labels, revision, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        &[
            Arg::Text(&id),
            Arg::Text(&new.name),
            Arg::OptText(new.description.as_deref()),
            Arg::Text(&serde_json::to_string(&new.labels)?),
            Arg::Int(now),
        ],
    )?;
    find_control_plane(db, &id)?.ok_or(StoreError::NotFound)
}

fn find_by_name(db: &dyn Db, name: &str) -> Result<Option<String>, StoreError> {
    db.query_opt(
        "SELECT id FROM control_planes WHERE name = ?1",
        &[Arg::Text(name)],
    )?
    .map(|r| r.text(0))
    .transpose()
}

fn validate_cp_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(StoreError::BadRequest(
            "control plane name must be 1 to 256 characters".to_owned(),
        ));
    }
    Ok(())
}

/// Konnect's label rules: keys 1–63 characters of `[A-Za-z0-9._-]`, starting and ending with a
/// letter or digit, not starting with `kong`, `konnect`, `mesh`, `kic` or `_`; values ≤ 63.
fn validate_label(key: &str, value: &str) -> Result<(), StoreError> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let key_ok = (1..=63).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        && alnum(key.chars().next())
        && alnum(key.chars().last())
        && !["kong", "konnect", "mesh", "kic"]
            .iter()
            .any(|p| key.starts_with(p));
    if !key_ok {
        return Err(StoreError::BadRequest(format!(
            "invalid label key '{key}': 1 to 63 letters, digits, '-', '.' or '_', starting and ending with a letter or digit, not starting with kong, konnect, mesh or kic"
        )));
    }
    if value.len() > 63 {
        return Err(StoreError::BadRequest(format!(
            "invalid value for label '{key}': at most 63 characters"
        )));
    }
    Ok(())
}

/// Returns the control plane named `name`, creating it when missing. Nodes starting together
/// on one PostgreSQL database may race to create it: the loser takes the winner's.
pub fn ensure_control_plane(db: &dyn Db, name: &str) -> Result<ControlPlane, StoreError> {
    if let Some(id) = find_by_name(db, name)? {
        return find_control_plane(db, &id)?.ok_or(StoreError::NotFound);
    }
    let new = NewControlPlane {
        name: name.to_owned(),
        ..Default::default()
    };
    match create_control_plane(db, &new) {
        Err(StoreError::Conflict(_) | StoreError::ControlPlaneExists(_)) => {
            let id = find_by_name(db, name)?.ok_or(StoreError::NotFound)?;
            find_control_plane(db, &id)?.ok_or(StoreError::NotFound)
        }
        other => other,
    }
}

pub fn patch_control_plane(
    db: &dyn Db,
    id: &str,
    patch: &ControlPlanePatch,
) -> Result<ControlPlane, StoreError> {
    let mut cp = find_control_plane(db, id)?.ok_or(StoreError::NotFound)?;
    if let Some(name) = &patch.name {
        validate_cp_name(name)?;
        if let Some(other) = find_by_name(db, name)?
            && other != cp.id
        {
            return Err(StoreError::ControlPlaneExists(name.clone()));
        }
        cp.name = name.clone();
    }
    if let Some(d) = &patch.description {
        cp.description = Some(d.clone());
    }
    if let Some(labels) = &patch.labels {
        for (k, v) in labels {
            if let Some(v) = v {
                validate_label(k, v)?;
            }
            match v {
                Some(v) => cp.labels.insert(k.clone(), v.clone()),
                None => cp.labels.remove(k),
            };
        }
    }
    db.execute(
        "UPDATE control_planes SET name = ?1, description = ?2, labels = ?3, updated_at = ?4 WHERE id = ?5",
        &[
            Arg::Text(&cp.name),
            Arg::OptText(cp.description.as_deref()),
            Arg::Text(&serde_json::to_string(&cp.labels)?),
            Arg::Int(now_secs()),
            Arg::Text(&cp.id),
        ],
    )?;
    find_control_plane(db, &cp.id)?.ok_or(StoreError::NotFound)
}

/// Deletes a control plane and, by cascade, all its entities.
pub fn delete_control_plane(db: &dyn Db, id: &str) -> Result<(), StoreError> {
    let cp = find_control_plane(db, id)?.ok_or(StoreError::NotFound)?;
    db.execute(
        "DELETE FROM control_planes WHERE id = ?1",
        &[Arg::Text(&cp.id)],
    )?;
    Ok(())
}

/// `1700000000` → `2023-11-14T22:13:20Z`.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_utc_seconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
