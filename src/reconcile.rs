//! Owns the I/O around a plan: finding the target control plane, reading its live state in
//! scope (all select tags, every page), and executing a plan as one atomic batch that the
//! gateway refuses if the control plane's revision moved since the plan was computed.

use embedded_gateway::model::{
    Consumer, ControlPlane, EntityKind, KeyAuthCredential, Plugin, Route, Service,
};
use embedded_gateway::snapshot::ConfigSnapshot;
use embedded_gateway::store::batch::{BatchOp, BatchRequest, OpKind};
use serde_json::Value;

use crate::client::{AdminClient, ClientError};
use crate::plan::{Action, Plan};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("control plane `{0}` not found")]
    ControlPlaneNotFound(String),
    #[error("the admin API returned an invalid {kind}: {reason}")]
    BadEntity { kind: &'static str, reason: String },
    #[error(
        "the control plane changed while it was being read (revision {before} → {after}); try again"
    )]
    Unstable { before: u64, after: u64 },
    #[error(
        "conflict: the control plane changed since the plan was computed (planned against revision {expected}, now {current}); nothing was applied\n\nhint: run the command again to plan against the current state"
    )]
    Conflict { expected: u64, current: String },
    #[error(
        "the gateway at {addr} did not answer the batch in time; it may still have been applied\n\nhint: run `gantry diff` to see the current state, or raise `--timeout`"
    )]
    Unanswered { addr: String },
    #[error(
        "the connection to the gateway at {addr} broke after the batch was sent ({reason}); whether it was applied is unknown\n\nhint: run `gantry diff` to see what the gateway holds now"
    )]
    OutcomeUnknown { addr: String, reason: String },
    #[error("{operation} failed, so nothing was applied: {message}")]
    Rejected { operation: String, message: String },
    #[error("the admin API refused the batch ({message}), so nothing was applied{hint}")]
    Refused { message: String, hint: &'static str },
}

/// Where the entities live: the served control plane (root paths) or a named one.
#[derive(Debug, Clone)]
pub struct Target {
    pub control_plane: Option<ControlPlane>,
}

impl Target {
    /// The path prefix of this target's entity collections.
    pub fn prefix(&self) -> String {
        AdminClient::entities_prefix(self.cp_id())
    }

    pub fn cp_id(&self) -> Option<&str> {
        self.control_plane.as_ref().map(|cp| cp.id.as_str())
    }

    /// A human name for messages.
    pub fn display(&self) -> String {
        match &self.control_plane {
            Some(cp) => format!("control plane `{}`", cp.name),
            None => "the served control plane".to_owned(),
        }
    }
}

pub async fn resolve_target(
    client: &AdminClient,
    control_plane: Option<&str>,
) -> Result<Target, ReconcileError> {
    match control_plane {
        None => Ok(Target {
            control_plane: None,
        }),
        Some(name) => client
            .control_plane_by_name(name)
            .await?
            .map(|cp| Target {
                control_plane: Some(cp),
            })
            .ok_or_else(|| ReconcileError::ControlPlaneNotFound(name.to_owned())),
    }
}

/// The target's current revision.
pub async fn revision(client: &AdminClient, target: &Target) -> Result<u64, ReconcileError> {
    let v = match &target.control_plane {
        Some(cp) => client
            .get(&format!("/v2/control-planes/{}", cp.id))
            .await?
            .ok_or_else(|| ReconcileError::ControlPlaneNotFound(cp.name.clone()))?,
        None => client.status().await?,
    };
    Ok(v.get("revision")
        .or_else(|| v.get("store_revision"))
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

fn parse<T: serde::de::DeserializeOwned>(
    kind: EntityKind,
    items: Vec<Value>,
) -> Result<Vec<T>, ReconcileError> {
    items
        .into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| ReconcileError::BadEntity {
                kind: kind.display_name(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Reads every in-scope entity (carrying all `tags`) with the revision it was read at.
/// If a write lands while reading, the read starts over, so the plan never mixes revisions.
pub async fn read_live(
    client: &AdminClient,
    target: &Target,
    tags: &[String],
    skip_consumers: bool,
) -> Result<ConfigSnapshot, ReconcileError> {
    let prefix = target.prefix();
    let mut last = (0, 0);
    for _ in 0..3 {
        let before = revision(client, target).await?;
        let list = |kind: EntityKind| {
            let path = format!("{prefix}/{}", kind.collection());
            let tags = (!tags.is_empty()).then(|| tags.join(","));
            async move { client.list_all(&path, tags.as_deref()).await }
        };
        let (services, routes, plugins) = tokio::try_join!(
            list(EntityKind::Service),
            list(EntityKind::Route),
            list(EntityKind::Plugin)
        )?;
        let (consumers, key_auths) = if skip_consumers {
            (Vec::new(), Vec::new())
        } else {
            tokio::try_join!(list(EntityKind::Consumer), list(EntityKind::KeyAuth))?
        };
        let after = revision(client, target).await?;
        if before == after {
            let mut plugins: Vec<Plugin> = parse(EntityKind::Plugin, plugins)?;
            if skip_consumers {
                plugins.retain(|p| p.consumer.is_none());
            }
            return Ok(ConfigSnapshot {
                revision: before,
                services: parse::<Service>(EntityKind::Service, services)?,
                routes: parse::<Route>(EntityKind::Route, routes)?,
                consumers: parse::<Consumer>(EntityKind::Consumer, consumers)?,
                key_auths: parse::<KeyAuthCredential>(EntityKind::KeyAuth, key_auths)?,
                plugins,
            });
        }
        last = (before, after);
    }
    Err(ReconcileError::Unstable {
        before: last.0,
        after: last.1,
    })
}

/// The batch for a plan: operations in plan order, guarded by the plan's revision.
pub fn batch_request(plan: &Plan) -> BatchRequest {
    let kind = |k: EntityKind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let operations = plan
        .changes
        .iter()
        .map(|c| BatchOp {
            op: match c.action {
                Action::Create => OpKind::Create,
                Action::Update => OpKind::Update,
                Action::Delete => OpKind::Delete,
            },
            kind: kind(c.kind),
            entity: c.new.clone(),
            id: Some(c.id.clone()),
        })
        .collect();
    BatchRequest {
        expected_revision: plan.base_revision,
        operations,
    }
}

/// Executes `plan` in one transaction. Returns the control plane's new revision.
pub async fn execute(
    client: &AdminClient,
    target: &Target,
    plan: &Plan,
) -> Result<u64, ReconcileError> {
    match client.batch(target.cp_id(), &batch_request(plan)).await {
        Ok(res) => Ok(res.revision),
        Err(ClientError::Status {
            status,
            body,
            message,
            ..
        }) => {
            if status == 413 {
                return Err(ReconcileError::Refused {
                    message,
                    hint: "\n\nhint: the plan is larger than the gateway takes in one request; apply it in parts (for example one `--select-tag` scope at a time)",
                });
            }
            if status == 409 && body.get("current_revision").is_some() {
                return Err(ReconcileError::Conflict {
                    expected: plan.base_revision.unwrap_or(0),
                    current: body["current_revision"].to_string(),
                });
            }
            let operation = body
                .get("operation_index")
                .and_then(Value::as_u64)
                .and_then(|i| plan.changes.get(i as usize))
                .map(crate::plan::render::event_line)
                .unwrap_or_else(|| "the batch".to_owned());
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or(message);
            Err(ReconcileError::Rejected { operation, message })
        }
        Err(ClientError::Connect { addr, reason }) if reason == "timed out" => {
            Err(ReconcileError::Unanswered { addr })
        }
        Err(ClientError::Broken { addr, reason }) => {
            Err(ReconcileError::OutcomeUnknown { addr, reason })
        }
        Err(e) => Err(e.into()),
    }
}
