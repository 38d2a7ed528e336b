//! Owns the plan: the pure-data difference between a desired and a live entity set, computed
//! without I/O. Entities are matched by natural key (service and route name, consumer username,
//! plugin name + scope + instance_name, credential key); ids and timestamps never count as drift.

pub mod diff;
pub mod fingerprint;
pub mod render;

use std::collections::{BTreeMap, HashMap, HashSet};

use embedded_gateway::model::{EntityKind, ForeignKey};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `apply` creates and updates; `sync` also deletes in-scope entities absent from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Apply,
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One change to one entity. `old`/`new` are the entity bodies as the admin API takes them
/// (ids set, timestamps stripped); secrets are still in them, so render through [`render`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub kind: EntityKind,
    /// decK's friendly name: `basic-llm-routing`, `key-auth (basic-llm-routing-auth)`, …
    pub name: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// A whole plan, in execution order: deletes children first (except those of entities a kept
/// entity still references, which run last), then updates and creates parents first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub mode: Mode,
    /// The control plane's revision the live state was read at; the gateway refuses the plan
    /// if it changed since.
    pub base_revision: Option<u64>,
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A natural key: what identifies an entity across the file and the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key(EntityKind, String);

/// One side (desired or live) indexed by natural key, with ids resolvable to keys.
struct Indexed {
    by_key: BTreeMap<Key, Value>,
    key_of_id: HashMap<(EntityKind, String), String>,
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn fk_id(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(|f| f.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The natural keys of a set's services, routes and consumers, as `((kind, id), key)`.
fn parent_keys(set: &ConfigSnapshot) -> Vec<((EntityKind, String), String)> {
    let services = set.services.iter().map(|s| {
        let key = s.name.clone().unwrap_or_else(|| s.id.clone());
        ((EntityKind::Service, s.id.clone()), key)
    });
    let routes = set.routes.iter().map(|r| {
        let key = r.name.clone().unwrap_or_else(|| r.id.clone());
        ((EntityKind::Route, r.id.clone()), key)
    });
    let consumers = set.consumers.iter().map(|c| {
        let key = c
            .username
            .clone()
            .or_else(|| c.custom_id.clone().map(|id| format!("custom_id:{id}")))
            .unwrap_or_else(|| c.id.clone());
        ((EntityKind::Consumer, c.id.clone()), key)
    });
    services.chain(routes).chain(consumers).collect()
}

impl Indexed {
    /// Indexes `set`; `refs` are entities outside it that its foreign keys may point at
    /// (live entities a file references without defining), known by key but never compared.
    fn new(set: &ConfigSnapshot, refs: &ConfigSnapshot) -> Self {
        let mut idx = Indexed {
            by_key: BTreeMap::new(),
            key_of_id: parent_keys(refs).into_iter().collect(),
        };
        let keys = parent_keys(set);
        let mut put = |kind: EntityKind, v: Value, key: String| {
            let id = str_field(&v, "id").unwrap_or_default().to_owned();
            idx.key_of_id.insert((kind, id), key.clone());
            idx.by_key.insert(Key(kind, key), v);
        };
        let mut keys = keys.into_iter();
        for s in &set.services {
            let (_, key) = keys.next().expect("one key per service");
            put(EntityKind::Service, to_value(s), key);
        }
        for r in &set.routes {
            let (_, key) = keys.next().expect("one key per route");
            put(EntityKind::Route, to_value(r), key);
        }
        for c in &set.consumers {
            let (_, key) = keys.next().expect("one key per consumer");
            put(EntityKind::Consumer, to_value(c), key);
        }
        for k in &set.key_auths {
            put(EntityKind::KeyAuth, to_value(k), k.key.clone());
        }
        // Plugins are keyed by their scope's natural keys, so they are indexed last.
        let plugins: Vec<(Value, String)> = set
            .plugins
            .iter()
            .map(|p| {
                let v = to_value(p);
                let scope = |kind: EntityKind, fk: &Option<ForeignKey>| {
                    fk.as_ref().map(|f| {
                        idx.key_of_id
                            .get(&(kind, f.id.clone()))
                            .cloned()
                            .unwrap_or_else(|| f.id.clone())
                    })
                };
                let key = crate::state::plugin_key(
                    &p.name,
                    scope(EntityKind::Service, &p.service).as_deref(),
                    scope(EntityKind::Route, &p.route).as_deref(),
                    scope(EntityKind::Consumer, &p.consumer).as_deref(),
                    p.instance_name.as_deref(),
                );
                (v, key)
            })
            .collect();
        for (v, key) in plugins {
            let id = str_field(&v, "id").unwrap_or_default().to_owned();
            idx.key_of_id.insert((EntityKind::Plugin, id), key.clone());
            idx.by_key.insert(Key(EntityKind::Plugin, key), v);
        }
        idx
    }

    /// Replaces foreign-key ids with the referenced entity's natural key, so two sides with
    /// different ids compare equal when they mean the same thing.
    fn comparable(&self, kind: EntityKind, v: &Value) -> Value {
        let mut v = v.clone();
        if let Value::Object(map) = &mut v {
            for f in ["id", "created_at", "updated_at"] {
                map.remove(f);
            }
            for (field, target) in kind.foreign_keys() {
                let id = map.get(*field).and_then(|f| f.get("id"));
                if let Some(id) = id.and_then(Value::as_str).map(str::to_owned) {
                    let key = self
                        .key_of_id
                        .get(&(*target, id.clone()))
                        .cloned()
                        .unwrap_or(id);
                    map.insert((*field).to_owned(), serde_json::json!({ "key": key }));
                }
            }
            if let Some(Value::Array(tags)) = map.get_mut("tags") {
                tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                tags.dedup();
            }
        }
        v
    }
}

/// decK's friendly name for an entity in event lines.
fn friendly_name(kind: EntityKind, v: &Value, idx: &Indexed) -> String {
    let scope_name = |field: &str, target: EntityKind| {
        fk_id(v, field).map(|id| {
            idx.key_of_id
                .get(&(target, id.clone()))
                .cloned()
                .unwrap_or(id)
        })
    };
    match kind {
        EntityKind::Service | EntityKind::Route => str_field(v, "name")
            .or_else(|| str_field(v, "id"))
            .unwrap_or_default()
            .to_owned(),
        EntityKind::Consumer => str_field(v, "username")
            .or_else(|| str_field(v, "custom_id"))
            .or_else(|| str_field(v, "id"))
            .unwrap_or_default()
            .to_owned(),
        EntityKind::KeyAuth => match scope_name("consumer", EntityKind::Consumer) {
            Some(c) => format!("for consumer {c}"),
            None => String::new(),
        },
        EntityKind::Plugin => {
            let mut name = str_field(v, "name").unwrap_or_default().to_owned();
            if let Some(i) = str_field(v, "instance_name") {
                name.push_str(&format!(" ({i})"));
            }
            let scopes: Vec<String> = [
                ("service", EntityKind::Service),
                ("route", EntityKind::Route),
                ("consumer", EntityKind::Consumer),
            ]
            .iter()
            .filter_map(|(f, k)| scope_name(f, *k).map(|n| format!("{f} {n}")))
            .collect();
            if scopes.is_empty() {
                name.push_str(" (global)");
            } else {
                name.push_str(" for ");
                name.push_str(&scopes.join(" and "));
            }
            name
        }
    }
}

/// Computes the plan that takes `live` to `desired`. Both sides must already be filtered to
/// the scope (select tags, control plane); nothing outside them is considered.
pub fn compute(desired: &ConfigSnapshot, live: &ConfigSnapshot, mode: Mode) -> Plan {
    compute_with_refs(desired, live, &ConfigSnapshot::default(), mode)
}

/// Like [`compute`], where `desired` may point at `refs`: live services, routes and consumers
/// the files reference without defining them. They are matched by their natural keys on both
/// sides and never created, changed or deleted.
pub fn compute_with_refs(
    desired: &ConfigSnapshot,
    live: &ConfigSnapshot,
    refs: &ConfigSnapshot,
    mode: Mode,
) -> Plan {
    let want = Indexed::new(desired, refs);
    let have = Indexed::new(live, refs);

    // Desired ids become live ids where an entity already exists, so children point at the
    // entity the gateway actually has.
    let mut id_map: HashMap<(EntityKind, String), String> = HashMap::new();
    for (key, v) in &want.by_key {
        if let Some(live_v) = have.by_key.get(key)
            && let (Some(d), Some(l)) = (str_field(v, "id"), str_field(live_v, "id"))
        {
            id_map.insert((key.0, d.to_owned()), l.to_owned());
        }
    }

    let mut upserts = Vec::new();
    for kind in EntityKind::ALL {
        // Within a kind, updates run before creates: an update may free a unique value
        // (custom_id, name) that a create takes.
        let first_update = upserts.len();
        for (key, v) in want.by_key.range(Key(kind, String::new())..) {
            if key.0 != kind {
                break;
            }
            let old = have.by_key.get(key);
            // Most entities are unchanged: compare first, build the change only when needed.
            if old.is_some_and(|old| want.comparable(kind, v) == have.comparable(kind, old)) {
                continue;
            }
            let mut new = v.clone();
            remap_ids(kind, &mut new, &id_map);
            strip_timestamps(&mut new);
            let name = friendly_name(kind, v, &want);
            match old {
                None => upserts.push(Change {
                    action: Action::Create,
                    kind,
                    name,
                    id: str_field(&new, "id").unwrap_or_default().to_owned(),
                    old: None,
                    new: Some(new),
                }),
                Some(old) => {
                    let mut old = old.clone();
                    strip_timestamps(&mut old);
                    upserts.push(Change {
                        action: Action::Update,
                        kind,
                        name,
                        id: str_field(&new, "id").unwrap_or_default().to_owned(),
                        old: Some(old),
                        new: Some(new),
                    });
                }
            }
        }
        upserts[first_update..].sort_by_key(|c| c.action != Action::Update);
    }

    let mut deletes = Vec::new();
    if mode == Mode::Sync {
        for kind in EntityKind::ALL.into_iter().rev() {
            for (key, v) in have.by_key.range(Key(kind, String::new())..) {
                if key.0 != kind {
                    break;
                }
                if !want.by_key.contains_key(key) {
                    let mut old = v.clone();
                    strip_timestamps(&mut old);
                    deletes.push(Change {
                        action: Action::Delete,
                        kind,
                        name: friendly_name(kind, v, &have),
                        id: str_field(v, "id").unwrap_or_default().to_owned(),
                        old: Some(old),
                        new: None,
                    });
                }
            }
        }
    }

    // Deletes run first, so a name, custom_id or plugin instance_name freed by one can be
    // taken by a create in the same batch; a delete of an entity that a kept entity still
    // references (a route moving to another service) waits until that entity has moved.
    let kept_refs = kept_references(&want, &have);
    let (late, mut changes): (Vec<Change>, Vec<Change>) = deletes
        .into_iter()
        .partition(|d| kept_refs.contains(&(d.kind, d.id.clone())));
    changes.extend(upserts);
    changes.extend(late);
    Plan {
        mode,
        base_revision: Some(live.revision),
        changes,
    }
}

/// `(kind, id)` of every live entity that a live entity staying in the plan points at.
fn kept_references(want: &Indexed, have: &Indexed) -> HashSet<(EntityKind, String)> {
    have.by_key
        .iter()
        .filter(|(key, _)| want.by_key.contains_key(key))
        .flat_map(|(key, v)| {
            key.0
                .foreign_keys()
                .iter()
                .filter_map(|(field, target)| Some((*target, fk_id(v, field)?)))
        })
        .collect()
}

fn strip_timestamps(v: &mut Value) {
    if let Value::Object(map) = v {
        map.remove("created_at");
        map.remove("updated_at");
    }
}

fn remap_ids(kind: EntityKind, v: &mut Value, id_map: &HashMap<(EntityKind, String), String>) {
    let Value::Object(map) = v else { return };
    if let Some(Value::String(id)) = map.get_mut("id")
        && let Some(live) = id_map.get(&(kind, id.clone()))
    {
        *id = live.clone();
    }
    for (field, target) in kind.foreign_keys() {
        if let Some(Value::Object(fk)) = map.get_mut(*field)
            && let Some(Value::String(id)) = fk.get_mut("id")
            && let Some(live) = id_map.get(&(*target, id.clone()))
        {
            *id = live.clone();
        }
    }
}

#[cfg(test)]
mod tests;
