//! Owns the SQLite side of the store: the schema (created on open) and [`Db`] for a rusqlite
//! connection, with cached prepared statements.

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use super::StoreError;
use super::db::{Arg, Cell, Db, Dialect, Row};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS control_planes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    revision INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id TEXT NOT NULL REFERENCES control_planes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    endpoint_key TEXT,
    body TEXT NOT NULL,
    UNIQUE (cp_id, kind, id)
);
CREATE INDEX IF NOT EXISTS entities_by_kind ON entities (cp_id, kind, seq);
CREATE INDEX IF NOT EXISTS entities_by_key ON entities (cp_id, kind, endpoint_key);
CREATE TABLE IF NOT EXISTS unique_keys (
    cp_id TEXT NOT NULL REFERENCES control_planes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    PRIMARY KEY (cp_id, kind, field, value)
);
CREATE INDEX IF NOT EXISTS unique_keys_by_entity ON unique_keys (cp_id, entity_id);
";

fn to_sql(args: &[Arg<'_>]) -> Vec<SqlValue> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => SqlValue::Text((*s).to_owned()),
            Arg::OptText(Some(s)) => SqlValue::Text((*s).to_owned()),
            Arg::OptText(None) => SqlValue::Null,
            Arg::Int(n) => SqlValue::Integer(*n),
        })
        .collect()
}

impl Db for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(to_sql(args)))? as u64)
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(to_sql(args)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Real(f) => Cell::Int(f as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Cell::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
