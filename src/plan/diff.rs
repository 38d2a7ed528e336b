//! Owns field-level differences between two entity bodies: which dotted paths changed, and
//! from what to what. Only leaves are compared, so an update shows only what changed.

use std::collections::BTreeMap;

use serde_json::Value;

/// One changed leaf: `config.targets[0].model.name`, old and new (None = absent).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// Every leaf path whose value differs between `old` and `new`, in path order.
/// Tags compare as sets. `id`, `created_at` and `updated_at` never count.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    flatten("", &normalized(old), &mut a);
    flatten("", &normalized(new), &mut b);
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            let (o, n) = (a.get(p), b.get(p));
            (o != n).then(|| FieldChange {
                path: p.clone(),
                old: o.cloned(),
                new: n.cloned(),
            })
        })
        .collect()
}

fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(map) = &mut v {
        for f in ["id", "created_at", "updated_at"] {
            map.remove(f);
        }
        if let Some(Value::Array(tags)) = map.get_mut("tags") {
            tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    v
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() && !is_scalar_list(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        _ => {
            out.insert(prefix.to_owned(), v.clone());
        }
    }
}

/// Lists of scalars (tags, paths, methods) read best as one value.
fn is_scalar_list(items: &[Value]) -> bool {
    items.iter().all(|v| !v.is_object() && !v.is_array())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_changed_leaf_is_reported() {
        let old = json!({"id":"a","name":"p","config":{"targets":[{"model":{"name":"gpt-4o-mini","provider":"openai"}}]}});
        let new = json!({"id":"b","name":"p","config":{"targets":[{"model":{"name":"gpt-4.1-mini","provider":"openai"}}]}});
        let changes = changed_fields(&old, &new);
        assert_eq!(
            changes,
            vec![FieldChange {
                path: "config.targets[0].model.name".into(),
                old: Some(json!("gpt-4o-mini")),
                new: Some(json!("gpt-4.1-mini")),
            }]
        );
    }

    #[test]
    fn tags_compare_as_sets_and_ids_never_count() {
        let old = json!({"id":"1","updated_at":5,"tags":["b","a"]});
        let new = json!({"id":"2","updated_at":9,"tags":["a","b"]});
        assert!(changed_fields(&old, &new).is_empty());
    }

    #[test]
    fn added_and_removed_fields_show_as_absent() {
        let changes = changed_fields(&json!({"path":"/a"}), &json!({"host":"x"}));
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].path, "host");
        assert_eq!(changes[0].old, None);
        assert_eq!(changes[1].path, "path");
        assert_eq!(changes[1].new, None);
    }
}
