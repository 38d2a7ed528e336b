//! Owns `gantry reset`: delete every entity in scope, children first, in one atomic batch.
//! Without a select tag it refuses unless `--all`; it asks on a terminal and needs `--yes`
//! elsewhere.

use std::io::BufRead;

use anyhow::bail;
use embedded_gateway::snapshot::ConfigSnapshot;

use crate::cli::ResetArgs;
use crate::commands::reconcile::{connect, resolve_scope};
use crate::exit::ExitStatus;
use crate::namespace::Access;
use crate::plan::render::{self, RenderOptions};
use crate::plan::{self, Mode};
use crate::reconcile;
use crate::ui::Ui;

pub fn run(args: ResetArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    let scope = resolve_scope(&[], None, None, &args.scope)?;
    if scope.select_tags.is_empty() && !args.all {
        bail!(
            "refusing to reset without a select tag: that would delete every entity of the control plane\n\nhint: pass `--select-tag TAG` to delete one recipe's entities, or `--all` to delete everything"
        );
    }
    if !args.yes && !ui.stdin_is_tty {
        bail!(
            "refusing to reset without confirmation: stdin is not a terminal\n\nhint: pass `--yes`"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let plan = rt.block_on(async {
        let (client, target) = connect(&args.admin, &scope, Access::Write, ui).await?;
        let live = reconcile::read_live(&client, &target, &scope.select_tags, scope.skip_consumers)
            .await?;
        let plan = plan::compute(&ConfigSnapshot::default(), &live, Mode::Sync);
        if plan.is_empty() {
            return anyhow::Ok(plan);
        }
        if !args.yes && !confirm(plan.changes.len(), &target.display())? {
            bail!("reset cancelled; nothing was deleted");
        }
        reconcile::execute(&client, &target, &plan).await?;
        Ok(plan)
    })?;
    let opts = RenderOptions {
        color: ui.color,
        show_secrets: false,
    };
    if args.json_output {
        let doc = render::json(&plan, opts, &[], &[]);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render::text(&plan, opts));
    }
    Ok(ExitStatus::Success)
}

fn confirm(count: usize, target: &str) -> anyhow::Result<bool> {
    eprint!("This will delete {count} entities from {target}. Type 'yes' to continue: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
