//! Owns `gantry validate` (and `gantry file validate`): load and check state files offline and
//! list every problem, each as `file:line:col: path: message`.

use crate::cli::ValidateArgs;
use crate::exit::ExitStatus;
use crate::state::{self, LoadOptions};

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitStatus> {
    let opts = LoadOptions {
        mock_env: args.mock_env,
        ..LoadOptions::default()
    };
    match state::load(&args.state.files, &opts) {
        Ok(_) => Ok(ExitStatus::Success),
        Err(problems) => {
            eprintln!("{problems}");
            let n = problems.0.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(ExitStatus::Failure)
        }
    }
}
