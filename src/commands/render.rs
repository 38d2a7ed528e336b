//! Owns `gantry render` (and `gantry file render`): print the merged, expanded and
//! defaults-filled state, secrets masked by field unless `--show-secrets`.

use std::io::Write;

use anyhow::Context;

use crate::cli::{Format, RenderArgs};
use crate::config::Document;
use crate::config::load::to_yaml;
use crate::exit::ExitStatus;
use crate::state::{self, LoadOptions, Loaded};

pub fn run(args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let opts = LoadOptions {
        mock_env: args.mock_env,
        ..LoadOptions::default()
    };
    let loaded = match state::load(
        &super::state_files(&args.state.files, &args.state.state),
        &opts,
    ) {
        Ok(l) => l,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitStatus::Failure);
        }
    };
    let doc = rendered(&loaded, args.show_secrets);
    let text = match args.format {
        Format::Yaml => to_yaml(&doc).map_err(anyhow::Error::msg)?,
        Format::Json => serde_json::to_string_pretty(&doc)? + "\n",
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    Ok(ExitStatus::Success)
}

/// The document render prints: entities with defaults filled, plus the file-level settings.
fn rendered(loaded: &Loaded, show_secrets: bool) -> Document {
    let mut doc = state::to_document(&state::to_snapshot(loaded), false);
    doc.info.select_tags = loaded.select_tags.clone();
    doc.konnect = loaded.document.konnect.clone();
    doc.defaults = loaded.document.defaults.clone();
    if !show_secrets {
        state::mask_secrets(&mut doc);
    }
    doc
}
