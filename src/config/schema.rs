//! Owns checking a parsed state file against `schemas/deck-file.schema.json` (generated from
//! `config::document`), turning every JSON Schema error into a field error with a path.

use std::sync::LazyLock;

use embedded_gateway::plugins::{FieldError, pointer_to_path};
use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind as K};
use serde_json::Value;

use super::position::join;

/// The committed file schema, embedded so the CLI validates with exactly what `schemas/` holds.
const FILE_SCHEMA: &str = include_str!("../../schemas/deck-file.schema.json");

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    // The embedded file is generated from the types and drift-checked by a test, so a failure
    // here is a build defect, not user input.
    let schema: Value = serde_json::from_str(FILE_SCHEMA).unwrap_or(Value::Bool(true));
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("embedded file schema does not compile: {e}"))
});

/// Every schema problem in a document, each with its path (`services[0].retriez`).
pub fn validate(doc: &Value) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = VALIDATOR
        .iter_errors(doc)
        .flat_map(|e| convert(&e))
        .collect();
    out.dedup();
    out
}

fn convert(e: &ValidationError<'_>) -> Vec<FieldError> {
    let base = pointer_to_path(e.instance_path().as_str());
    match e.kind() {
        K::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|f| FieldError::new(join(&base, f), "unknown field"))
            .collect(),
        K::Required { property } => {
            let field = property.as_str().unwrap_or_default();
            vec![FieldError::new(
                join(&base, field),
                "required field missing",
            )]
        }
        K::Type { kind } => vec![FieldError::new(
            base,
            format!("expected {}", type_name(kind)),
        )],
        K::AnyOf { context } => any_of(e, context, base),
        K::Minimum { limit } => vec![FieldError::new(
            base,
            format!("value should be at least {limit}"),
        )],
        K::Maximum { limit } => vec![FieldError::new(
            base,
            format!("value should be at most {limit}"),
        )],
        // Never echo the value: it may be a secret.
        K::Enum { .. } | K::Constant { .. } => vec![FieldError::new(base, "value is not allowed")],
        K::MinLength { limit } => vec![FieldError::new(
            base,
            format!("length must be at least {limit}"),
        )],
        K::MaxLength { limit } => vec![FieldError::new(
            base,
            format!("length must be at most {limit}"),
        )],
        K::MinItems { limit } => vec![FieldError::new(
            base,
            format!("must have at least {limit} items"),
        )],
        K::MaxItems { limit } => vec![FieldError::new(
            base,
            format!("must have at most {limit} items"),
        )],
        K::Pattern { pattern } => vec![FieldError::new(
            base,
            format!("must match the pattern {pattern}"),
        )],
        other => vec![FieldError::new(
            base,
            format!("invalid value ({})", keyword(other)),
        )],
    }
}

/// The schema keyword an error kind comes from, for the generic message.
fn keyword(kind: &jsonschema::error::ValidationErrorKind) -> String {
    let debug = format!("{kind:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `anyOf` (optional records, name-or-record references): report the errors of the one
/// alternative whose type matches, or say which types are accepted.
fn any_of(
    e: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    base: String,
) -> Vec<FieldError> {
    let here = e.instance_path().as_str();
    let type_mismatch = |errs: &Vec<ValidationError<'static>>| {
        errs.iter()
            .any(|x| matches!(x.kind(), K::Type { .. }) && x.instance_path().as_str() == here)
    };
    let matching: Vec<_> = context.iter().filter(|errs| !type_mismatch(errs)).collect();
    if let [only] = matching.as_slice() {
        return only.iter().flat_map(|x| convert(x)).collect();
    }
    let mut kinds: Vec<String> = context
        .iter()
        .flat_map(|errs| errs.iter())
        .filter_map(|x| match x.kind() {
            K::Type { kind } if x.instance_path().as_str() == here => Some(type_name(kind)),
            _ => None,
        })
        .collect();
    kinds.dedup();
    let message = if kinds.is_empty() {
        "invalid value".to_owned()
    } else {
        format!("expected {}", kinds.join(" or "))
    };
    vec![FieldError::new(base, message)]
}

fn type_name(kind: &TypeKind) -> String {
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "integer" => "an integer".to_owned(),
        "array" => "an array".to_owned(),
        "object" => "a record".to_owned(),
        "null" => "null".to_owned(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        TypeKind::Multiple(ts) => ts
            .iter()
            .filter(|t| t.to_string() != "null")
            .map(|t| one(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    #[test]
    fn committed_file_schema_matches_the_rust_types() {
        let generated = schemars::schema_for!(crate::config::Document);
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/deck-file.schema.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} drifted from the Rust types; run `UPDATE_SCHEMAS=1 cargo test` and commit the result",
            path.display()
        );
    }

    fn messages(doc: Value) -> Vec<String> {
        validate(&doc).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let got = messages(json!({"services": [{"name": "a", "retriez": 1}]}));
        assert_eq!(got, ["services[0].retriez: unknown field"]);
    }

    #[test]
    fn unknown_fields_inside_optional_records_are_named() {
        let got = messages(json!({"_info": {"select_tagz": ["a"]}}));
        assert_eq!(got, ["_info.select_tagz: unknown field"]);
        let got = messages(json!({"routes": [{"name": "r", "service": {"nme": "s"}}]}));
        assert_eq!(got, ["routes[0].service.nme: unknown field"]);
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let got = messages(json!({"services": [{"name": "a", "port": "eighty"}]}));
        assert_eq!(got, ["services[0].port: expected an integer"]);
        let got = messages(json!({"routes": [{"name": "r", "service": 3}]}));
        assert_eq!(got, ["routes[0].service: expected a string or a record"]);
    }

    #[test]
    fn every_problem_is_reported() {
        let got = messages(
            json!({"services": [{"nam": "a"}, {"name": "b", "retries": -1}], "plugins": [{}]}),
        );
        assert_eq!(got.len(), 3, "{got:?}");
    }
}
