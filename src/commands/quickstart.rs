//! Owns `gantry quickstart`.

use crate::cli::QuickstartArgs;
use crate::exit::ExitStatus;

pub fn run(_args: QuickstartArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`quickstart` is not built yet")
}
