//! Owns `gantry validate`.

use crate::cli::ValidateArgs;
use crate::exit::ExitStatus;

pub fn run(_args: ValidateArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`validate` is not built yet")
}
