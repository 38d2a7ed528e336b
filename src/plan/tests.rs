//! The plan's rules, stated as tests over hand-built entity sets.

use embedded_gateway::model::{Consumer, ForeignKey, KeyAuthCredential, Plugin, Route, Service};
use embedded_gateway::snapshot::ConfigSnapshot;
use serde_json::json;

use super::render::{self, RenderOptions};
use super::{Action, Mode, compute};

fn service(id: &str, name: &str, host: &str) -> Service {
    serde_json::from_value(json!({"id": id, "name": name, "host": host, "tags": ["team-a"]}))
        .unwrap()
}

fn route(id: &str, name: &str, service_id: &str) -> Route {
    serde_json::from_value(
        json!({"id": id, "name": name, "paths": ["/x"], "service": {"id": service_id}, "tags": ["team-a"]}),
    )
    .unwrap()
}

fn consumer(id: &str, username: &str) -> Consumer {
    serde_json::from_value(json!({"id": id, "username": username, "tags": ["team-a"]})).unwrap()
}

fn credential(id: &str, key: &str, consumer_id: &str) -> KeyAuthCredential {
    KeyAuthCredential {
        id: id.into(),
        created_at: 0,
        updated_at: 0,
        consumer: Some(ForeignKey::new(consumer_id)),
        key: key.into(),
        tags: vec!["team-a".into()],
        ttl: None,
    }
}

fn proxy_plugin(id: &str, service_id: &str, model: &str, token: &str) -> Plugin {
    serde_json::from_value(json!({
        "id": id, "name": "ai-proxy-advanced", "instance_name": "p",
        "service": {"id": service_id}, "tags": ["team-a"],
        "config": {"targets": [{"route_type": "llm/v1/chat",
            "auth": {"header_name": "Authorization", "header_value": token},
            "model": {"provider": "openai", "name": model, "model_alias": "fast"}}]}
    }))
    .unwrap()
}

fn world(ids: &str, model: &str, token: &str) -> ConfigSnapshot {
    let id = |n: &str| format!("{ids}-{n}");
    ConfigSnapshot {
        revision: 7,
        services: vec![service(&id("s"), "svc", "localhost")],
        routes: vec![route(&id("r"), "rt", &id("s"))],
        consumers: vec![consumer(&id("c"), "demo-app")],
        key_auths: vec![credential(&id("k"), "demo-api-key", &id("c"))],
        plugins: vec![proxy_plugin(&id("p"), &id("s"), model, token)],
    }
}

#[test]
fn an_unchanged_file_plans_nothing_even_with_different_ids() {
    let plan = compute(
        &world("desired", "gpt-4o-mini", "Bearer sk-1"),
        &world("live", "gpt-4o-mini", "Bearer sk-1"),
        Mode::Sync,
    );
    assert!(plan.is_empty(), "{plan:#?}");
    assert_eq!(plan.base_revision, Some(7));
}

#[test]
fn an_empty_gateway_gets_every_entity_created_parents_first() {
    let plan = compute(
        &world("d", "gpt-4o-mini", "Bearer sk-1"),
        &ConfigSnapshot::default(),
        Mode::Apply,
    );
    let lines: Vec<String> = plan.changes.iter().map(render::event_line).collect();
    assert_eq!(
        lines,
        [
            "creating service svc",
            "creating route rt",
            "creating consumer demo-app",
            "creating key-auth for consumer demo-app",
            "creating plugin ai-proxy-advanced (p) for service svc",
        ]
    );
}

#[test]
fn changing_the_model_name_is_one_update_with_one_changed_field() {
    let plan = compute(
        &world("d", "gpt-4.1-mini", "Bearer sk-1"),
        &world("l", "gpt-4o-mini", "Bearer sk-1"),
        Mode::Sync,
    );
    assert_eq!(plan.changes.len(), 1);
    let change = &plan.changes[0];
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.id, "l-p", "updates target the live entity's id");
    assert_eq!(change.new.as_ref().unwrap()["service"]["id"], "l-s");
    let text = render::text(&plan, RenderOptions::default());
    assert_eq!(
        text,
        "updating plugin ai-proxy-advanced (p) for service svc\n  config.targets[0].model.name: \"gpt-4o-mini\" → \"gpt-4.1-mini\"\nSummary:\n  Created: 0\n  Updated: 1\n  Deleted: 0\n"
    );
}

#[test]
fn apply_never_deletes_and_sync_deletes_children_first() {
    let desired = ConfigSnapshot::default();
    let live = world("l", "m", "Bearer sk-1");
    assert!(compute(&desired, &live, Mode::Apply).is_empty());
    let plan = compute(&desired, &live, Mode::Sync);
    let kinds: Vec<&str> = plan.changes.iter().map(|c| c.kind.display_name()).collect();
    assert_eq!(
        kinds,
        ["plugin", "key-auth", "consumer", "route", "service"]
    );
    assert!(plan.changes.iter().all(|c| c.action == Action::Delete));
}

#[test]
fn secrets_are_masked_in_old_and_new_values_by_field() {
    let plan = compute(
        &world("d", "m", "Bearer sk-new-canary"),
        &world("l", "m", "Bearer sk-old-canary"),
        Mode::Sync,
    );
    let opts = RenderOptions::default();
    let text = render::text(&plan, opts);
    let report = render::json(&plan, opts, &[], &[]).to_string();
    for out in [&text, &report] {
        assert!(!out.contains("canary"), "secret leaked: {out}");
    }
    // The change shows as two different fingerprints, never as `"[masked]" → "[masked]"`.
    let line = text
        .lines()
        .find(|l| l.contains("config.targets[0].auth.header_value: "))
        .expect("the secret's change is listed");
    let (old, new) = line
        .split_once(": ")
        .and_then(|(_, v)| v.split_once(" → "))
        .expect("old → new");
    assert!(
        old.starts_with("\"[masked:") && new.starts_with("\"[masked:"),
        "{line}"
    );
    assert_ne!(old, new, "{line}");
    assert!(report.contains(old.trim_matches('"')), "{report}");
    let created = compute(
        &world("d", "m", "x"),
        &ConfigSnapshot::default(),
        Mode::Apply,
    );
    let report = render::json(&created, opts, &[], &[]).to_string();
    assert!(
        !report.contains("demo-api-key"),
        "credential key leaked: {report}"
    );
    let shown = render::json(
        &created,
        RenderOptions {
            show_secrets: true,
            ..opts
        },
        &[],
        &[],
    )
    .to_string();
    assert!(shown.contains("demo-api-key"));
}

#[test]
fn json_report_has_decks_shape() {
    let plan = compute(
        &world("d", "m", "t"),
        &ConfigSnapshot::default(),
        Mode::Apply,
    );
    let report = render::json(&plan, RenderOptions::default(), &[], &[]);
    assert_eq!(
        report["summary"],
        json!({"creating": 5, "updating": 0, "deleting": 0, "total": 5})
    );
    assert_eq!(report["changes"]["creating"][0]["kind"], "service");
    assert_eq!(report["changes"]["creating"][0]["name"], "svc");
    assert_eq!(report["warnings"], json!([]));
    assert_eq!(report["errors"], json!([]));
}
