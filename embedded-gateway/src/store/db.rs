//! Owns the seam between the store's logic and its databases: the [`Db`] trait (run one
//! statement, read rows) that SQLite and PostgreSQL both implement, the argument and row
//! types, and the few SQL fragments whose spelling differs between the two ([`Dialect`]).
//! Statements are written once, with SQLite's `?1` placeholders; PostgreSQL's driver turns
//! them into `$1`.

use super::StoreError;

/// One bound value.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
}

/// One column value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// One row read back, columns in `SELECT` order.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Backend(format!("row has no column {i}")))
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.cell(i)? {
            Cell::Text(s) => Ok(s.clone()),
            other => Err(StoreError::Backend(format!(
                "column {i}: expected text, found {other:?}"
            ))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.cell(i)? {
            Cell::Int(n) => Ok(*n),
            other => Err(StoreError::Backend(format!(
                "column {i}: expected an integer, found {other:?}"
            ))),
        }
    }
}

/// Which SQL spelling a database wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Starts a write transaction that takes the write lock up front (SQLite) or at the first
    /// `SELECT … FOR UPDATE` (PostgreSQL).
    pub fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Starts a read-only transaction that sees one consistent state.
    pub fn begin_read(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// Appended to the `SELECT` of a control plane's revision inside a write transaction: on
    /// PostgreSQL the row lock serialises writers of one control plane across nodes.
    pub fn lock_row(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Refreshes the planner's statistics on the entity tables, from inside the running
    /// transaction (PostgreSQL counts the transaction's own uncommitted rows). Without it, a
    /// batch that fills a new table has no statistics, and the planner looks entities up
    /// through any index with a `(cp_id, kind)` prefix, scanning the kind: quadratic.
    pub fn refresh_statistics(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some("ANALYZE entities, unique_keys"),
        }
    }

    /// The text at JSON path `a.b` of the `body` column.
    pub fn json_text(self, path: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract(body, '$.{path}')"),
            Dialect::Postgres => format!("(body::jsonb #>> '{{{}}}')", path.replace('.', ",")),
        }
    }

    /// True when the `tags` array of `body` holds the text bound at placeholder `n`.
    pub fn has_tag(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each(body, '$.tags') WHERE value = ?{n})")
            }
            Dialect::Postgres => format!(
                "(COALESCE(body::jsonb -> 'tags', '[]'::jsonb) @> jsonb_build_array(?{n}::text))"
            ),
        }
    }
}

/// A connection (or an open transaction on one) that runs statements. Statements use `?N`
/// placeholders.
pub trait Db {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the number of rows changed.
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;
    /// Runs one query; returns every row.
    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError>;

    /// The first row, if any.
    fn query_opt(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }
}

/// Runs `f` between `begin` and `COMMIT`; rolls back when `f` fails or panics.
pub fn in_tx<T>(
    db: &dyn Db,
    begin: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    struct Guard<'a> {
        db: &'a dyn Db,
        open: bool,
    }
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if self.open {
                let _ = self.db.execute("ROLLBACK", &[]);
            }
        }
    }
    db.execute(begin, &[])?;
    let mut guard = Guard { db, open: true };
    let value = f()?;
    guard.open = false;
    db.execute("COMMIT", &[])?;
    Ok(value)
}

/// `?1` → `$1`. Statements never hold a literal `?` outside a placeholder.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE x = ?1 AND y = ?12"),
            "SELECT a FROM t WHERE x = $1 AND y = $12"
        );
    }

    #[test]
    fn json_paths_are_spelled_per_dialect() {
        assert_eq!(
            Dialect::Sqlite.json_text("service.id"),
            "json_extract(body, '$.service.id')"
        );
        assert_eq!(
            Dialect::Postgres.json_text("service.id"),
            "(body::jsonb #>> '{service,id}')"
        );
    }
}
