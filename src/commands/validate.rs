//! Owns `gantry validate` (and `gantry file validate`): load and check state files offline and
//! list every problem, each as `file:line:col: path: message` (or as JSON objects).

use crate::cli::ValidateArgs;
use crate::exit::ExitStatus;
use crate::state::{self, LoadOptions};

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitStatus> {
    let opts = LoadOptions {
        mock_env: args.mock_env,
        ..LoadOptions::default()
    };
    let result = state::load(
        &super::state_files(&args.state.files, &args.state.state),
        &opts,
    );
    if args.json_output {
        let problems = result
            .as_ref()
            .err()
            .map(|p| p.0.as_slice())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "problems": problems.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(if problems.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        });
    }
    match result {
        Ok(loaded) => {
            for note in crate::config::extensions::notes(&loaded.document) {
                eprintln!("note: {note}");
            }
            Ok(ExitStatus::Success)
        }
        Err(problems) => {
            eprintln!("{problems}");
            let n = problems.0.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(ExitStatus::Failure)
        }
    }
}
