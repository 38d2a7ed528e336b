//! Owns how a plan is shown: decK-style event lines with changed fields only, the summary
//! block, and the `--json-output` report. Secrets are masked here, by field, in old and new
//! values alike, unless the caller asks to show them.

use embedded_gateway::model::EntityKind;
use embedded_gateway::plugins::{self, MASK};
use serde::Serialize;
use serde_json::{Value, json};

use super::diff::{FieldChange, changed_fields};
use super::fingerprint::fingerprint;
use super::{Action, Change, Plan};

/// Output switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    pub color: bool,
    pub show_secrets: bool,
}

/// Masks the secret fields of an entity body: a credential's `key`, and plugin config fields
/// the plugin schema marks secret.
pub fn mask_entity(kind: EntityKind, v: &mut Value) {
    match kind {
        EntityKind::KeyAuth => {
            if let Some(k) = v.get_mut("key")
                && !k.is_null()
            {
                *k = Value::String(MASK.to_owned());
            }
        }
        EntityKind::Plugin => {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(config) = v.get_mut("config") {
                plugins::mask_secrets(&name, config);
            }
        }
        EntityKind::Service | EntityKind::Route | EntityKind::Consumer => {}
    }
}

fn shown(kind: EntityKind, v: &Option<Value>, opts: RenderOptions) -> Option<Value> {
    v.clone().map(|mut v| {
        if !opts.show_secrets {
            mask_entity(kind, &mut v);
        }
        v
    })
}

fn paint(s: &str, code: &str, opts: RenderOptions) -> String {
    if opts.color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

fn verb(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("creating", "32"),
        Action::Update => ("updating", "33"),
        Action::Delete => ("deleting", "31"),
    }
}

/// The event line decK prints: `creating service basic-llm-routing`.
pub fn event_line(change: &Change) -> String {
    let (verb, _) = verb(change.action);
    let name = if change.name.is_empty() {
        change.id.clone()
    } else {
        change.name.clone()
    };
    format!("{verb} {} {name}", change.kind.display_name())
}

fn scalar(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// The changed fields of an update, masked unless asked otherwise.
pub fn field_changes(change: &Change, opts: RenderOptions) -> Vec<FieldChange> {
    let old = shown(change.kind, &change.old, opts).unwrap_or(Value::Null);
    let new = shown(change.kind, &change.new, opts).unwrap_or(Value::Null);
    let mut changes = changed_fields(&old, &new);
    // A masked secret that changed still shows that it changed, never its value: each side
    // shows a keyed fingerprint, so `"[masked]" → "[masked]"` never hides which side moved.
    if !opts.show_secrets {
        let raw = changed_fields(
            change.old.as_ref().unwrap_or(&Value::Null),
            change.new.as_ref().unwrap_or(&Value::Null),
        );
        for r in raw {
            if !changes.iter().any(|c| c.path == r.path) {
                changes.push(FieldChange {
                    path: r.path,
                    old: r.old.as_ref().map(|v| json!(fingerprint(v))),
                    new: r.new.as_ref().map(|v| json!(fingerprint(v))),
                });
            }
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
    }
    changes
}

/// The human report: one event line per change, changed fields under updates, then the summary.
pub fn text(plan: &Plan, opts: RenderOptions) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        let (_, color) = verb(change.action);
        out.push_str(&paint(&event_line(change), color, opts));
        out.push('\n');
        if change.action == Action::Update {
            for f in field_changes(change, opts) {
                out.push_str(&format!("  {}: ", f.path));
                out.push_str(&value_diff(&f, opts));
                out.push('\n');
            }
        }
    }
    out.push_str(&summary(plan, opts));
    out
}

/// `old → new` for scalars; a line diff (built with `similar`) for multi-line strings.
fn value_diff(f: &FieldChange, opts: RenderOptions) -> String {
    let as_text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_owned);
    if let (Some(o), Some(n)) = (as_text(&f.old), as_text(&f.new))
        && (o.contains('\n') || n.contains('\n'))
    {
        let diff = similar::TextDiff::from_lines(&o, &n);
        let mut s = String::from("\n");
        for change in diff.iter_all_changes() {
            let (sign, color) = match change.tag() {
                similar::ChangeTag::Delete => ("-", "31"),
                similar::ChangeTag::Insert => ("+", "32"),
                similar::ChangeTag::Equal => (" ", "0"),
            };
            let line = format!("    {sign} {}", change.value().trim_end_matches('\n'));
            s.push_str(&paint(&line, color, opts));
            s.push('\n');
        }
        return s.trim_end().to_owned();
    }
    format!(
        "{} → {}",
        paint(&scalar(&f.old), "31", opts),
        paint(&scalar(&f.new), "32", opts)
    )
}

/// decK's summary block.
pub fn summary(plan: &Plan, opts: RenderOptions) -> String {
    let body = format!(
        "Summary:\n  Created: {}\n  Updated: {}\n  Deleted: {}\n",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete)
    );
    if opts.color {
        format!("\x1b[1;32m{body}\x1b[0m")
    } else {
        body
    }
}

#[derive(Serialize)]
struct JsonChange {
    name: String,
    kind: &'static str,
    body: JsonBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<Vec<JsonField>>,
}

#[derive(Serialize)]
struct JsonBody {
    new: Option<Value>,
    old: Option<Value>,
}

#[derive(Serialize)]
struct JsonField {
    field: String,
    old: Option<Value>,
    new: Option<Value>,
}

/// The `--json-output` report: decK's shape, masked, with errors and warnings.
pub fn json(plan: &Plan, opts: RenderOptions, warnings: &[String], errors: &[Value]) -> Value {
    let of = |action: Action| -> Vec<JsonChange> {
        plan.changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| JsonChange {
                name: if c.name.is_empty() {
                    c.id.clone()
                } else {
                    c.name.clone()
                },
                kind: c.kind.display_name(),
                body: JsonBody {
                    new: shown(c.kind, &c.new, opts),
                    old: shown(c.kind, &c.old, opts),
                },
                changed_fields: (action == Action::Update).then(|| {
                    field_changes(c, opts)
                        .into_iter()
                        .map(|f| JsonField {
                            field: f.path,
                            old: f.old,
                            new: f.new,
                        })
                        .collect()
                }),
            })
            .collect()
    };
    let (c, u, d) = (
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete),
    );
    json!({
        "changes": {
            "creating": of(Action::Create),
            "updating": of(Action::Update),
            "deleting": of(Action::Delete),
        },
        "summary": {"creating": c, "updating": u, "deleting": d, "total": c + u + d},
        "warnings": warnings,
        "errors": errors,
    })
}
