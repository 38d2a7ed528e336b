//! Owns `gantry completion SHELL`: prints the clap_complete script for the whole command tree.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionArgs};
use crate::exit::ExitStatus;

pub fn run(args: CompletionArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    // Rendered first, then written: clap_complete panics on a write error, and a closed pipe
    // (`gantry completion bash | head`) is an ordinary way to stop reading.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gantry", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitStatus::Success)
}
