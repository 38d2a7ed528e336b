//! Owns `gantry completion SHELL`: prints the clap_complete script for the whole command tree.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionArgs};
use crate::exit::ExitStatus;

pub fn run(args: CompletionArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "gantry", &mut out);
    Ok(ExitStatus::Success)
}
