//! Owns `gantry mock-llm`.

use crate::cli::MockLlmArgs;
use crate::exit::ExitStatus;

pub fn run(_args: MockLlmArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`mock-llm` is not built yet")
}
