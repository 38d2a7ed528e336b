//! Owns `gantry file add-tags`, `remove-tags` and `list-tags`: tag hygiene on a decK file.
//! Without `--selector`, every Kong entity that can carry tags is selected, wherever decK's
//! format lets it sit (top level or nested under its parent), as decK does.

use serde_json::Value;

use super::jsonpath::{self, Location, PathError, Selector};

/// Where taggable entities live in a decK file (decK's entity pointers).
pub const TAG_OWNERS: &[&str] = &[
    "$.acls[*]",
    "$.consumers[*].acls[*]",
    "$.basicauth_credentials[*]",
    "$.consumers[*].basicauth_credentials[*]",
    "$.ca_certificates[*]",
    "$.certificates[*]",
    "$.consumer_group_consumers[*]",
    "$.consumer_group_plugins[*]",
    "$.consumer_groups[*].consumer_group_plugins[*]",
    "$.consumer_groups[*]",
    "$.consumers[*]",
    "$.document_objects[*]",
    "$.services[*].document_objects[*]",
    "$.hmacauth_credentials[*]",
    "$.consumers[*].hmacauth_credentials[*]",
    "$.jwt_secrets[*]",
    "$.consumers[*].jwt_secrets[*]",
    "$.keyauth_credentials[*]",
    "$.consumers[*].keyauth_credentials[*]",
    "$.mtls_auth_credentials[*]",
    "$.consumers[*].mtls_auth_credentials[*]",
    "$.ca_certificates[*].mtls_auth_credentials[*]",
    "$.oauth2_credentials[*]",
    "$.consumers[*].oauth2_credentials[*]",
    "$.plugins[*]",
    "$.routes[*].plugins[*]",
    "$.services[*].plugins[*]",
    "$.services[*].routes[*].plugins[*]",
    "$.consumers[*].plugins[*]",
    "$.consumer_groups[*].plugins[*]",
    "$.rbac_role_endpoints[*]",
    "$.rbac_roles[*].rbac_role_endpoints[*]",
    "$.rbac_role_entities[*]",
    "$.rbac_roles[*].rbac_role_entities[*]",
    "$.rbac_roles[*]",
    "$.routes[*]",
    "$.services[*].routes[*]",
    "$.services[*]",
    "$.snis[*]",
    "$.certificates[*].snis[*]",
    "$.targets[*]",
    "$.upstreams[*].targets[*]",
    "$.certificates[*].upstreams[*].targets[*]",
    "$.upstreams[*]",
    "$.certificates[*].upstreams[*]",
    "$.vaults[*]",
    "$.partials[*]",
    "$.keys[*]",
    "$.key_sets[*]",
];

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("failed to set selectors; {0}")]
    Selector(#[from] PathError),
    #[error("no tags to remove")]
    NothingToRemove,
}

/// The objects the selectors pick (the defaults when none), once each, in selector order.
fn owners(doc: &Value, selectors: &[String]) -> Result<Vec<Location>, TagError> {
    let sources: Vec<String> = if selectors.is_empty() {
        TAG_OWNERS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        selectors.to_vec()
    };
    let mut out: Vec<Location> = Vec::new();
    for s in &sources {
        let sel = Selector::parse(s)?;
        for loc in sel.locate(doc) {
            let is_object = jsonpath::get(doc, &loc).is_some_and(Value::is_object);
            if is_object && !out.contains(&loc) {
                out.push(loc);
            }
        }
    }
    Ok(out)
}

/// Adds each tag (in order, once) to every selected entity.
pub fn add_tags(doc: &mut Value, selectors: &[String], tags: &[String]) -> Result<(), TagError> {
    if tags.is_empty() {
        return Ok(());
    }
    for loc in owners(doc, selectors)? {
        let Some(Value::Object(entity)) = jsonpath::get_mut(doc, &loc) else {
            continue;
        };
        if !matches!(entity.get("tags"), Some(Value::Array(_))) {
            entity.insert("tags".into(), Value::Array(Vec::new()));
        }
        if let Some(Value::Array(list)) = entity.get_mut("tags") {
            for t in tags {
                if !list.iter().any(|v| v.as_str() == Some(t)) {
                    list.push(Value::String(t.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Every tag in use on the selected entities, sorted.
pub fn list_tags(doc: &Value, selectors: &[String]) -> Result<Vec<String>, TagError> {
    let mut all = Vec::new();
    for loc in owners(doc, selectors)? {
        if let Some(Value::Array(list)) = jsonpath::get(doc, &loc).and_then(|e| e.get("tags")) {
            all.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// What `remove-tags` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The listed tags.
    Listed,
    /// Every tag except the listed ones (`--keep-only`).
    AllBut,
}

/// Removes tags from the selected entities; empty tag arrays go unless `keep_empty`.
pub fn remove_tags(
    doc: &mut Value,
    selectors: &[String],
    tags: &[String],
    removal: Removal,
    keep_empty: bool,
) -> Result<(), TagError> {
    if removal == Removal::Listed && tags.is_empty() {
        return Err(TagError::NothingToRemove);
    }
    for loc in owners(doc, selectors)? {
        let Some(Value::Object(entity)) = jsonpath::get_mut(doc, &loc) else {
            continue;
        };
        let Some(Value::Array(list)) = entity.get_mut("tags") else {
            continue;
        };
        list.retain(|v| {
            let listed = v.as_str().is_some_and(|s| tags.iter().any(|t| t == s));
            match removal {
                Removal::Listed => !listed,
                Removal::AllBut => listed,
            }
        });
        if list.is_empty() && !keep_empty {
            entity.remove("tags");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file() -> Value {
        json!({
            "_format_version": "3.0",
            "services": [{"name": "s", "tags": ["old"], "routes": [{"name": "r"}], "plugins": [{"name": "p"}]}],
            "consumers": [{"username": "c", "keyauth_credentials": [{"key": "k"}]}],
            "_info": {"select_tags": ["x"]}
        })
    }

    #[test]
    fn add_tags_reaches_every_nested_entity_but_no_metadata() {
        let mut d = file();
        add_tags(&mut d, &[], &["t1".into(), "old".into()]).unwrap();
        assert_eq!(d["services"][0]["tags"], json!(["old", "t1"]));
        assert_eq!(d["services"][0]["routes"][0]["tags"], json!(["t1", "old"]));
        assert_eq!(d["services"][0]["plugins"][0]["tags"], json!(["t1", "old"]));
        assert_eq!(
            d["consumers"][0]["keyauth_credentials"][0]["tags"],
            json!(["t1", "old"])
        );
        assert_eq!(d["_info"], json!({"select_tags": ["x"]}));
    }

    #[test]
    fn selectors_limit_what_is_tagged() {
        let mut d = file();
        add_tags(&mut d, &["$.services[*]".into()], &["t".into()]).unwrap();
        assert_eq!(d["services"][0]["tags"], json!(["old", "t"]));
        assert!(d["services"][0]["routes"][0].get("tags").is_none());
    }

    #[test]
    fn remove_and_keep_only() {
        let mut d = file();
        add_tags(&mut d, &[], &["a".into(), "b".into()]).unwrap();
        remove_tags(&mut d, &[], &["a".into()], Removal::Listed, false).unwrap();
        assert_eq!(d["services"][0]["tags"], json!(["old", "b"]));
        remove_tags(&mut d, &[], &["b".into()], Removal::AllBut, false).unwrap();
        assert_eq!(d["services"][0]["tags"], json!(["b"]));
        remove_tags(&mut d, &[], &["b".into()], Removal::Listed, true).unwrap();
        assert_eq!(d["services"][0]["tags"], json!([]));
        remove_tags(&mut d, &[], &[], Removal::AllBut, false).unwrap();
        assert!(d["services"][0].get("tags").is_none());
        assert!(matches!(
            remove_tags(&mut d, &[], &[], Removal::Listed, false),
            Err(TagError::NothingToRemove)
        ));
    }

    #[test]
    fn list_tags_is_sorted_and_unique() {
        let mut d = file();
        add_tags(
            &mut d,
            &["$.consumers[*]".into()],
            &["z".into(), "old".into()],
        )
        .unwrap();
        assert_eq!(list_tags(&d, &[]).unwrap(), ["old", "z"]);
    }
}
