//! Owns `gantry file merge`: decK's merge of whole files. Top-level arrays are concatenated in
//! file order, other keys are taken from the last file that has them; files must agree on
//! `_transform` and on the major `_format_version`, and the result carries the highest minor.

use serde_json::{Map, Value};

use super::document::{self, DocumentError};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("failed to merge {file}: files are incompatible; {reason}")]
    Incompatible { file: String, reason: String },
}

const VERSION: &str = "_format_version";
const TRANSFORM: &str = "_transform";
const VERSION_SHAPE: &str = "expected field '._format_version' to be a string in 'x.y' format";

/// Major and minor of `_format_version`.
fn version(doc: &Map<String, Value>) -> Result<Option<(u64, u64)>, String> {
    let Some(v) = doc.get(VERSION) else {
        return Ok(None);
    };
    let text = v.as_str().ok_or(VERSION_SHAPE)?;
    let mut parts = text.split('.');
    let major = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or(VERSION_SHAPE)?;
    let minor = match parts.next() {
        Some(p) => p.parse().map_err(|_| VERSION_SHAPE)?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(VERSION_SHAPE.into());
    }
    Ok(Some((major, minor)))
}

fn transform(doc: &Map<String, Value>) -> Result<bool, String> {
    match doc.get(TRANSFORM) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err("expected field '._transform' to be a boolean".into()),
    }
}

fn compatible(merged: &Map<String, Value>, next: &Map<String, Value>) -> Result<(), String> {
    if transform(merged)? != transform(next)? {
        return Err(
            "files with '_transform: true' (default) and '_transform: false' are not compatible"
                .into(),
        );
    }
    match (version(merged)?, version(next)?) {
        (Some((ma, mi)), Some((mb, mi2))) if ma != mb => Err(format!(
            "major versions are incompatible; {ma}.{mi} and {mb}.{mi2}"
        )),
        _ => Ok(()),
    }
}

/// Merges already-read documents; `names` label them in errors.
pub fn merge_documents(docs: Vec<(String, Value)>) -> Result<Value, MergeError> {
    let mut merged = Map::new();
    let mut minor = 0;
    for (i, (name, doc)) in docs.into_iter().enumerate() {
        let Value::Object(doc) = doc else {
            return Err(DocumentError::NotObject { file: name }.into());
        };
        if i == 0 {
            for key in [TRANSFORM, VERSION] {
                if let Some(v) = doc.get(key) {
                    merged.insert(key.to_owned(), v.clone());
                }
            }
        }
        compatible(&merged, &doc).map_err(|reason| MergeError::Incompatible {
            file: name.clone(),
            reason,
        })?;
        if let Ok(Some((_, m))) = version(&doc) {
            minor = minor.max(m);
        }
        for (key, value) in doc {
            match (merged.get_mut(&key), value) {
                (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    if let Ok(Some((major, _))) = version(&merged) {
        if major == 0 {
            merged.remove(VERSION);
        } else {
            merged.insert(VERSION.into(), Value::String(format!("{major}.{minor}")));
        }
    }
    Ok(Value::Object(merged))
}

/// Reads and merges files in order.
pub fn merge_files(files: &[String]) -> Result<Value, MergeError> {
    let mut docs = Vec::new();
    for f in files {
        docs.push((f.clone(), document::read(f)?));
    }
    merge_documents(docs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(docs: &[Value]) -> Result<Value, String> {
        merge_documents(
            docs.iter()
                .enumerate()
                .map(|(i, d)| (format!("f{i}"), d.clone()))
                .collect(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn arrays_concatenate_and_scalars_take_the_last_value() {
        let got = m(&[
            json!({"_format_version": "3.0", "_comment": "a", "services": [{"name": "a"}]}),
            json!({"_format_version": "3.1", "_comment": "b", "services": [{"name": "b"}]}),
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({"_format_version": "3.1", "_comment": "b", "services": [{"name": "a"}, {"name": "b"}]})
        );
    }

    #[test]
    fn incompatible_files_are_refused_by_name() {
        let e = m(&[
            json!({"_format_version": "3.0"}),
            json!({"_format_version": "1.0"}),
        ]);
        assert_eq!(
            e.unwrap_err(),
            "failed to merge f1: files are incompatible; major versions are incompatible; 3.0 and 1.0"
        );
        let e = m(&[json!({}), json!({"_transform": false})]);
        assert!(
            e.unwrap_err()
                .contains("'_transform: false' are not compatible")
        );
    }
}
