//! Owns `diff`, `apply`, `sync` and `plan`: load the files, resolve the scope, read the live
//! state in scope, compute the plan, print it, and (apply/sync) execute it atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use embedded_gateway::model::EntityKind;
use embedded_gateway::snapshot::ConfigSnapshot;
use serde::{Deserialize, Serialize};

use crate::cli::{
    AdminArgs, ApplyArgs, DiffArgs, PlanArgs, PlanMode, ReportArgs, ScopeArgs, SyncArgs,
};
use crate::client::{AdminClient, ClientOptions};
use crate::exit::ExitStatus;
use crate::namespace::{self, Access, Verdict};
use crate::plan::render::{self, RenderOptions};
use crate::plan::{self, Mode, Plan};
use crate::reconcile::{self, Target};
use crate::references;
use crate::state::{LoadOptions, Loaded};
use crate::ui::Ui;

/// The scope a command works in, after reconciling flags with the files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub select_tags: Vec<String>,
    pub control_plane: Option<String>,
    pub namespace: Option<String>,
    pub skip_consumers: bool,
}

fn sorted(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort();
    t.dedup();
    t
}

/// Merges the file's `_info.select_tags`, `_konnect.control_plane_name` and
/// `_defaults.kongctl.namespace` with the flags. Tags given both ways must agree (decK's rule).
pub fn resolve_scope(
    file_tags: &[String],
    file_cp: Option<&str>,
    file_ns: Option<&str>,
    args: &ScopeArgs,
) -> anyhow::Result<Scope> {
    for tag in &args.select_tags {
        if let Some(problem) = embedded_gateway::model::tag_error(tag) {
            bail!(
                "--select-tag: {problem}\n\nhint: give several tags as `--select-tag a,b` or by repeating the flag"
            );
        }
    }
    let (file, flag) = (sorted(file_tags), sorted(&args.select_tags));
    if !file.is_empty() && !flag.is_empty() && file != flag {
        bail!(
            "tags specified in the state file ({file:?}) and via --select-tag ({flag:?}) are different\n\nhint: give the tags either in `_info.select_tags` or with `--select-tag`; when both are given they must match"
        );
    }
    let flag_cp = match (&args.control_plane, &args.workspace) {
        (Some(cp), Some(ws)) if cp != ws => bail!(
            "--workspace '{ws}' and --control-plane '{cp}' name different control planes; Gantry has no workspaces: `-w NAME` means `--control-plane NAME`"
        ),
        (cp, ws) => cp.clone().or_else(|| ws.clone()),
    };
    Ok(Scope {
        select_tags: if flag.is_empty() { file } else { flag },
        control_plane: flag_cp.or(file_cp.map(str::to_owned)),
        namespace: args.namespace.clone().or(file_ns.map(str::to_owned)),
        skip_consumers: args.skip_consumers,
    })
}

/// Tags every entity of the desired state with the scope's select tags (decK does the same).
pub fn add_tags(set: &mut ConfigSnapshot, tags: &[String]) {
    let merge = |t: &mut Vec<String>| {
        t.extend(tags.iter().cloned());
        t.sort();
        t.dedup();
    };
    set.services.iter_mut().for_each(|e| merge(&mut e.tags));
    set.routes.iter_mut().for_each(|e| merge(&mut e.tags));
    set.consumers.iter_mut().for_each(|e| merge(&mut e.tags));
    set.key_auths.iter_mut().for_each(|e| merge(&mut e.tags));
    set.plugins.iter_mut().for_each(|e| merge(&mut e.tags));
}

/// Connects, finds the control plane and checks the namespace guard.
pub async fn connect(
    admin: &AdminArgs,
    scope: &Scope,
    access: Access,
    ui: Ui,
) -> anyhow::Result<(AdminClient, Target)> {
    let client = AdminClient::new(&ClientOptions::from_args(admin))?;
    let target = reconcile::resolve_target(&client, scope.control_plane.as_deref()).await?;
    if let Some(cp) = &target.control_plane {
        match namespace::check(&cp.name, &cp.labels, scope.namespace.as_deref(), access)? {
            Verdict::Allowed => {}
            Verdict::AllowedWithWarning(w) => ui.warn(&w),
        }
    } else if scope.namespace.is_some() {
        ui.warn("a namespace was given without a control plane; the namespace guard needs `--control-plane` or `_konnect.control_plane_name`");
    }
    Ok((client, target))
}

/// Loads the files and resolves the scope. References to entities the files do not define
/// are kept for [`plan_live`] to resolve on the gateway.
pub fn load_files(files: &[PathBuf], args: &ScopeArgs) -> anyhow::Result<(Loaded, Scope)> {
    let opts = LoadOptions {
        live_references: true,
        ..LoadOptions::default()
    };
    let loaded = crate::state::load(files, &opts)?;
    let scope = resolve_scope(
        &loaded.select_tags,
        loaded.control_plane_name.as_deref(),
        loaded.namespace.as_deref(),
        args,
    )?;
    Ok((loaded, scope))
}

/// The files' entities as the gateway will hold them: references resolved to live `ids`,
/// select tags added, consumers left out with `--skip-consumers`.
fn desired_state(
    loaded: &Loaded,
    scope: &Scope,
    ids: &HashMap<(EntityKind, String), String>,
) -> ConfigSnapshot {
    let mut desired = crate::state::to_snapshot_with(loaded, ids);
    add_tags(&mut desired, &scope.select_tags);
    if scope.skip_consumers {
        desired.consumers.clear();
        desired.key_auths.clear();
        desired.plugins.retain(|p| p.consumer.is_none());
    }
    desired
}

/// Reads the live state in scope, resolves the files' references to live entities, and
/// computes the plan.
async fn plan_live(
    client: &AdminClient,
    target: &Target,
    loaded: &Loaded,
    scope: &Scope,
    mode: Mode,
) -> anyhow::Result<Plan> {
    let live =
        reconcile::read_live(client, target, &scope.select_tags, scope.skip_consumers).await?;
    let resolved = references::resolve(
        client,
        target,
        loaded,
        &scope.select_tags,
        scope.skip_consumers,
        &live,
        mode,
    )
    .await?;
    let desired = desired_state(loaded, scope, &resolved.ids);
    Ok(plan::compute_with_refs(
        &desired,
        &live,
        &resolved.refs,
        mode,
    ))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints the plan (text or JSON) and returns the exit status for "no error".
fn report(plan: &Plan, report: &ReportArgs, ui: Ui, warnings: &[String]) -> ExitStatus {
    let opts = RenderOptions {
        color: ui.color,
        show_secrets: report.show_secrets,
    };
    if report.json_output {
        let doc = render::json(plan, opts, warnings, &[]);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if !report.silence_events {
        print!("{}", render::text(plan, opts));
    }
    if report.non_zero_exit_code && !plan.is_empty() {
        ExitStatus::Drift
    } else {
        ExitStatus::Success
    }
}

/// The `errors` of a JSON report: one object per validation problem (`file`, `line`, `column`,
/// `path`, `message`), or one `{"message"}` object for any other error.
pub fn error_objects(err: &anyhow::Error) -> Vec<serde_json::Value> {
    match err.downcast_ref::<crate::config::Diagnostics>() {
        Some(problems) => problems.0.iter().map(|d| d.to_json()).collect(),
        None => vec![serde_json::json!({ "message": format!("{err:#}") })],
    }
}

/// Prints an error in the JSON report when `--json-output` is on, then fails.
fn fail_json(report: &ReportArgs, err: anyhow::Error) -> anyhow::Result<ExitStatus> {
    if report.json_output {
        let empty = Plan {
            mode: Mode::Apply,
            base_revision: None,
            changes: Vec::new(),
        };
        let doc = render::json(&empty, RenderOptions::default(), &[], &error_objects(&err));
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Err(err)
}

pub fn diff(args: DiffArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    let mode = match args.mode {
        PlanMode::Apply => Mode::Apply,
        PlanMode::Sync => Mode::Sync,
    };
    let run = || -> anyhow::Result<Plan> {
        let (loaded, scope) = load_files(
            &super::state_files(&args.state.files, &args.state.state),
            &args.scope,
        )?;
        runtime()?.block_on(async {
            let (client, target) = connect(&args.admin, &scope, Access::Read, ui).await?;
            plan_live(&client, &target, &loaded, &scope, mode).await
        })
    };
    match run() {
        Ok(plan) => Ok(report(&plan, &args.report, ui, &[])),
        Err(e) => fail_json(&args.report, e),
    }
}

/// Plans and executes: shared by `apply` (no deletes) and `sync`.
fn plan_and_execute(
    files: &[PathBuf],
    admin: &AdminArgs,
    scope_args: &ScopeArgs,
    report_args: &ReportArgs,
    mode: Mode,
    ui: Ui,
) -> anyhow::Result<ExitStatus> {
    let run = || -> anyhow::Result<Plan> {
        let (loaded, scope) = load_files(files, scope_args)?;
        runtime()?.block_on(async {
            let (client, target) = connect(admin, &scope, Access::Write, ui).await?;
            let plan = plan_live(&client, &target, &loaded, &scope, mode).await?;
            execute(&client, &target, &plan, ui).await?;
            Ok(plan)
        })
    };
    match run() {
        Ok(plan) => Ok(report(&plan, report_args, ui, &[])),
        Err(e) => fail_json(report_args, e),
    }
}

async fn execute(client: &AdminClient, target: &Target, plan: &Plan, ui: Ui) -> anyhow::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let bar = (plan.changes.len() > 30)
        .then(|| {
            ui.progress(format!(
                "applying {} changes to {}",
                plan.changes.len(),
                target.display()
            ))
        })
        .flatten();
    let result = reconcile::execute(client, target, plan).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result?;
    Ok(())
}

pub fn apply(args: ApplyArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    if let Some(plan_file) = &args.plan {
        return apply_saved(plan_file, &args, ui);
    }
    let files = super::state_files(&args.files, &args.state);
    plan_and_execute(
        &files,
        &args.admin,
        &args.scope,
        &args.report,
        Mode::Apply,
        ui,
    )
}

pub fn sync(args: SyncArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    plan_and_execute(
        &super::state_files(&args.state.files, &args.state.state),
        &args.admin,
        &args.scope,
        &args.report,
        Mode::Sync,
        ui,
    )
}

/// A plan saved to disk by `gantry plan`, executed later by `apply --plan`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPlan {
    gantry_plan_version: u32,
    scope: Scope,
    plan: Plan,
}

pub fn save(args: PlanArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    let mode = match args.mode {
        PlanMode::Apply => Mode::Apply,
        PlanMode::Sync => Mode::Sync,
    };
    let (loaded, scope) = load_files(
        &super::state_files(&args.state.files, &args.state.state),
        &args.scope,
    )?;
    let plan = runtime()?.block_on(async {
        let (client, target) = connect(&args.admin, &scope, Access::Read, ui).await?;
        plan_live(&client, &target, &loaded, &scope, mode).await
    })?;
    let saved = SavedPlan {
        gantry_plan_version: 1,
        scope,
        plan,
    };
    write_private(&args.output, &serde_json::to_vec_pretty(&saved)?)?;
    print!(
        "{}",
        render::text(
            &saved.plan,
            RenderOptions {
                color: ui.color,
                show_secrets: false
            }
        )
    );
    eprintln!(
        "Saved the plan (revision {}) to {}; it holds the secret values it will write, so keep it private",
        saved.plan.base_revision.unwrap_or(0),
        args.output.display()
    );
    Ok(ExitStatus::Success)
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn apply_saved(path: &Path, args: &ApplyArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    let text =
        std::fs::read(path).with_context(|| format!("cannot read plan {}", path.display()))?;
    let saved: SavedPlan = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a plan saved by `gantry plan`", path.display()))?;
    if saved.plan.mode == Mode::Sync {
        bail!(
            "plan {} was made in `sync` mode and would delete entities; `apply` never deletes\n\nhint: run `gantry plan --mode apply …` to make an apply plan",
            path.display()
        );
    }
    let run = || -> anyhow::Result<()> {
        runtime()?.block_on(async {
            let (client, target) = connect(&args.admin, &saved.scope, Access::Write, ui).await?;
            let current = reconcile::revision(&client, &target).await?;
            let planned = saved.plan.base_revision.unwrap_or(0);
            if current != planned {
                bail!(
                    "stale plan: {} changed since the plan was made (planned against revision {planned}, now {current}); nothing was applied\n\nhint: run `gantry plan` again",
                    target.display()
                );
            }
            execute(&client, &target, &saved.plan, ui).await
        })
    };
    match run() {
        Ok(()) => Ok(report(&saved.plan, &args.report, ui, &[])),
        Err(e) => fail_json(&args.report, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_args(tags: &[&str]) -> ScopeArgs {
        ScopeArgs {
            control_plane: None,
            workspace: None,
            namespace: None,
            select_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            skip_consumers: false,
        }
    }

    #[test]
    fn file_and_flag_tags_must_agree() {
        let file = vec!["team-a".to_owned()];
        let err = resolve_scope(&file, None, None, &scope_args(&["team-b"])).unwrap_err();
        assert!(err.to_string().contains("are different"), "{err}");
        let ok = resolve_scope(&file, None, None, &scope_args(&["team-a"])).unwrap();
        assert_eq!(ok.select_tags, ["team-a"]);
        let only_flag = resolve_scope(&[], None, None, &scope_args(&["x"])).unwrap();
        assert_eq!(only_flag.select_tags, ["x"]);
    }

    #[test]
    fn flags_win_over_the_file_for_control_plane_and_namespace() {
        let mut args = scope_args(&[]);
        args.control_plane = Some("cp-flag".into());
        let s = resolve_scope(&[], Some("cp-file"), Some("ns-file"), &args).unwrap();
        assert_eq!(s.control_plane.as_deref(), Some("cp-flag"));
        assert_eq!(s.namespace.as_deref(), Some("ns-file"));
    }
}
