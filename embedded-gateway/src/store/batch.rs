//! Owns the atomic batch transaction: the wire types of `POST …/core-entities/batch` and
//! `POST /batch` (a list of create/update/delete operations guarded by `expected_revision`)
//! and their application inside one store transaction, all or none. The HTTP handler lives in
//! `admin::batch`; the format is documented in `docs/admin-batch.md`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::EntityKind;

use super::StoreError;
use super::entities;

/// The request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Apply only if the control plane is still at this revision; `null` skips the check.
    #[serde(default)]
    pub expected_revision: Option<u64>,
    pub operations: Vec<BatchOp>,
}

/// One operation. `kind` is `service`, `route`, `consumer`, `key_auth` or `plugin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOp {
    pub op: OpKind,
    pub kind: String,
    /// The entity for `create` and `update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Value>,
    /// Id or endpoint key for `update` and `delete` (defaults to `entity.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Create,
    /// Replaces the entity (PUT semantics: omitted fields take their defaults).
    Update,
    Delete,
}

/// A failed operation: its index, what it was, and the Kong-shaped error.
#[derive(Debug)]
pub struct OpFailed {
    pub index: usize,
    pub op: BatchOp,
    pub error: StoreError,
}

impl From<OpFailed> for StoreError {
    fn from(f: OpFailed) -> Self {
        StoreError::Batch(Box::new(f))
    }
}

/// Applies every operation in order on `db` (which the caller holds in one write
/// transaction), returning one result per operation. The first failure stops the batch with
/// [`StoreError::Batch`]; the caller's transaction then rolls everything back.
pub fn apply(
    db: &dyn super::Db,
    cp: &str,
    operations: Vec<BatchOp>,
) -> Result<Vec<Value>, StoreError> {
    let mut results = Vec::with_capacity(operations.len());
    // Large batches refresh the planner's statistics at the start and as the tables double.
    let analyze = db
        .dialect()
        .refresh_statistics()
        .filter(|_| operations.len() >= ANALYZE_FROM);
    for (index, op) in operations.into_iter().enumerate() {
        if let Some(sql) = analyze
            && (index == 0 || (index >= ANALYZE_FROM && index.is_power_of_two()))
        {
            db.execute(sql, &[])?;
        }
        let r = apply_one(db, cp, &op).map_err(|error| OpFailed { index, op, error })?;
        results.push(r);
    }
    Ok(results)
}

/// Batches from this many operations refresh the planner's statistics as they go.
const ANALYZE_FROM: usize = 256;

fn parse_kind(s: &str) -> Option<EntityKind> {
    EntityKind::ALL
        .into_iter()
        .find(|k| s == k.display_name() || s == k.collection() || s == kind_name(*k))
}

fn kind_name(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Service => "service",
        EntityKind::Route => "route",
        EntityKind::Consumer => "consumer",
        EntityKind::KeyAuth => "key_auth",
        EntityKind::Plugin => "plugin",
    }
}

/// Applies one operation; its result names the op, kind, id and the stored entity.
pub fn apply_one(db: &dyn super::Db, cp: &str, op: &BatchOp) -> Result<Value, StoreError> {
    let kind = parse_kind(&op.kind).ok_or_else(|| {
        StoreError::BadRequest(format!(
            "unknown kind '{}'; expected service, route, consumer, key_auth or plugin",
            op.kind
        ))
    })?;
    let target = || {
        op.id
            .clone()
            .or_else(|| op.entity.as_ref()?.get("id")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                StoreError::BadRequest(format!("{:?} needs an id", op.op).to_lowercase())
            })
    };
    let entity = || {
        op.entity.clone().ok_or_else(|| {
            StoreError::BadRequest(format!("{:?} needs an entity", op.op).to_lowercase())
        })
    };
    let (id, entity) = match op.op {
        OpKind::Create => {
            let e = entities::create(db, cp, kind, entity()?)?;
            (e["id"].clone(), e)
        }
        OpKind::Update => {
            let key = target()?;
            if entities::get(db, cp, kind, &key)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let (e, _) = entities::upsert(db, cp, kind, &key, entity()?)?;
            (e["id"].clone(), e)
        }
        OpKind::Delete => {
            let key = target()?;
            let existing = entities::get(db, cp, kind, &key)?.ok_or(StoreError::NotFound)?;
            entities::delete(db, cp, kind, &key)?;
            (existing["id"].clone(), Value::Null)
        }
    };
    Ok(json!({"op": op.op, "kind": kind_name(kind), "id": id, "entity": entity}))
}
