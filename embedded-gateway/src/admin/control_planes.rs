//! Owns `/v2/control-planes`: Konnect-shaped list (with `filter[name][eq]` and page meta),
//! create, get, `PATCH` (name, description, labels) and delete (with all its entities).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::ControlPlane;
use crate::store::{self, ControlPlanePatch, NewControlPlane, StoreError};

use super::{AdminState, json_response, parse_body};

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v2/control-planes", get(list).post(create))
        .route(
            "/v2/control-planes/{id}",
            get(fetch).patch(patch).delete(delete),
        )
}

impl AdminState {
    fn present(&self, mut cp: ControlPlane) -> ControlPlane {
        cp.config.control_plane_endpoint = format!(
            "{}/v2/control-planes/{}/core-entities",
            self.inner.admin_base, cp.id
        );
        cp
    }
}

fn to_json(cp: &ControlPlane) -> Value {
    serde_json::to_value(cp).unwrap_or(Value::Null)
}

async fn list(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let all = match state.store().call(|c| store::list_control_planes(c)).await {
        Ok(all) => all,
        Err(e) => return e.into_response(),
    };
    let label_filter: Vec<(String, Option<String>)> = param("labels")
        .map(|l| {
            l.split(',')
                .map(|kv| match kv.split_once(':') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (kv.to_owned(), None),
                })
                .collect()
        })
        .unwrap_or_default();
    let matches = |cp: &ControlPlane| {
        param("filter[name][eq]").is_none_or(|n| cp.name == n)
            && param("filter[name]").is_none_or(|n| cp.name == n)
            && param("filter[name][neq]").is_none_or(|n| cp.name != n)
            && param("filter[name][contains]").is_none_or(|n| cp.name.contains(&n))
            && param("filter[id][eq]").is_none_or(|n| cp.id == n)
            && label_filter.iter().all(|(k, v)| match v {
                Some(v) => cp.labels.get(k) == Some(v),
                None => cp.labels.contains_key(k),
            })
    };
    let filtered: Vec<ControlPlane> = all.into_iter().filter(matches).collect();
    let size: usize = param("page[size]")
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(100);
    let number: usize = param("page[number]")
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let total = filtered.len();
    let data: Vec<Value> = filtered
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .map(|cp| to_json(&state.present(cp)))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"data": data, "meta": {"page": {"number": number, "size": size, "total": total}}}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    // Accepted for Konnect compatibility; a local control plane has one cluster type.
    #[serde(default)]
    #[allow(dead_code)]
    cluster_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    auth_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cloud_gateway: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    proxy_urls: Option<Value>,
}

fn bad_body(e: serde_json::Error) -> StoreError {
    StoreError::BadRequest(format!("invalid control plane: {e}"))
}

async fn create(State(state): State<AdminState>, body: Bytes) -> Response {
    let parsed =
        parse_body(&body).and_then(|v| serde_json::from_value::<CreateBody>(v).map_err(bad_body));
    let body = match parsed {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let new = NewControlPlane {
        name: body.name,
        description: body.description,
        labels: body.labels,
    };
    match state
        .store()
        .call(move |c| store::create_control_plane(c, &new))
        .await
    {
        Ok(cp) => json_response(StatusCode::CREATED, to_json(&state.present(cp))),
        Err(e) => e.into_response(),
    }
}

async fn fetch(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    match state
        .store()
        .call(move |c| store::find_control_plane(c, &id))
        .await
    {
        Ok(Some(cp)) => json_response(StatusCode::OK, to_json(&state.present(cp))),
        Ok(None) => StoreError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    #[allow(dead_code)]
    auth_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    proxy_urls: Option<Value>,
}

async fn patch(State(state): State<AdminState>, Path(id): Path<String>, body: Bytes) -> Response {
    let parsed =
        parse_body(&body).and_then(|v| serde_json::from_value::<PatchBody>(v).map_err(bad_body));
    let body = match parsed {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let patch = ControlPlanePatch {
        name: body.name,
        description: body.description,
        labels: body.labels,
    };
    match state
        .store()
        .call(move |c| store::patch_control_plane(c, &id, &patch))
        .await
    {
        Ok(cp) => json_response(StatusCode::OK, to_json(&state.present(cp))),
        Err(e) => e.into_response(),
    }
}

async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let served = state.inner.served_id.clone();
    let result = state
        .store()
        .call(move |c| {
            let Some(cp) = store::find_control_plane(c, &id)? else {
                return Ok(false);
            };
            if cp.id == served {
                return Err(StoreError::Conflict(format!(
                    "control plane '{}' is served by this gateway; stop `gantry serve` before deleting it",
                    cp.name
                )));
            }
            store::delete_control_plane(c, &cp.id)?;
            Ok(true)
        })
        .await;
    match result {
        Ok(_) => {
            let mut res = Response::new(axum::body::Body::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        Err(e) => e.into_response(),
    }
}
