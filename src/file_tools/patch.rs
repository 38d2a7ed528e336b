//! Owns `gantry file patch`: decK's patches. `--selector` JSONPath plus `--value key:json`
//! (an empty json removes the key; a bare JSON array `--value '["x"]'` appends to selected
//! arrays), or patch files `{_format_version, patches: [{selectors, values, remove}]}`.
//! Values are set on selected objects (appended on selected arrays); other nodes are skipped.

use serde_json::{Map, Value};

use super::document::{self, DocumentError};
use super::jsonpath::{self, PathError, Selector};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Selector(#[from] PathError),
    #[error(
        "failed parsing '--value' entry; expected '--value' entry to have format 'key:json-string', got: '{0}'"
    )]
    ValueShape(String),
    #[error(
        "failed parsing '--value' entry; expected '--value' entry to have format 'key:json-string', failed parsing json-string in '{0}' (did you forget to wrap a json-string-value in quotes?)"
    )]
    ValueJson(String),
    #[error("{0}")]
    PatchFile(String),
    #[error("'--selector' and '--value' must be used together")]
    SelectorWithoutValue,
}

/// One patch: where, what to set (on objects) or append (on arrays), and what to remove.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub selectors: Vec<String>,
    pub object_values: Map<String, Value>,
    pub array_values: Vec<Value>,
    pub remove: Vec<String>,
}

impl Patch {
    /// From the command line's `--selector` and `--value` flags.
    pub fn from_flags(selectors: &[String], values: &[String]) -> Result<Self, PatchError> {
        let mut patch = Patch {
            selectors: selectors.to_vec(),
            ..Patch::default()
        };
        for raw in values {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(Value::Array(items)) => {
                        patch.array_values.extend(items);
                        continue;
                    }
                    _ => return Err(PatchError::ValueJson(raw.clone())),
                }
            }
            let (key, json) = raw
                .split_once(':')
                .ok_or_else(|| PatchError::ValueShape(raw.clone()))?;
            let json = json.trim();
            if json.is_empty() {
                patch.remove.push(key.to_owned());
            } else {
                let v =
                    serde_json::from_str(json).map_err(|_| PatchError::ValueJson(raw.clone()))?;
                patch.object_values.insert(key.to_owned(), v);
            }
        }
        if !patch.selectors.is_empty() && patch.is_empty() {
            return Err(PatchError::SelectorWithoutValue);
        }
        for s in &patch.selectors {
            Selector::parse(s)?;
        }
        Ok(patch)
    }

    fn is_empty(&self) -> bool {
        self.object_values.is_empty() && self.array_values.is_empty() && self.remove.is_empty()
    }

    /// Applies the patch to every node its selectors pick.
    pub fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        if self.is_empty() {
            return Ok(());
        }
        let default = ["$".to_owned()];
        let sources = if self.selectors.is_empty() {
            &default[..]
        } else {
            &self.selectors[..]
        };
        let mut locations = Vec::new();
        for s in sources {
            locations.extend(Selector::parse(s)?.locate(doc));
        }
        for loc in locations {
            match jsonpath::get_mut(doc, &loc) {
                Some(Value::Array(items)) if !self.array_values.is_empty() => {
                    items.extend(self.array_values.iter().cloned());
                }
                Some(Value::Object(obj)) if self.array_values.is_empty() => {
                    for (k, v) in &self.object_values {
                        obj.insert(k.clone(), v.clone());
                    }
                    for k in &self.remove {
                        obj.shift_remove(k);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parses a patch file's content; `file` names it in errors.
pub fn parse_patch_file(file: &str, doc: &Value) -> Result<Vec<Patch>, PatchError> {
    let bad = |m: String| PatchError::PatchFile(format!("failed to parse '{file}': {m}"));
    if let Some(v) = doc.get("_format_version") {
        let ok = v.as_str().is_some_and(|s| {
            s.split('.').count() <= 2 && s.split('.').all(|p| p.parse::<u64>().is_ok())
        });
        if !ok {
            return Err(bad(format!(
                "{file}: has an invalid _format_version specified; expected field '._format_version' to be a string in 'x.y' format"
            )));
        }
    }
    let patches = match doc.get("patches") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad(format!("{file}: field 'patches' is not an array"))),
    };
    let mut out = Vec::new();
    for (i, p) in patches.iter().enumerate() {
        let Some(p) = p.as_object() else { continue };
        if p.get("values").is_none() && p.get("remove").is_none() {
            continue;
        }
        let crumb = format!("{file}: patches[{i}]");
        let selectors = match p.get("selectors") {
            None | Some(Value::Null) => vec!["$".to_owned()],
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return Err(bad(format!("{crumb}.selectors is not a string-array"))),
        };
        for (j, s) in selectors.iter().enumerate() {
            Selector::parse(s).map_err(|e| {
                bad(format!(
                    "{crumb}.selectors[{j}] is not a valid JSONpath expression; {}",
                    e.reason
                ))
            })?;
        }
        let mut patch = Patch {
            selectors,
            ..Patch::default()
        };
        match p.get("values") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => patch.object_values = m.clone(),
            Some(Value::Array(a)) => patch.array_values = a.clone(),
            Some(_) => {
                return Err(bad(format!(
                    "{crumb}.values is neither an object nor an array"
                )));
            }
        }
        match p.get("remove") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                patch.remove = a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
            }
            Some(_) => return Err(bad(format!("{crumb}.remove is not an array"))),
        }
        if let Some(k) = patch
            .remove
            .iter()
            .find(|k| patch.object_values.contains_key(*k))
        {
            return Err(bad(format!(
                "{crumb} is trying to change and remove '{k}' at the same time"
            )));
        }
        out.push(patch);
    }
    Ok(out)
}

/// Reads and parses a patch file.
pub fn read_patch_file(file: &str) -> Result<Vec<Patch>, PatchError> {
    let doc = document::read(file)?;
    parse_patch_file(file, &doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        json!({"services": [{"name": "a", "_ignore": ["x"], "_comment": "c"}, {"name": "b"}]})
    }

    fn flags(sel: &str, values: &[&str]) -> Patch {
        Patch::from_flags(
            &[sel.to_owned()],
            &values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn values_set_and_empty_values_remove_like_decks_examples() {
        let mut d = doc();
        flags(
            "$..services[*]",
            &["read_timeout:10000", "_comment:\"injected\""],
        )
        .apply(&mut d)
        .unwrap();
        assert_eq!(
            d["services"][1],
            json!({"name": "b", "read_timeout": 10000, "_comment": "injected"})
        );
        flags("$..services[*]", &["_ignore:", "_comment:"])
            .apply(&mut d)
            .unwrap();
        assert_eq!(
            d["services"][0],
            json!({"name": "a", "read_timeout": 10000})
        );
    }

    #[test]
    fn arrays_are_appended_to_and_objects_skipped() {
        let mut d = doc();
        flags("$.services[0]._ignore", &["[\"y\", 2]"])
            .apply(&mut d)
            .unwrap();
        assert_eq!(d["services"][0]["_ignore"], json!(["x", "y", 2]));
        // An array value on an object selection changes nothing.
        let before = d.clone();
        flags("$.services[*]", &["[1]"]).apply(&mut d).unwrap();
        assert_eq!(d, before);
    }

    #[test]
    fn bad_values_name_the_entry() {
        let e = Patch::from_flags(&["$".into()], &["read_timeout=1".into()]).unwrap_err();
        assert!(e.to_string().contains("got: 'read_timeout=1'"), "{e}");
        let e = Patch::from_flags(&["$".into()], &["name:bare".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("did you forget to wrap a json-string-value in quotes?"),
            "{e}"
        );
    }

    #[test]
    fn patch_files_apply_in_order_and_refuse_contradictions() {
        let file = json!({"_format_version": "1.0", "patches": [
            {"selectors": ["$..services[*]"], "values": {"read_timeout": 10000}, "remove": ["_ignore"]},
            {"selectors": ["$.services[?(@.name == 'b')]"], "values": {"port": 81}}
        ]});
        let patches = parse_patch_file("p.yaml", &file).unwrap();
        let mut d = doc();
        for p in &patches {
            p.apply(&mut d).unwrap();
        }
        assert_eq!(
            d["services"][0],
            json!({"name": "a", "_comment": "c", "read_timeout": 10000})
        );
        assert_eq!(
            d["services"][1],
            json!({"name": "b", "read_timeout": 10000, "port": 81})
        );
        let bad = json!({"patches": [{"values": {"a": 1}, "remove": ["a"]}]});
        let e = parse_patch_file("p.yaml", &bad).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "p.yaml: patches[0] is trying to change and remove 'a' at the same time"
            ),
            "{e}"
        );
        let bad = json!({"patches": [{"selectors": "$", "values": {}}]});
        assert!(
            parse_patch_file("p.yaml", &bad)
                .unwrap_err()
                .to_string()
                .contains("selectors is not a string-array")
        );
    }
}
