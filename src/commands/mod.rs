//! Owns dispatch from parsed arguments to each subcommand's `run`.

pub mod analytics;
pub mod completion;
pub mod control_plane;
pub mod dump;
pub mod file;
pub mod man;
pub mod mock_llm;
pub mod ping;
pub mod quickstart;
pub mod reconcile;
pub mod render;
pub mod reset;
pub mod serve;
pub mod validate;
pub mod version;

use std::path::PathBuf;

use crate::cli::{
    AdoptCommand, Cli, Command, CreateCommand, DeleteCommand, FileCommand, GatewayCommand,
    GetCommand,
};
use crate::exit::ExitStatus;
use crate::ui::Ui;

/// The state files to read: `FILE` arguments then `-s` ones; stdin when there are none.
pub fn state_files(files: &[PathBuf], state: &[PathBuf]) -> Vec<PathBuf> {
    let all: Vec<PathBuf> = files.iter().chain(state).cloned().collect();
    if all.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        all
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let ui = Ui::detect(cli.no_color);
    crate::client::set_verbosity(cli.verbose);
    match cli.command {
        Command::Validate(args)
        | Command::File(FileCommand::Validate(args))
        | Command::Gateway(GatewayCommand::Validate(args)) => validate::run(args),
        Command::Render(args) | Command::File(FileCommand::Render(args)) => render::run(args),
        Command::File(FileCommand::Merge(args)) => file::merge(args),
        Command::File(FileCommand::Patch(args)) => file::patch(args),
        Command::File(FileCommand::AddTags(args)) => file::add_tags(args),
        Command::File(FileCommand::RemoveTags(args)) => file::remove_tags(args),
        Command::File(FileCommand::ListTags(args)) => file::list_tags(args),
        Command::File(FileCommand::Lint(args)) => file::lint(args),
        Command::File(FileCommand::Openapi2kong(args)) => file::openapi2kong(args),
        Command::Ping(args) | Command::Gateway(GatewayCommand::Ping(args)) => ping::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Analytics(args) => analytics::run(args),
        Command::Quickstart(args) => quickstart::run(args),
        Command::MockLlm(args) => mock_llm::run(args),
        Command::Diff(args) | Command::Gateway(GatewayCommand::Diff(args)) => {
            reconcile::diff(args, ui)
        }
        Command::Apply(args) | Command::Gateway(GatewayCommand::Apply(args)) => {
            reconcile::apply(args, ui)
        }
        Command::Sync(args) | Command::Gateway(GatewayCommand::Sync(args)) => {
            reconcile::sync(args, ui)
        }
        Command::Plan(args) => reconcile::save(args, ui),
        Command::Dump(args) | Command::Gateway(GatewayCommand::Dump(args)) => dump::run(args, ui),
        Command::Reset(args) | Command::Gateway(GatewayCommand::Reset(args)) => {
            reset::run(args, ui)
        }
        Command::Get(GetCommand::ControlPlanes(args)) => control_plane::get(args),
        Command::Create(CreateCommand::ControlPlane(args)) => control_plane::create(args),
        Command::Adopt(AdoptCommand::ControlPlane(args)) => control_plane::adopt(args),
        Command::Delete(DeleteCommand::ControlPlane(args)) => control_plane::delete(args, ui),
        Command::Completion(args) => completion::run(args),
        Command::Man(args) => man::run(args),
        Command::Version(args) => version::run(args),
    }
}
