//! Owns resolving references to services, routes and consumers that no state file defines
//! (decK's `apply` of a plugin file naming a service already on the gateway). Such an entity
//! is found among the live entities in scope, or, outside the select tags, only through the
//! file's `_info.default_lookup_tags`. Found entities are referenced, never changed.

use std::collections::HashMap;

use embedded_gateway::model::{Consumer, EntityKind, Route, Service};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::Value;

use crate::client::AdminClient;
use crate::config::check::External;
use crate::config::{Diagnostic, Diagnostics};
use crate::plan::Mode;
use crate::reconcile::Target;
use crate::state::Loaded;

/// References resolved against the gateway.
#[derive(Debug, Default)]
pub struct Resolved {
    /// (kind, reference key) → the live id.
    pub ids: HashMap<(EntityKind, String), String>,
    /// The referenced live entities, for the plan to know them by natural key.
    pub refs: ConfigSnapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error("the admin API returned an invalid {kind}: {reason}")]
    BadEntity { kind: &'static str, reason: String },
    /// Each reference that could not be resolved, at its place in the files.
    #[error("{0}")]
    Unresolved(Diagnostics),
}

/// One entity a reference may name: its id, name-like keys, and its body.
#[derive(Clone)]
enum Found {
    Service(Service),
    Route(Route),
    Consumer(Consumer),
}

impl Found {
    fn id(&self) -> &str {
        match self {
            Found::Service(s) => &s.id,
            Found::Route(r) => &r.id,
            Found::Consumer(c) => &c.id,
        }
    }

    /// True when the reference key (`name` or `id:<id>`) names this entity.
    fn matches(&self, key: &str) -> bool {
        if let Some(id) = key.strip_prefix("id:") {
            return self.id() == id;
        }
        match self {
            Found::Service(s) => s.name.as_deref() == Some(key),
            Found::Route(r) => r.name.as_deref() == Some(key),
            Found::Consumer(c) => {
                c.username.as_deref() == Some(key) || c.custom_id.as_deref() == Some(key)
            }
        }
    }

    fn add_to(self, set: &mut ConfigSnapshot) {
        let id = self.id().to_owned();
        match self {
            Found::Service(s) if !set.services.iter().any(|e| e.id == id) => set.services.push(s),
            Found::Route(r) if !set.routes.iter().any(|e| e.id == id) => set.routes.push(r),
            Found::Consumer(c) if !set.consumers.iter().any(|e| e.id == id) => {
                set.consumers.push(c)
            }
            _ => {}
        }
    }
}

/// The keys a reference may use for each entity of a set (`name`, consumer `username` and
/// `custom_id`, `id:<id>`), built once so that resolving stays linear in the set's size.
struct KeyIndex<'a> {
    set: &'a ConfigSnapshot,
    /// (kind, is an id, name or id) → position in its list.
    keys: HashMap<(EntityKind, bool, &'a str), usize>,
}

impl<'a> KeyIndex<'a> {
    fn of(set: &'a ConfigSnapshot) -> Self {
        let mut keys = HashMap::new();
        let mut put = |kind, id: &'a str, names: [Option<&'a str>; 2], i: usize| {
            keys.entry((kind, true, id)).or_insert(i);
            for n in names.into_iter().flatten() {
                keys.entry((kind, false, n)).or_insert(i);
            }
        };
        for (i, e) in set.services.iter().enumerate() {
            put(EntityKind::Service, &e.id, [e.name.as_deref(), None], i);
        }
        for (i, e) in set.routes.iter().enumerate() {
            put(EntityKind::Route, &e.id, [e.name.as_deref(), None], i);
        }
        for (i, e) in set.consumers.iter().enumerate() {
            let names = [e.username.as_deref(), e.custom_id.as_deref()];
            put(EntityKind::Consumer, &e.id, names, i);
        }
        Self { set, keys }
    }

    /// The entity a reference key (`name` or `id:<id>`) names, if the set has it.
    fn find(&self, kind: EntityKind, key: &str) -> Option<Found> {
        let slot = match key.strip_prefix("id:") {
            Some(id) => (kind, true, id),
            None => (kind, false, key),
        };
        let i = *self.keys.get(&slot)?;
        Some(match kind {
            EntityKind::Service => Found::Service(self.set.services[i].clone()),
            EntityKind::Route => Found::Route(self.set.routes[i].clone()),
            _ => Found::Consumer(self.set.consumers[i].clone()),
        })
    }
}

/// Resolves every external reference of `loaded`. `live` is the state in scope (read with
/// the select tags); `mode` decides whether an in-scope entity missing from the files may be
/// referenced (`apply`) or would be deleted by the same run (`sync`).
pub async fn resolve(
    client: &AdminClient,
    target: &Target,
    loaded: &Loaded,
    select_tags: &[String],
    skip_consumers: bool,
    live: &ConfigSnapshot,
    mode: Mode,
) -> Result<Resolved, ReferenceError> {
    let mut out = Resolved::default();
    let mut problems = Vec::new();
    let lookup_tags = &loaded.document.info.default_lookup_tags;
    let mut lookups: HashMap<EntityKind, Vec<Found>> = HashMap::new();
    let live_keys = KeyIndex::of(live);
    for ext in &loaded.external {
        if skip_consumers && ext.kind == EntityKind::Consumer {
            // Consumer-scoped plugins are left out of the plan with the consumers.
            continue;
        }
        if let Some(found) = live_keys.find(ext.kind, &ext.key) {
            if mode == Mode::Sync {
                problems.push(problem(ext, format!(
                    "{} {} is on the gateway but in none of the files, so this sync would delete it; add it to the files, or use `apply`",
                    ext.kind.display_name(),
                    ext.shown
                )));
                continue;
            }
            out.ids
                .insert((ext.kind, ext.key.clone()), found.id().to_owned());
            found.add_to(&mut out.refs);
            continue;
        }
        let tags = match ext.kind {
            EntityKind::Service => &lookup_tags.services,
            EntityKind::Route => &lookup_tags.routes,
            _ => &lookup_tags.consumers,
        };
        if !tags.is_empty() {
            let candidates = match lookups.entry(ext.kind) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(fetch(client, target, ext.kind, tags).await?)
                }
            };
            if let Some(found) = candidates.iter().find(|f| f.matches(&ext.key)) {
                out.ids
                    .insert((ext.kind, ext.key.clone()), found.id().to_owned());
                found.clone().add_to(&mut out.refs);
                continue;
            }
        }
        problems.push(problem(ext, not_found(ext, target, select_tags, tags)));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ReferenceError::Unresolved(Diagnostics(problems)))
    }
}

fn problem(ext: &External, message: String) -> Diagnostic {
    Diagnostic {
        message,
        ..ext.at.clone()
    }
}

fn not_found(ext: &External, target: &Target, select: &[String], lookup: &[String]) -> String {
    let what = format!("{} {}", ext.kind.display_name(), ext.shown);
    let plural = ext.kind.collection().replace('-', "_");
    if select.is_empty() {
        return format!("{what} not found in the files or on {}", target.display());
    }
    let mut msg = format!(
        "{what} not found in the files or among the entities tagged {select:?} on {}",
        target.display()
    );
    if lookup.is_empty() {
        msg.push_str(&format!(
            "; to reference an entity outside the select tags, list its tags in `_info.default_lookup_tags.{plural}`"
        ));
    } else {
        msg.push_str(&format!(" or tagged {lookup:?}"));
    }
    msg
}

/// Every entity of `kind` carrying all `tags`.
async fn fetch(
    client: &AdminClient,
    target: &Target,
    kind: EntityKind,
    tags: &[String],
) -> Result<Vec<Found>, ReferenceError> {
    let path = format!("{}/{}", target.prefix(), kind.collection());
    let items = client.list_all(&path, Some(&tags.join(","))).await?;
    items.into_iter().map(|v| parse(kind, v)).collect()
}

fn parse(kind: EntityKind, v: Value) -> Result<Found, ReferenceError> {
    let bad = |e: serde_json::Error| ReferenceError::BadEntity {
        kind: kind.display_name(),
        reason: e.to_string(),
    };
    Ok(match kind {
        EntityKind::Service => Found::Service(serde_json::from_value(v).map_err(bad)?),
        EntityKind::Route => Found::Route(serde_json::from_value(v).map_err(bad)?),
        _ => Found::Consumer(serde_json::from_value(v).map_err(bad)?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(id: &str, name: &str) -> Service {
        serde_json::from_value(json!({"id": id, "name": name, "host": "h"})).unwrap()
    }

    #[test]
    fn names_and_ids_are_separate_keys() {
        let set = ConfigSnapshot {
            // A name that looks like another entity's id never shadows that id.
            services: vec![service("id-1", "id-2"), service("id-2", "svc")],
            ..ConfigSnapshot::default()
        };
        let idx = KeyIndex::of(&set);
        let id_of = |key: &str| {
            idx.find(EntityKind::Service, key)
                .map(|f| f.id().to_owned())
        };
        assert_eq!(id_of("id:id-2").as_deref(), Some("id-2"));
        assert_eq!(id_of("id-2").as_deref(), Some("id-1"));
        assert_eq!(id_of("svc").as_deref(), Some("id-2"));
        assert_eq!(id_of("nope"), None);
        assert_eq!(
            idx.find(EntityKind::Route, "svc")
                .map(|f| f.id().to_owned()),
            None
        );
    }
}
