//! Owns the plugin registry: the one list of plugins Gantry runs (each a type in
//! `plugins/<name>.rs` implementing [`api::Plugin`]), their compiled instances behind one enum
//! (enum dispatch, no `dyn` on the request path), and the by-name facade the store and the CLI
//! use: JSON Schemas (the committed files under `schemas/plugins/`), config normalisation
//! (validation plus Kong's defaults) and secret masking by schema field.

pub mod ai_proxy;
pub mod ai_rate_limiting;
pub mod api;
pub mod file_log;
pub mod http_log;
pub mod key_auth;
pub mod limit_key;
pub mod prometheus;
pub mod rate_limiting;
pub mod serialize;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use http::Response;
use serde_json::Value;

use crate::context::{Ctx, LogRecord};
use crate::schema::collect_secrets;
pub use crate::schema::{
    FieldError, MASK, MASK_REFUSED, SECRET_KEYWORD, is_mask, mask_with_schema, pointer_to_path,
    schema_error,
};
pub use ai_proxy::{AiProxyAdvancedConfig, AiProxyConfig};
pub use api::{CompileEnv, Env, Flow, Plugin, ProxyOptions};
pub use key_auth::KeyAuthConfig;

/// The registry: `Variant => type`, one line per plugin. Generates [`Instance`] and the
/// by-name tables from it.
macro_rules! registry {
    ($($variant:ident => $ty:ty,)+) => {
        /// A compiled plugin instance, ready for its phases.
        #[derive(Debug)]
        pub enum Instance {
            $($variant($ty),)+
        }

        impl Instance {
            pub fn name(&self) -> &'static str {
                match self { $(Self::$variant(_) => <$ty as Plugin>::NAME,)+ }
            }

            pub fn priority(&self) -> u32 {
                match self { $(Self::$variant(_) => <$ty as Plugin>::PRIORITY,)+ }
            }

            pub fn reads_body(&self) -> bool {
                match self { $(Self::$variant(p) => p.reads_body(),)+ }
            }

            pub fn body_limit(&self) -> u64 {
                match self { $(Self::$variant(p) => p.body_limit(),)+ }
            }

            pub async fn access(&self, ctx: &mut Ctx, env: &Env<'_>) -> Flow {
                match self { $(Self::$variant(p) => p.access(ctx, env).await,)+ }
            }

            pub fn has_response(&self) -> bool {
                match self { $(Self::$variant(p) => p.has_response(),)+ }
            }

            pub fn response(&self, ctx: &Ctx, res: &mut Response<Body>) {
                match self { $(Self::$variant(p) => p.response(ctx, res),)+ }
            }

            pub fn has_log(&self) -> bool {
                match self { $(Self::$variant(p) => p.has_log(),)+ }
            }

            pub fn log(&self, record: &Arc<LogRecord>) {
                match self { $(Self::$variant(p) => p.log(record),)+ }
            }

            /// Compiles a plugin entity's config into an instance.
            pub fn compile(name: &str, config: &Value, env: &CompileEnv<'_>) -> Result<Self, String> {
                let config = if config.is_null() { Value::Object(Default::default()) } else { config.clone() };
                match name {
                    $(<$ty as Plugin>::NAME => {
                        let c = serde_json::from_value(config).map_err(|e| config_error(name, &e))?;
                        <$ty as Plugin>::compile(c, env).map(Self::$variant)
                    })+
                    other => Err(format!("plugin '{other}' is not supported by this gateway")),
                }
            }
        }

        /// The plugins this gateway can run, with their Kong priority.
        pub const SUPPORTED: &[(&str, u32)] = &[$((<$ty as Plugin>::NAME, <$ty as Plugin>::PRIORITY),)+];

        static SCHEMAS: LazyLock<HashMap<&'static str, Compiled>> = LazyLock::new(|| {
            HashMap::from([$((<$ty as Plugin>::NAME, compile_schema(<$ty as Plugin>::SCHEMA)),)+])
        });

        /// Generates a plugin's config schema from its Rust type. `schemas/` holds the output; a
        /// test fails when the committed files drift from the types.
        pub fn generate_schema(name: &str) -> Option<Value> {
            match name {
                $(<$ty as Plugin>::NAME => serde_json::to_value(schemars::schema_for!(<$ty as Plugin>::Config)).ok(),)+
                _ => None,
            }
        }

        /// Deserialises, checks Kong's entity rules and re-serialises (defaults filled).
        fn typed_normalize(name: &str, config: &Value) -> Result<(Value, Vec<FieldError>), Vec<FieldError>> {
            let typed = |e: serde_json::Error| vec![FieldError::new("", e.to_string())];
            match name {
                $(<$ty as Plugin>::NAME => {
                    let c: <$ty as Plugin>::Config = serde_json::from_value(config.clone()).map_err(typed)?;
                    let errs = <$ty as Plugin>::entity_errors(&c);
                    Ok((serde_json::to_value(c).map_err(typed)?, errs))
                })+
                _ => Err(vec![FieldError::new("name", format!("plugin '{name}' not enabled"))]),
            }
        }
    };
}

registry! {
    KeyAuth => key_auth::KeyAuth,
    AiProxyAdvanced => ai_proxy::AiProxyAdvanced,
    AiProxy => ai_proxy::AiProxy,
    FileLog => file_log::FileLog,
    RateLimiting => rate_limiting::RateLimiting,
    AiRateLimiting => ai_rate_limiting::AiRateLimiting,
    HttpLog => http_log::HttpLog,
    Prometheus => prometheus::Prometheus,
}

/// Names the plugin, never the offending value: serde's messages quote values, and a
/// misplaced value may be a secret.
fn config_error(plugin: &str, e: &serde_json::Error) -> String {
    format!(
        "plugin {plugin} config does not match its schema ({:?} error); check it with the admin API's /schemas/plugins/validate",
        e.classify()
    )
}

/// The protocols a plugin runs on when its entity does not say (Kong's default for the
/// plugins Gantry supports). The store and the CLI both fill it, so it never shows as drift.
pub fn default_protocols() -> Vec<String> {
    ["grpc", "grpcs", "http", "https"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compile_schema(text: &str) -> Compiled {
    // The embedded files are generated by `generate_schema` and drift-checked by a test, so a
    // failure here is a build defect, not user input.
    let schema: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("embedded plugin schema does not compile: {e}"));
    Compiled { schema, validator }
}

/// The priority of a plugin by name (Kong's order: higher runs first).
pub fn priority(name: &str) -> Option<u32> {
    SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// True when Gantry knows the plugin.
pub fn is_supported(name: &str) -> bool {
    SCHEMAS.contains_key(name)
}

/// The JSON Schema of a plugin's `config`, as committed in `schemas/plugins/{name}.schema.json`.
pub fn json_schema(name: &str) -> Option<&'static Value> {
    SCHEMAS.get(name).map(|c| &c.schema)
}

/// Validates a plugin config against its schema and Kong's entity rules, and returns it with
/// Kong's defaults filled in. Every problem is returned, each with its field path.
pub fn normalize_config(name: &str, config: &Value) -> Result<Value, Vec<FieldError>> {
    let Some(c) = SCHEMAS.get(name) else {
        return Err(vec![FieldError::new(
            "name",
            format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property"),
        )]);
    };
    let empty = Value::Object(Default::default());
    let config = if config.is_null() { &empty } else { config };
    let errors: Vec<FieldError> = c
        .validator
        .iter_errors(config)
        .flat_map(|e| schema_error(&e))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let (normalized, rule_errors) = typed_normalize(name, config)?;
    if rule_errors.is_empty() {
        Ok(normalized)
    } else {
        Err(rule_errors)
    }
}

/// Replaces every value whose schema field is marked `x-secret` with `[masked]`.
/// Masking follows the schema, never the text, so it cannot over- or under-mask (decK #2140).
pub fn mask_secrets(name: &str, config: &mut Value) {
    if let Some(schema) = json_schema(name) {
        mask_with_schema(schema, schema, config);
    }
}

/// Every secret field set in a plugin config, as (dotted path, value), in document order.
pub fn secret_fields(name: &str, config: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(schema) = json_schema(name) {
        collect_secrets(schema, schema, config, String::new(), &mut out);
    }
    out
}
