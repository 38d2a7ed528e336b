//! Owns the JSON-Schema vocabulary every layer shares: [`FieldError`] (a problem named by its
//! field path), Kong-worded schema errors, JSON-pointer → dotted-path conversion, and secret
//! masking by the `x-secret` schema keyword.

use serde_json::Value;

/// The schema keyword that marks a field as secret (masked in CLI output).
pub const SECRET_KEYWORD: &str = "x-secret";

/// One problem with a field, named by its dotted path inside the validated value
/// (`targets[0].model.options.anthropic_version`). An empty path means the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Turns one JSON Schema error into field errors with Kong's wording where Kong has one.
/// Shared by plugin configs and the store's entity validation.
pub fn schema_error(e: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind as K;
    let base = pointer_to_path(e.instance_path().as_str());
    let join = |field: &str| {
        if base.is_empty() {
            field.to_owned()
        } else {
            format!("{base}.{field}")
        }
    };
    match e.kind() {
        K::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|f| FieldError::new(join(f), "unknown field"))
            .collect(),
        K::Required { property } => {
            let field = property.as_str().unwrap_or_default();
            vec![FieldError::new(join(field), "required field missing")]
        }
        K::Type { kind } => vec![FieldError::new(
            base,
            format!("expected {}", type_name(kind)),
        )],
        K::Maximum { limit } => vec![FieldError::new(
            base,
            format!("value should be at most {limit}"),
        )],
        K::Minimum { limit } => vec![FieldError::new(
            base,
            format!("value should be at least {limit}"),
        )],
        K::Enum { options } => {
            let list = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            vec![FieldError::new(base, format!("expected one of: {list}"))]
        }
        _ => vec![FieldError::new(base, e.to_string())],
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    use jsonschema::error::TypeKind;
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "integer" => "an integer".to_owned(),
        "array" => "an array".to_owned(),
        "object" => "a record".to_owned(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        // `["string", "null"]` is an optional string: Kong says "expected a string".
        TypeKind::Multiple(ts) => ts
            .iter()
            .filter(|t| t.to_string() != "null")
            .map(|t| one(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// `/targets/0/model` → `targets[0].model`.
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// The text secrets are replaced with in CLI output.
pub const MASK: &str = "[masked]";

/// True for text that stands for a secret without being one: the mask `[masked]`, and the
/// fingerprinted form `[masked:1a2b3c4d]` the CLI prints in diffs. Such text is never stored
/// as a secret (a masked dump applied back would otherwise replace the real value).
pub fn is_mask(text: &str) -> bool {
    text == MASK
        || text
            .strip_prefix("[masked:")
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|fp| !fp.is_empty() && fp.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Why a mask cannot be stored as a secret, for the admin API's schema violation.
pub const MASK_REFUSED: &str = "is the mask '[masked]', not a secret: send the real value";

/// Every secret field set in `value` under schema `node` (inside `root`), as (dotted path,
/// value), appended to `out` in document order.
pub fn collect_secrets(
    root: &Value,
    node: &Value,
    value: &Value,
    path: String,
    out: &mut Vec<(String, Value)>,
) {
    let node = resolve(root, node);
    if node.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true) {
        if !value.is_null() && !out.iter().any(|(p, _)| *p == path) {
            out.push((path, value.clone()));
        }
        return;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(alts)) = node.get(key) {
            for alt in alts {
                collect_secrets(root, alt, value, path.clone(), out);
            }
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = node.get("properties") {
                for (k, v) in map {
                    if let Some(sub) = props.get(k) {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        collect_secrets(root, sub, v, p, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = node.get("items") {
                for (i, v) in items.iter().enumerate() {
                    collect_secrets(root, sub, v, format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Walks `value` alongside `node` (a schema node inside `root`), masking secret fields.
pub fn mask_with_schema(root: &Value, node: &Value, value: &mut Value) {
    let node = resolve(root, node);
    if node.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true) {
        if !value.is_null() {
            *value = Value::String(MASK.to_owned());
        }
        return;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(alts)) = node.get(key) {
            for alt in alts {
                mask_with_schema(root, alt, value);
            }
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = node.get("properties") {
                for (k, v) in map.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        mask_with_schema(root, sub, v);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = node.get("items") {
                for v in items {
                    mask_with_schema(root, sub, v);
                }
            }
        }
        _ => {}
    }
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .map(|n| resolve(root, n))
            .unwrap_or(node),
        None => node,
    }
}
