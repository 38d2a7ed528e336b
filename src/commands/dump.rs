//! Owns `gantry dump`: export the live state in scope as a decK file that `diff` reads back
//! with no changes. Secrets are masked unless `--show-secrets`.

use std::io::Write;

use anyhow::{Context, bail};

use crate::cli::{DumpArgs, Format};
use crate::commands::reconcile::{connect, resolve_scope};
use crate::exit::ExitStatus;
use crate::namespace::Access;
use crate::reconcile;
use crate::ui::Ui;

pub fn run(args: DumpArgs, ui: Ui) -> anyhow::Result<ExitStatus> {
    let scope = resolve_scope(&[], None, None, &args.scope)?;
    let to_stdout = args.output.as_os_str() == "-";
    if !to_stdout && args.output.exists() && !args.yes {
        bail!(
            "file `{}` already exists\n\nhint: pass `--yes` to overwrite it",
            args.output.display()
        );
    }
    let live = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (client, target) = connect(&args.admin, &scope, Access::Read, ui).await?;
            let live =
                reconcile::read_live(&client, &target, &scope.select_tags, scope.skip_consumers)
                    .await?;
            anyhow::Ok(live)
        })?;
    let mut doc = crate::state::to_document(&live, args.with_id);
    doc.format_version = Some(crate::config::document::FORMAT_VERSION.to_owned());
    doc.info.select_tags = scope.select_tags.clone();
    doc.konnect.control_plane_name = scope.control_plane.clone();
    doc.defaults.kongctl.namespace = scope.namespace.clone();
    if !args.show_secrets {
        crate::state::mask_secrets(&mut doc);
        ui.warn("secret fields are masked as `[masked]`; a masked dump cannot be re-applied (use `--show-secrets` for a restorable dump)");
    }
    let text = match args.format {
        Format::Yaml => crate::config::load::to_yaml(&doc).map_err(anyhow::Error::msg)?,
        Format::Json => serde_json::to_string_pretty(&doc)? + "\n",
    };
    if to_stdout {
        std::io::stdout().write_all(text.as_bytes())?;
    } else {
        std::fs::write(&args.output, text)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    Ok(ExitStatus::Success)
}
