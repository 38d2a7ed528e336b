//! Owns the atomic batch endpoint (`POST …/core-entities/batch`, `POST /batch`): a list of
//! create/update/delete operations applied in one SQLite transaction, all or none, guarded by
//! `expected_revision`. The format is documented in `docs/admin-batch.md`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::EntityKind;
use crate::store::{self, StoreError};

use super::{AdminState, json_response, parse_body};

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

pub(super) async fn handle(
    state: &AdminState,
    cp_id: String,
    body: &[u8],
) -> Result<Response, StoreError> {
    let req: BatchRequest = serde_json::from_value(parse_body(body)?)
        .map_err(|e| StoreError::BadRequest(format!("invalid batch: {e}")))?;
    let cp = cp_id.clone();
    let result = state
        .write(cp_id, req.expected_revision, move |tx| {
            let mut results = Vec::with_capacity(req.operations.len());
            for (index, op) in req.operations.into_iter().enumerate() {
                let r = apply_one(tx, &cp, &op).map_err(|e| OpFailed {
                    index,
                    op,
                    error: e,
                })?;
                results.push(r);
            }
            Ok(results)
        })
        .await;
    match result {
        Ok((results, revision)) => Ok(json_response(
            StatusCode::OK,
            json!({"revision": revision, "results": results}),
        )),
        Err(StoreError::Batch(failed)) => Ok(failed.into_response()),
        Err(e) => Err(e),
    }
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

impl IntoResponse for Box<OpFailed> {
    fn into_response(self) -> Response {
        let (status, error) = self.error.to_kong();
        let what = format!("{:?} {}", self.op.op, self.op.kind).to_lowercase();
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            json!({
                "message": format!("operation {} ({what}) failed: {message}; nothing was applied", self.index),
                "operation_index": self.index,
                "error": error,
            }),
        )
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, cp: &str, op: &BatchOp) -> Result<Value, StoreError> {
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
            let e = store::create(tx, cp, kind, entity()?)?;
            (e["id"].clone(), e)
        }
        OpKind::Update => {
            let key = target()?;
            if store::get(tx, cp, kind, &key)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let (e, _) = store::upsert(tx, cp, kind, &key, entity()?)?;
            (e["id"].clone(), e)
        }
        OpKind::Delete => {
            let key = target()?;
            let existing = store::get(tx, cp, kind, &key)?.ok_or(StoreError::NotFound)?;
            store::delete(tx, cp, kind, &key)?;
            (existing["id"].clone(), Value::Null)
        }
    };
    Ok(json!({"op": op.op, "kind": kind_name(kind), "id": id, "entity": entity}))
}
