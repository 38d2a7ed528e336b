//! Owns entity validation: each entity body is checked against the JSON Schema of its model
//! type (so unknown fields, types and ranges are reported with Kong's wording), then filled
//! with Kong's defaults by round-tripping through the model type.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::model::{Consumer, EntityKind, KeyAuthCredential, Plugin, Route, Service};
use crate::plugins::{self, FieldError};

use super::StoreError;

struct Checker {
    validator: jsonschema::Validator,
}

fn checker<T: schemars::JsonSchema>() -> Checker {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("model schema does not compile: {e}"));
    Checker { validator }
}

static SERVICE: LazyLock<Checker> = LazyLock::new(checker::<Service>);
static ROUTE: LazyLock<Checker> = LazyLock::new(checker::<Route>);
static CONSUMER: LazyLock<Checker> = LazyLock::new(checker::<Consumer>);
static KEY_AUTH: LazyLock<Checker> = LazyLock::new(checker::<KeyAuthCredential>);
static PLUGIN: LazyLock<Checker> = LazyLock::new(checker::<Plugin>);

fn checker_for(kind: EntityKind) -> &'static Checker {
    match kind {
        EntityKind::Service => &SERVICE,
        EntityKind::Route => &ROUTE,
        EntityKind::Consumer => &CONSUMER,
        EntityKind::KeyAuth => &KEY_AUTH,
        EntityKind::Plugin => &PLUGIN,
    }
}

/// Validates `body` as an entity of `kind` and returns it with Kong's defaults filled in.
/// `body` must already carry `id` and timestamps.
pub fn normalize(kind: EntityKind, body: Value) -> Result<Value, StoreError> {
    let Value::Object(mut map) = body else {
        return Err(StoreError::schema("", "expected a record"));
    };
    if kind == EntityKind::Service {
        expand_service_url(&mut map)?;
    }
    drop_nulls(&mut map);
    let body = Value::Object(map);
    let errors: Vec<FieldError> = checker_for(kind)
        .validator
        .iter_errors(&body)
        .flat_map(|e| plugins::schema_error(&e))
        .collect();
    if !errors.is_empty() {
        return Err(StoreError::Schema(errors));
    }
    let mut value = round_trip(kind, body)?;
    entity_rules(kind, &mut value)?;
    Ok(value)
}

/// Kong treats an explicit `null` as "unset": drop top-level nulls so defaults apply.
fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
}

fn round_trip(kind: EntityKind, body: Value) -> Result<Value, StoreError> {
    let bad = |e: serde_json::Error| StoreError::schema("", e.to_string());
    Ok(match kind {
        EntityKind::Service => {
            serde_json::to_value(serde_json::from_value::<Service>(body).map_err(bad)?)?
        }
        EntityKind::Route => {
            serde_json::to_value(serde_json::from_value::<Route>(body).map_err(bad)?)?
        }
        EntityKind::Consumer => {
            serde_json::to_value(serde_json::from_value::<Consumer>(body).map_err(bad)?)?
        }
        EntityKind::KeyAuth => {
            serde_json::to_value(serde_json::from_value::<KeyAuthCredential>(body).map_err(bad)?)?
        }
        EntityKind::Plugin => {
            serde_json::to_value(serde_json::from_value::<Plugin>(body).map_err(bad)?)?
        }
    })
}

/// Rules the schema cannot express: consumer identity, credential owner, plugin config.
fn entity_rules(kind: EntityKind, value: &mut Value) -> Result<(), StoreError> {
    match kind {
        EntityKind::Consumer => {
            let has = |f: &str| {
                value
                    .get(f)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if !has("username") && !has("custom_id") {
                return Err(StoreError::schema(
                    "",
                    "at least one of these fields must be non-empty: 'custom_id', 'username'",
                ));
            }
        }
        EntityKind::KeyAuth => {
            if value.get("consumer").is_none() {
                return Err(StoreError::schema("consumer", "required field missing"));
            }
            let key = value.get("key").and_then(Value::as_str).unwrap_or("");
            if plugins::is_mask(key) {
                return Err(StoreError::schema("key", plugins::MASK_REFUSED));
            }
            if key.is_empty() {
                value["key"] = Value::String(uuid::Uuid::new_v4().simple().to_string());
            }
        }
        EntityKind::Plugin => normalize_plugin(value)?,
        EntityKind::Service => {
            if value
                .get("host")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(StoreError::schema("host", "length must be at least 1"));
            }
            // Kong's `typedefs.path`, which state files follow too.
            if value
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| !p.starts_with('/'))
            {
                return Err(StoreError::schema("path", "should start with: /"));
            }
        }
        EntityKind::Route => route_rules(value)?,
    }
    check_tags(value)
}

/// Kong: a route must match on something (`snis` is not modelled, so it is left out), and
/// each path is fixed (`/…`) or a regex (`~/…`), the rule state files follow too.
fn route_rules(value: &Value) -> Result<(), StoreError> {
    if let Some(Value::Array(paths)) = value.get("paths") {
        for (i, p) in paths.iter().enumerate() {
            if !p.as_str().is_some_and(crate::model::route_path_ok) {
                return Err(StoreError::schema(
                    format!("paths[{i}]"),
                    crate::model::ROUTE_PATH_RULE,
                ));
            }
        }
    }
    let set = |f: &str| match value.get(f) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        _ => false,
    };
    if ["methods", "hosts", "headers", "paths"]
        .iter()
        .any(|f| set(f))
    {
        return Ok(());
    }
    let https = value["protocols"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p == "https"));
    let message = if https {
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
    } else {
        "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
    };
    Err(StoreError::schema("", message))
}

/// Kong's tag rule (`model::tag_error`).
fn check_tags(value: &Value) -> Result<(), StoreError> {
    let Some(tags) = value.get("tags").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, tag) in tags.iter().enumerate() {
        let problem = match tag.as_str() {
            Some(t) => crate::model::tag_error(t),
            None => Some("expected a string".to_owned()),
        };
        if let Some(message) = problem {
            return Err(StoreError::schema(format!("tags[{i}]"), message));
        }
    }
    Ok(())
}

fn normalize_plugin(value: &mut Value) -> Result<(), StoreError> {
    let name = value["name"].as_str().unwrap_or_default().to_owned();
    if !plugins::is_supported(&name) {
        return Err(StoreError::schema(
            "name",
            format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property"),
        ));
    }
    // Kong's `typedefs.no_consumer`: an authentication plugin cannot be scoped to a consumer.
    if name == "key-auth" && value.get("consumer").is_some_and(|c| !c.is_null()) {
        return Err(StoreError::schema("consumer", "value must be null"));
    }
    match plugins::normalize_config(&name, &value["config"]) {
        Ok(config) => value["config"] = config,
        Err(errors) => {
            let errors = errors
                .into_iter()
                .map(|e| {
                    let path = if e.path.is_empty() {
                        "config".to_owned()
                    } else {
                        format!("config.{}", e.path)
                    };
                    FieldError::new(path, e.message)
                })
                .collect();
            return Err(StoreError::Schema(errors));
        }
    }
    let masked: Vec<FieldError> = plugins::secret_fields(&name, &value["config"])
        .into_iter()
        .filter(|(_, v)| v.as_str().is_some_and(plugins::is_mask))
        .map(|(path, _)| FieldError::new(format!("config.{path}"), plugins::MASK_REFUSED))
        .collect();
    if !masked.is_empty() {
        return Err(StoreError::Schema(masked));
    }
    if value.get("protocols").is_none_or(Value::is_null) {
        value["protocols"] = serde_json::json!(crate::plugins::default_protocols());
    }
    Ok(())
}

/// Splits the write-only `url` shorthand into protocol, host, port and path.
fn expand_service_url(map: &mut Map<String, Value>) -> Result<(), StoreError> {
    let Some(raw) = map.remove("url") else {
        return Ok(());
    };
    let Some(text) = raw.as_str() else {
        return Err(StoreError::schema("url", "expected a string"));
    };
    let url =
        url::Url::parse(text).map_err(|_| StoreError::schema("url", "missing host in url"))?;
    let Some(host) = url.host_str() else {
        return Err(StoreError::schema("url", "missing host in url"));
    };
    map.insert("protocol".into(), Value::String(url.scheme().to_owned()));
    map.insert("host".into(), Value::String(host.to_owned()));
    if let Some(port) = url.port_or_known_default() {
        map.insert("port".into(), Value::from(port));
    }
    let path = url.path();
    // `url::Url` reports "/" for "https://h"; only keep a path the user actually wrote.
    let written = path != "/" || text.ends_with('/');
    if !path.is_empty() && written {
        map.insert("path".into(), Value::String(path.to_owned()));
    }
    Ok(())
}
