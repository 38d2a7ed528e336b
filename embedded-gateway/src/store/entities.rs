//! Owns entity rows: create, upsert, patch, delete (with Kong's cascades and restrictions),
//! lookup by id or endpoint key, and paginated, tag-filtered lists. Every function runs on a
//! connection or transaction the caller already holds.

use serde_json::{Map, Value, json};

use crate::model::EntityKind;

use super::db::{Arg, Db};
use super::validate::normalize;
use super::{StoreError, now_secs};

/// Largest and default page sizes (Kong's).
pub const MAX_PAGE: usize = 1000;
pub const DEFAULT_PAGE: usize = 100;

/// `?tags=`: `a,b` needs all, `a/b` needs any.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum TagFilter {
    #[default]
    None,
    All(Vec<String>),
    Any(Vec<String>),
}

impl TagFilter {
    /// Parses Kong's `tags` query value.
    pub fn parse(raw: Option<&str>) -> Result<Self, StoreError> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else {
            return Ok(TagFilter::None);
        };
        let invalid = || StoreError::InvalidOption("tags: invalid filter syntax".to_owned());
        let (has_and, has_or) = (raw.contains(','), raw.contains('/'));
        if has_and && has_or {
            return Err(invalid());
        }
        let sep = if has_or { '/' } else { ',' };
        let tags: Vec<String> = raw.split(sep).map(str::to_owned).collect();
        if tags.iter().any(String::is_empty) || tags.len() > 5 {
            return Err(invalid());
        }
        Ok(if has_or {
            TagFilter::Any(tags)
        } else {
            TagFilter::All(tags)
        })
    }
}

/// One list request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub size: usize,
    /// Opaque offset from a previous page's `offset`.
    pub offset: Option<String>,
    pub tags: TagFilter,
    /// Only entities whose `field.id` equals the id (nested lists like `/services/{s}/routes`).
    pub parent: Option<(&'static str, String)>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            size: DEFAULT_PAGE,
            offset: None,
            tags: TagFilter::None,
            parent: None,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub data: Vec<Value>,
    /// Offset of the next page; `None` on the last page.
    pub offset: Option<String>,
}

fn kind_key(kind: EntityKind) -> &'static str {
    kind.collection()
}

/// The field Kong looks entities up by besides `id`.
fn endpoint_field(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Service | EntityKind::Route => "name",
        EntityKind::Consumer => "username",
        EntityKind::KeyAuth => "key",
        EntityKind::Plugin => "instance_name",
    }
}

fn endpoint_key(kind: EntityKind, body: &Value) -> Option<String> {
    body.get(endpoint_field(kind))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Finds an entity by id, or by its endpoint key (service name, consumer username, …).
pub fn get(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    id_or_key: &str,
) -> Result<Option<Value>, StoreError> {
    // Two indexed lookups, id first: one query with `id = ?3 OR endpoint_key = ?3` scans
    // every entity of the kind, which made a batch of n creates O(n²).
    let args = [
        Arg::Text(cp_id),
        Arg::Text(kind_key(kind)),
        Arg::Text(id_or_key),
    ];
    let by_id = "SELECT body FROM entities WHERE cp_id = ?1 AND kind = ?2 AND id = ?3 LIMIT 1";
    let by_key =
        "SELECT body FROM entities WHERE cp_id = ?1 AND kind = ?2 AND endpoint_key = ?3 LIMIT 1";
    let body = match db.query_opt(by_id, &args)? {
        Some(row) => Some(row.text(0)?),
        None => db
            .query_opt(by_key, &args)?
            .map(|r| r.text(0))
            .transpose()?,
    };
    Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
}

fn get_required(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    id_or_key: &str,
) -> Result<Value, StoreError> {
    get(db, cp_id, kind, id_or_key)?.ok_or(StoreError::NotFound)
}

/// Every entity of a kind, oldest first.
pub fn all_bodies(db: &dyn Db, cp_id: &str, kind: EntityKind) -> Result<Vec<Value>, StoreError> {
    let rows = db.query(
        "SELECT body FROM entities WHERE cp_id = ?1 AND kind = ?2 ORDER BY seq",
        &[Arg::Text(cp_id), Arg::Text(kind_key(kind))],
    )?;
    rows.iter()
        .map(|r| Ok(serde_json::from_str(&r.text(0)?)?))
        .collect()
}

/// One page of entities, filtered by tags and parent.
pub fn list<'a>(
    db: &dyn Db,
    cp_id: &'a str,
    kind: EntityKind,
    q: &'a ListQuery,
) -> Result<Page, StoreError> {
    let after: i64 = match &q.offset {
        Some(o) => o
            .parse()
            .map_err(|_| StoreError::InvalidOffset(o.clone()))?,
        None => 0,
    };
    let mut sql =
        String::from("SELECT seq, body FROM entities WHERE cp_id = ?1 AND kind = ?2 AND seq > ?3");
    let dialect = db.dialect();
    let mut args: Vec<Arg<'_>> = vec![Arg::Text(cp_id), Arg::Text(kind_key(kind)), Arg::Int(after)];
    if let Some((field, id)) = &q.parent {
        args.push(Arg::Text(id));
        sql += &format!(
            " AND {} = ?{}",
            dialect.json_text(&format!("{field}.id")),
            args.len()
        );
    }
    let tag_clause = |args: &mut Vec<Arg<'a>>, tag: &'a str| {
        args.push(Arg::Text(tag));
        dialect.has_tag(args.len())
    };
    match &q.tags {
        TagFilter::None => {}
        TagFilter::All(tags) => {
            for t in tags {
                sql += &format!(" AND {}", tag_clause(&mut args, t));
            }
        }
        TagFilter::Any(tags) => {
            let parts: Vec<String> = tags.iter().map(|t| tag_clause(&mut args, t)).collect();
            sql += &format!(" AND ({})", parts.join(" OR "));
        }
    }
    sql += &format!(" ORDER BY seq LIMIT {}", q.size + 1);
    let mut rows: Vec<(i64, String)> = db
        .query(&sql, &args)?
        .iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?)))
        .collect::<Result<_, StoreError>>()?;
    let more = rows.len() > q.size;
    rows.truncate(q.size);
    let offset = more
        .then(|| rows.last().map(|(s, _)| s.to_string()))
        .flatten();
    let data = rows
        .into_iter()
        .map(|(_, b)| serde_json::from_str(&b))
        .collect::<Result<_, _>>()?;
    Ok(Page { data, offset })
}

/// Creates an entity; `id` is kept when given (must be a UUID), generated otherwise.
pub fn create(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    body: Value,
) -> Result<Value, StoreError> {
    let Value::Object(mut map) = body else {
        return Err(StoreError::schema("", "expected a record"));
    };
    let id = match map
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => {
            check_uuid(id)?;
            id.to_owned()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let now = now_secs();
    map.insert("id".into(), json!(id));
    map.insert("created_at".into(), json!(now));
    map.insert("updated_at".into(), json!(now));
    let value = normalize(kind, Value::Object(map))?;
    if get(db, cp_id, kind, &id)?.is_some_and(|v| v["id"] == json!(id)) {
        return Err(unique_error("id", &json!(id)));
    }
    check_references(db, cp_id, kind, &value)?;
    claim_unique_keys(db, cp_id, kind, &value)?;
    db.execute(
        "INSERT INTO entities (cp_id, kind, id, endpoint_key, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            Arg::Text(cp_id),
            Arg::Text(kind_key(kind)),
            Arg::Text(&id),
            Arg::OptText(endpoint_key(kind, &value).as_deref()),
            Arg::Text(&value.to_string()),
        ],
    )?;
    Ok(value)
}

fn check_uuid(id: &str) -> Result<(), StoreError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| StoreError::schema("id", "expected a valid UUID"))
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// `PUT`: replaces the entity found by id or endpoint key, or creates it. Returns the entity
/// and whether it was created.
pub fn upsert(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    id_or_key: &str,
    body: Value,
) -> Result<(Value, bool), StoreError> {
    let Value::Object(mut map) = body else {
        return Err(StoreError::schema("", "expected a record"));
    };
    match get(db, cp_id, kind, id_or_key)? {
        Some(existing) => {
            map.insert("id".into(), existing["id"].clone());
            map.insert("created_at".into(), existing["created_at"].clone());
            Ok((
                replace(db, cp_id, kind, &existing, Value::Object(map))?,
                false,
            ))
        }
        None => {
            if is_uuid(id_or_key) {
                map.insert("id".into(), json!(id_or_key));
            } else {
                map.remove("id");
                map.insert(endpoint_field(kind).into(), json!(id_or_key));
            }
            Ok((create(db, cp_id, kind, Value::Object(map))?, true))
        }
    }
}

/// `PATCH`: merges `patch` into the entity (plugin `config` merges one level deeper).
pub fn patch(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    id_or_key: &str,
    patch: Value,
) -> Result<Value, StoreError> {
    let Value::Object(patch) = patch else {
        return Err(StoreError::schema("", "expected a record"));
    };
    let existing = get_required(db, cp_id, kind, id_or_key)?;
    let mut merged = existing.as_object().cloned().unwrap_or_default();
    for (k, v) in patch {
        if k == "config"
            && let (Some(Value::Object(old)), Value::Object(new)) = (merged.get_mut("config"), &v)
        {
            merge_objects(old, new);
            continue;
        }
        merged.insert(k, v);
    }
    merged.insert("id".into(), existing["id"].clone());
    merged.insert("created_at".into(), existing["created_at"].clone());
    replace(db, cp_id, kind, &existing, Value::Object(merged))
}

fn merge_objects(old: &mut Map<String, Value>, new: &Map<String, Value>) {
    for (k, v) in new {
        match (old.get_mut(k), v) {
            (Some(Value::Object(o)), Value::Object(n)) => merge_objects(o, n),
            _ => {
                old.insert(k.clone(), v.clone());
            }
        }
    }
}

fn replace(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    existing: &Value,
    body: Value,
) -> Result<Value, StoreError> {
    let mut body = body;
    body["updated_at"] = json!(now_secs());
    if body.get("id") != existing.get("id") {
        return Err(StoreError::schema(
            "id",
            "cannot change the id of an entity",
        ));
    }
    let value = normalize(kind, body)?;
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    check_references(db, cp_id, kind, &value)?;
    release_unique_keys(db, cp_id, &id)?;
    claim_unique_keys(db, cp_id, kind, &value)?;
    db.execute(
        "UPDATE entities SET endpoint_key = ?1, body = ?2 WHERE cp_id = ?3 AND kind = ?4 AND id = ?5",
        &[
            Arg::OptText(endpoint_key(kind, &value).as_deref()),
            Arg::Text(&value.to_string()),
            Arg::Text(cp_id),
            Arg::Text(kind_key(kind)),
            Arg::Text(&id),
        ],
    )?;
    Ok(value)
}

/// Deletes an entity. A service with routes is refused (Kong's restrict); plugins of a
/// service or route, and credentials and plugins of a consumer, are deleted with it.
pub fn delete(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    id_or_key: &str,
) -> Result<(), StoreError> {
    let existing = get_required(db, cp_id, kind, id_or_key)?;
    let id = existing["id"].as_str().unwrap_or_default().to_owned();
    if kind == EntityKind::Service
        && !children(db, cp_id, EntityKind::Route, "service", &id)?.is_empty()
    {
        return Err(StoreError::ForeignKey(
            "an existing 'routes' entity references this 'services' entity".to_owned(),
            [("@referenced_by".to_owned(), json!("routes"))]
                .into_iter()
                .collect(),
        ));
    }
    let cascades: &[(EntityKind, &str)] = match kind {
        EntityKind::Service => &[(EntityKind::Plugin, "service")],
        EntityKind::Route => &[(EntityKind::Plugin, "route")],
        EntityKind::Consumer => &[
            (EntityKind::KeyAuth, "consumer"),
            (EntityKind::Plugin, "consumer"),
        ],
        EntityKind::KeyAuth | EntityKind::Plugin => &[],
    };
    for (child_kind, field) in cascades {
        for child in children(db, cp_id, *child_kind, field, &id)? {
            delete_row(db, cp_id, *child_kind, &child)?;
        }
    }
    delete_row(db, cp_id, kind, &id)
}

fn delete_row(db: &dyn Db, cp_id: &str, kind: EntityKind, id: &str) -> Result<(), StoreError> {
    release_unique_keys(db, cp_id, id)?;
    db.execute(
        "DELETE FROM entities WHERE cp_id = ?1 AND kind = ?2 AND id = ?3",
        &[Arg::Text(cp_id), Arg::Text(kind_key(kind)), Arg::Text(id)],
    )?;
    Ok(())
}

fn children(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    field: &str,
    parent_id: &str,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT id FROM entities WHERE cp_id = ?1 AND kind = ?2 AND {} = ?3",
        db.dialect().json_text(&format!("{field}.id"))
    );
    db.query(
        &sql,
        &[
            Arg::Text(cp_id),
            Arg::Text(kind_key(kind)),
            Arg::Text(parent_id),
        ],
    )?
    .iter()
    .map(|r| r.text(0))
    .collect()
}

/// Foreign keys must point at existing entities of the same control plane.
fn check_references(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    value: &Value,
) -> Result<(), StoreError> {
    let refs = kind.foreign_keys();
    for (field, target) in refs {
        let Some(id) = value
            .get(*field)
            .and_then(|f| f.get("id"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let found = db.query_opt(
            "SELECT 1 FROM entities WHERE cp_id = ?1 AND kind = ?2 AND id = ?3",
            &[
                Arg::Text(cp_id),
                Arg::Text(kind_key(*target)),
                Arg::Text(id),
            ],
        )?;
        if found.is_none() {
            return Err(StoreError::ForeignKey(
                format!(
                    "the foreign key '{{id=\"{id}\"}}' does not reference an existing '{}' entity.",
                    target.collection()
                ),
                [((*field).to_owned(), json!({"id": id}))]
                    .into_iter()
                    .collect(),
            ));
        }
    }
    Ok(())
}

/// The unique fields of an entity as (field, stored value, shown value).
fn unique_keys(kind: EntityKind, value: &Value) -> Vec<(String, String, Value)> {
    let str_field = |f: &str| -> Option<(String, String, Value)> {
        let s = value.get(f)?.as_str()?;
        Some((f.to_owned(), s.to_owned(), json!(s)))
    };
    match kind {
        EntityKind::Service | EntityKind::Route => str_field("name").into_iter().collect(),
        EntityKind::Consumer => [str_field("username"), str_field("custom_id")]
            .into_iter()
            .flatten()
            .collect(),
        // The key is a secret: it is never echoed back in an error.
        EntityKind::KeyAuth => str_field("key")
            .map(|(f, s, _)| (f, s, json!(crate::plugins::MASK)))
            .into_iter()
            .collect(),
        EntityKind::Plugin => {
            let fk = |f: &str| {
                value
                    .get(f)
                    .and_then(|v| v.get("id"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let scope = json!({
                "name": value["name"],
                "service": fk("service").as_str().map(|id| json!({"id": id})),
                "route": fk("route").as_str().map(|id| json!({"id": id})),
                "consumer": fk("consumer").as_str().map(|id| json!({"id": id})),
                "instance_name": value.get("instance_name").cloned().unwrap_or(Value::Null),
            });
            let mut keys = vec![("cache_key".to_owned(), scope.to_string(), scope)];
            keys.extend(str_field("instance_name"));
            keys
        }
    }
}

fn claim_unique_keys(
    db: &dyn Db,
    cp_id: &str,
    kind: EntityKind,
    value: &Value,
) -> Result<(), StoreError> {
    let id = value["id"].as_str().unwrap_or_default();
    for (field, stored, shown) in unique_keys(kind, value) {
        let key = [
            Arg::Text(cp_id),
            Arg::Text(kind_key(kind)),
            Arg::Text(&field),
            Arg::Text(&stored),
            Arg::Text(id),
        ];
        let owner = db.query_opt(
            "SELECT entity_id FROM unique_keys WHERE cp_id = ?1 AND kind = ?2 AND field = ?3 AND value = ?4",
            &key[..4],
        )?;
        if owner
            .map(|o| o.text(0))
            .transpose()?
            .is_some_and(|o| o != id)
        {
            return Err(unique_error(&field, &shown));
        }
        db.execute(
            "INSERT INTO unique_keys (cp_id, kind, field, value, entity_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (cp_id, kind, field, value) DO UPDATE SET entity_id = excluded.entity_id",
            &key,
        )?;
    }
    Ok(())
}

fn release_unique_keys(db: &dyn Db, cp_id: &str, id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM unique_keys WHERE cp_id = ?1 AND entity_id = ?2",
        &[Arg::Text(cp_id), Arg::Text(id)],
    )?;
    Ok(())
}

/// Kong's `UNIQUE violation detected on '{name="svc"}'`; a plugin scope lists its fields.
fn unique_error(field: &str, shown: &Value) -> StoreError {
    let fields: Map<String, Value> = match (field, shown) {
        ("cache_key", Value::Object(scope)) => scope.clone(),
        _ => [(field.to_owned(), shown.clone())].into_iter().collect(),
    };
    let text = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", lua_value(v)))
        .collect::<Vec<_>>()
        .join(",");
    StoreError::Unique(text, fields)
}

fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", lua_value(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}
