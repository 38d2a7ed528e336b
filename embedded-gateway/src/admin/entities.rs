//! Owns the entity endpoints, at the root (the served control plane) and under
//! `/v2/control-planes/{id}/core-entities`: collections, items by id or endpoint key, nested
//! paths (`/services/{s}/routes`, `/consumers/{c}/key-auth`, …), `/schemas/…` and `/batch`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, Uri};
use serde_json::{Value, json};

use crate::model::EntityKind;
use crate::store::{self, ListQuery, MAX_PAGE, StoreError, TagFilter};

use super::{AdminState, json_response, parse_body};

/// A parsed entity path.
#[derive(Debug)]
struct Target {
    cp_id: String,
    /// The path up to the entity segments, for `next` links.
    prefix: String,
    kind: EntityKind,
    /// `(parent field, parent kind, parent id or key)` for nested paths.
    parent: Option<(&'static str, EntityKind, String)>,
    item: Option<String>,
}

pub(super) async fn dispatch(
    State(state): State<AdminState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    match route(&state, &method, &uri, &body).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

fn not_found() -> StoreError {
    StoreError::NotFound
}

async fn route(
    state: &AdminState,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Response, StoreError> {
    let path = uri.path().trim_end_matches('/');
    let decoded: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let (cp_id, prefix, rest) = match segments.as_slice() {
        ["v2", "control-planes", cp, "core-entities", rest @ ..] => {
            let prefix = format!("/v2/control-planes/{cp}/core-entities");
            let cp = (*cp).to_owned();
            let found = state
                .store()
                .call(move |c| store::find_control_plane(c, &cp))
                .await?
                .ok_or(not_found())?;
            (found.id, prefix, rest.to_vec())
        }
        rest => (state.inner.served_id.clone(), String::new(), rest.to_vec()),
    };
    match (method, rest.as_slice()) {
        (&Method::POST, ["batch"]) => return super::batch::handle(state, cp_id, body).await,
        (_, ["schemas", ..]) => return schemas(method, &rest[1..], body),
        _ => {}
    }
    let target = parse_target(cp_id, prefix, &rest).ok_or(not_found())?;
    let query = uri.query().unwrap_or("");
    match (method, target.item.is_some()) {
        (&Method::GET, false) => list(state, target, query).await,
        (&Method::POST, false) => create(state, target, body).await,
        (&Method::GET, true) => fetch(state, target).await,
        (&Method::PUT, true) => upsert(state, target, body).await,
        (&Method::PATCH, true) => patch(state, target, body).await,
        (&Method::DELETE, true) => delete(state, target).await,
        _ => Ok(json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "Method not allowed"}),
        )),
    }
}

/// `my%20svc` → `my svc`; invalid escapes are kept as written.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

fn parse_target(cp_id: String, prefix: String, rest: &[&str]) -> Option<Target> {
    let kind_of = |s: &str| EntityKind::from_collection(s);
    let (kind, parent, item) = match rest {
        [coll] => (kind_of(coll)?, None, None),
        [coll, id] => (kind_of(coll)?, None, Some(id.to_string())),
        [parent, pid, child] | [parent, pid, child, _] => {
            let (field, pkind, kind) = nested(parent, child)?;
            let item = rest.get(3).map(|s| s.to_string());
            (kind, Some((field, pkind, pid.to_string())), item)
        }
        _ => return None,
    };
    Some(Target {
        cp_id,
        prefix,
        kind,
        parent,
        item,
    })
}

/// The nested collections Kong serves: parent collection + child → (fk field, parent, child).
fn nested(parent: &str, child: &str) -> Option<(&'static str, EntityKind, EntityKind)> {
    Some(match (parent, child) {
        ("services", "routes") => ("service", EntityKind::Service, EntityKind::Route),
        ("services", "plugins") => ("service", EntityKind::Service, EntityKind::Plugin),
        ("routes", "plugins") => ("route", EntityKind::Route, EntityKind::Plugin),
        ("consumers", "plugins") => ("consumer", EntityKind::Consumer, EntityKind::Plugin),
        ("consumers", "key-auth") | ("consumers", "key-auths") => {
            ("consumer", EntityKind::Consumer, EntityKind::KeyAuth)
        }
        _ => return None,
    })
}

/// Resolves the parent of a nested path to its id (404 when missing).
async fn parent_id(
    state: &AdminState,
    t: &Target,
) -> Result<Option<(&'static str, String)>, StoreError> {
    let Some((field, kind, key)) = &t.parent else {
        return Ok(None);
    };
    let (cp, kind, key, field) = (t.cp_id.clone(), *kind, key.clone(), *field);
    let parent = state
        .store()
        .call(move |c| store::get(c, &cp, kind, &key))
        .await?
        .ok_or(not_found())?;
    Ok(Some((
        field,
        parent["id"].as_str().unwrap_or_default().to_owned(),
    )))
}

fn belongs(entity: &Value, parent: &Option<(&'static str, String)>) -> bool {
    match parent {
        Some((field, id)) => {
            entity
                .get(*field)
                .and_then(|f| f.get("id"))
                .and_then(Value::as_str)
                == Some(id)
        }
        None => true,
    }
}

fn with_parent(mut body: Value, parent: &Option<(&'static str, String)>) -> Value {
    if let (Some((field, id)), Value::Object(map)) = (parent, &mut body) {
        map.insert((*field).to_owned(), json!({"id": id}));
    }
    body
}

fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn list(state: &AdminState, t: Target, query: &str) -> Result<Response, StoreError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let size = match query_param(&pairs, "size") {
        Some(s) => s.parse::<usize>().map_err(|_| StoreError::InvalidSize)?,
        None => store::DEFAULT_PAGE,
    };
    if size == 0 || size > MAX_PAGE {
        return Err(StoreError::InvalidSize);
    }
    let tags_raw = query_param(&pairs, "tags");
    let parent = parent_id(state, &t).await?;
    let q = ListQuery {
        size,
        offset: query_param(&pairs, "offset").map(str::to_owned),
        tags: TagFilter::parse(tags_raw)?,
        parent: parent.clone(),
    };
    let (cp, kind) = (t.cp_id.clone(), t.kind);
    let page = state
        .store()
        .call(move |c| store::list(c, &cp, kind, &q))
        .await?;
    let next = page.offset.as_ref().map(|off| {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        link.append_pair("offset", off);
        if query_param(&pairs, "size").is_some() {
            link.append_pair("size", &size.to_string());
        }
        if let Some(tags) = tags_raw {
            link.append_pair("tags", tags);
        }
        format!("{}?{}", collection_path(&t), link.finish())
    });
    let mut body = json!({"data": page.data, "next": next});
    if let Some(off) = page.offset {
        body["offset"] = json!(off);
    }
    Ok(json_response(StatusCode::OK, body))
}

fn collection_path(t: &Target) -> String {
    let child = if t.kind == EntityKind::KeyAuth && t.parent.is_some() {
        "key-auth"
    } else {
        t.kind.collection()
    };
    match &t.parent {
        Some((_, pkind, pid)) => format!("{}/{}/{pid}/{child}", t.prefix, pkind.collection()),
        None => format!("{}/{child}", t.prefix),
    }
}

async fn fetch(state: &AdminState, t: Target) -> Result<Response, StoreError> {
    let parent = parent_id(state, &t).await?;
    let (cp, kind, key) = (t.cp_id.clone(), t.kind, t.item.clone().unwrap_or_default());
    let entity = state
        .store()
        .call(move |c| store::get(c, &cp, kind, &key))
        .await?
        .filter(|e| belongs(e, &parent))
        .ok_or(not_found())?;
    Ok(json_response(StatusCode::OK, entity))
}

async fn create(state: &AdminState, t: Target, body: &[u8]) -> Result<Response, StoreError> {
    let parent = parent_id(state, &t).await?;
    let body = with_parent(parse_body(body)?, &parent);
    let kind = t.kind;
    let cp = t.cp_id.clone();
    let (entity, _) = state
        .write(t.cp_id, None, move |tx| store::create(tx, &cp, kind, body))
        .await?;
    Ok(json_response(StatusCode::CREATED, entity))
}

async fn upsert(state: &AdminState, t: Target, body: &[u8]) -> Result<Response, StoreError> {
    let parent = parent_id(state, &t).await?;
    let body = with_parent(parse_body(body)?, &parent);
    let (cp, kind, key) = (t.cp_id.clone(), t.kind, t.item.clone().unwrap_or_default());
    let ((entity, _created), _) = state
        .write(t.cp_id, None, move |tx| {
            if let Some(existing) = store::get(tx, &cp, kind, &key)?
                && !belongs(&existing, &parent)
            {
                return Err(StoreError::NotFound);
            }
            store::upsert(tx, &cp, kind, &key, body)
        })
        .await?;
    Ok(json_response(StatusCode::OK, entity))
}

async fn patch(state: &AdminState, t: Target, body: &[u8]) -> Result<Response, StoreError> {
    let parent = parent_id(state, &t).await?;
    let body = parse_body(body)?;
    let (cp, kind, key) = (t.cp_id.clone(), t.kind, t.item.clone().unwrap_or_default());
    let (entity, _) = state
        .write(t.cp_id, None, move |tx| {
            let existing = store::get(tx, &cp, kind, &key)?.ok_or(StoreError::NotFound)?;
            if !belongs(&existing, &parent) {
                return Err(StoreError::NotFound);
            }
            store::patch(tx, &cp, kind, &key, body)
        })
        .await?;
    Ok(json_response(StatusCode::OK, entity))
}

async fn delete(state: &AdminState, t: Target) -> Result<Response, StoreError> {
    let parent = parent_id(state, &t).await?;
    let (cp, kind, key) = (t.cp_id.clone(), t.kind, t.item.clone().unwrap_or_default());
    let exists = {
        let (cp, key) = (cp.clone(), key.clone());
        state
            .store()
            .call(move |c| store::get(c, &cp, kind, &key))
            .await?
    };
    // Kong answers 204 for a delete of something already gone.
    if exists.as_ref().is_none_or(|e| !belongs(e, &parent)) {
        return Ok(no_content());
    }
    state
        .write(t.cp_id, None, move |tx| store::delete(tx, &cp, kind, &key))
        .await?;
    Ok(no_content())
}

fn no_content() -> Response {
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// `GET /schemas/plugins/{name}`, `GET /schemas/{entity}`, `POST /schemas/{…}/validate`.
fn schemas(method: &Method, rest: &[&str], body: &[u8]) -> Result<Response, StoreError> {
    match (method, rest) {
        (&Method::GET, ["plugins", name]) => match crate::plugins::json_schema(name) {
            Some(schema) => Ok(json_response(StatusCode::OK, schema.clone())),
            None => Ok(json_response(
                StatusCode::NOT_FOUND,
                json!({"message": format!("No plugin named '{name}'")}),
            )),
        },
        (&Method::POST, ["plugins", "validate"]) => validate(EntityKind::Plugin, body),
        (&Method::POST, [entity, "validate"]) => match schema_kind(entity) {
            Some(kind) => validate(kind, body),
            None => Ok(no_entity(entity)),
        },
        (&Method::GET, [entity]) => match schema_kind(entity) {
            Some(kind) => Ok(json_response(StatusCode::OK, entity_schema(kind))),
            None => Ok(no_entity(entity)),
        },
        _ => Err(StoreError::NotFound),
    }
}

fn no_entity(entity: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"message": format!("No entity named '{entity}'")}),
    )
}

fn schema_kind(entity: &str) -> Option<EntityKind> {
    match entity {
        "keyauth_credentials" | "key-auth" => Some(EntityKind::KeyAuth),
        other => EntityKind::from_collection(other),
    }
}

fn entity_schema(kind: EntityKind) -> Value {
    use crate::model::*;
    let schema = match kind {
        EntityKind::Service => schemars::schema_for!(Service),
        EntityKind::Route => schemars::schema_for!(Route),
        EntityKind::Consumer => schemars::schema_for!(Consumer),
        EntityKind::KeyAuth => schemars::schema_for!(KeyAuthCredential),
        EntityKind::Plugin => schemars::schema_for!(Plugin),
    };
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

fn validate(kind: EntityKind, body: &[u8]) -> Result<Response, StoreError> {
    let mut body = parse_body(body)?;
    // Validation is about the entity itself; a credential's owner is checked on write.
    if kind == EntityKind::KeyAuth && body.get("consumer").is_none() {
        body["consumer"] = json!({"id": uuid::Uuid::nil().to_string()});
    }
    store::validate_entity(kind, body)?;
    Ok(json_response(
        StatusCode::OK,
        json!({"message": "schema validation successful"}),
    ))
}
