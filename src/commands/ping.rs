//! Owns `gantry ping`.

use crate::cli::PingArgs;
use crate::exit::ExitStatus;

pub fn run(_args: PingArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`ping` is not built yet")
}
