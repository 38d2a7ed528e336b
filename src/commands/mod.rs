//! Owns dispatch from parsed arguments to each subcommand's `run`.

pub mod mock_llm;
pub mod ping;
pub mod quickstart;
pub mod render;
pub mod serve;
pub mod validate;

use crate::cli::{Cli, Command, FileCommand};
use crate::exit::ExitStatus;

pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Validate(args) | Command::File(FileCommand::Validate(args)) => validate::run(args),
        Command::Render(args) | Command::File(FileCommand::Render(args)) => render::run(args),
        Command::Ping(args) => ping::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Quickstart(args) => quickstart::run(args),
        Command::MockLlm(args) => mock_llm::run(args),
    }
}
