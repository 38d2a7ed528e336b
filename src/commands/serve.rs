//! Owns `gantry serve`.

use crate::cli::ServeArgs;
use crate::exit::ExitStatus;

pub fn run(_args: ServeArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`serve` is not built yet")
}
