//! Owns `gantry render`.

use crate::cli::RenderArgs;
use crate::exit::ExitStatus;

pub fn run(_args: RenderArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`render` is not built yet")
}
