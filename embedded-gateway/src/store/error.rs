//! Owns the store's errors and their Kong Admin API shapes (`kong/db/errors.lua` codes).

use serde_json::{Map, Value, json};

use crate::plugins::FieldError;

/// Everything a store operation can fail with. Each variant maps to one Kong error shape.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Code 2: the entity does not match its schema. `fields` is nested like Kong's.
    #[error("{}", schema_message(.0))]
    Schema(Vec<FieldError>),
    /// Code 5: a unique field already belongs to another entity.
    #[error("UNIQUE violation detected on '{{{}}}'", .0)]
    Unique(String, Map<String, Value>),
    /// Code 4: a reference to a missing entity, or a delete blocked by a reference.
    #[error("{0}")]
    ForeignKey(String, Map<String, Value>),
    /// 404 `{"message":"Not found"}`.
    #[error("Not found")]
    NotFound,
    /// A control plane that does not exist.
    #[error("control plane '{0}' not found")]
    ControlPlaneNotFound(String),
    /// Code 11: an invalid query option such as a bad `tags` filter.
    #[error("invalid option ({0})")]
    InvalidOption(String),
    /// Code 9: a bad `size`.
    #[error("size must be a number")]
    InvalidSize,
    /// Code 7: a bad `offset`.
    #[error("'{0}' is not a valid offset")]
    InvalidOffset(String),
    /// 409: another write changed the control plane since the caller read it.
    #[error("revision conflict: control plane is at revision {current}, expected {expected}")]
    RevisionConflict { current: u64, expected: u64 },
    /// 409: a control plane name that is taken.
    #[error("a control plane named '{0}' already exists")]
    ControlPlaneExists(String),
    /// 400 with a plain message.
    #[error("{0}")]
    BadRequest(String),
    /// 409 with a plain message.
    #[error("{0}")]
    Conflict(String),
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store error: {0}")]
    Io(#[from] std::io::Error),
    #[error("store error: corrupt row: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("store task failed: {0}")]
    Task(String),
    /// A database error that is not the caller's fault (PostgreSQL, or a row of an
    /// unexpected shape).
    #[error("store error: {0}")]
    Backend(String),
    /// 503: the configuration database cannot be reached. The proxy keeps serving the last
    /// configuration it loaded; writes are refused until the database is back.
    #[error(
        "the configuration database is unreachable ({0}); the gateway keeps serving its last known good configuration, and changes are refused until the database is back"
    )]
    Unavailable(String),
    /// One operation of a batch failed; nothing of the batch was applied.
    #[error("batch operation {} failed: {}", .0.index, .0.error)]
    Batch(Box<super::batch::OpFailed>),
}

impl StoreError {
    pub fn schema(path: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Schema(vec![FieldError::new(path, message)])
    }

    /// The HTTP status and Kong-shaped JSON body for this error.
    pub fn to_kong(&self) -> (u16, Value) {
        let message = self.to_string();
        match self {
            StoreError::Schema(errors) => (
                400,
                json!({"code": 2, "name": "schema violation", "message": message,
                       "fields": nest_fields(errors)}),
            ),
            StoreError::Unique(_, fields) => (
                409,
                json!({"code": 5, "name": "unique constraint violation", "message": message,
                       "fields": fields}),
            ),
            StoreError::ForeignKey(_, fields) => (
                400,
                json!({"code": 4, "name": "foreign key violation", "message": message,
                       "fields": fields}),
            ),
            StoreError::NotFound | StoreError::ControlPlaneNotFound(_) => {
                (404, json!({"message": message}))
            }
            StoreError::InvalidOption(_) => (
                400,
                json!({"code": 11, "name": "invalid options", "message": message}),
            ),
            StoreError::InvalidSize => (
                400,
                json!({"code": 9, "name": "invalid size", "message": message}),
            ),
            StoreError::InvalidOffset(_) => (
                400,
                json!({"code": 7, "name": "invalid offset", "message": message}),
            ),
            StoreError::RevisionConflict { current, expected } => (
                409,
                json!({"message": message, "current_revision": current,
                       "expected_revision": expected}),
            ),
            StoreError::ControlPlaneExists(_) | StoreError::Conflict(_) => {
                (409, json!({"message": message}))
            }
            StoreError::BadRequest(_) => (400, json!({"message": message})),
            StoreError::Batch(failed) => failed.error.to_kong(),
            StoreError::Unavailable(_) => (503, json!({"message": message})),
            StoreError::Sqlite(_)
            | StoreError::Backend(_)
            | StoreError::Io(_)
            | StoreError::Corrupt(_)
            | StoreError::Task(_) => (500, json!({"message": "An unexpected error occurred"})),
        }
    }
}

fn schema_message(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => format!("schema violation ({})", parts[0]),
        n => format!("{n} schema violations ({})", parts.join("; ")),
    }
}

/// `config.targets[0].model` → `{"config":{"targets[0]":{"model": msg}}}`; empty path → `@entity`.
fn nest_fields(errors: &[FieldError]) -> Value {
    let mut root = Map::new();
    for e in errors {
        let path = if e.path.is_empty() {
            "@entity"
        } else {
            &e.path
        };
        let segments: Vec<&str> = path.split('.').collect();
        insert_nested(&mut root, &segments, &e.message);
    }
    Value::Object(root)
}

fn insert_nested(map: &mut Map<String, Value>, segments: &[&str], message: &str) {
    let (first, rest) = (segments[0], &segments[1..]);
    if rest.is_empty() {
        match map.get_mut(first) {
            Some(Value::Array(list)) => list.push(json!(message)),
            Some(existing @ Value::String(_)) => {
                *existing = json!([existing.clone(), message]);
            }
            _ => {
                map.insert(first.to_owned(), json!(message));
            }
        }
        return;
    }
    let child = map
        .entry(first.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(inner) = child {
        insert_nested(inner, rest, message);
    }
}
