//! The `gantry` binary: parse arguments, run the command, map the outcome to an exit code.

mod cli;
mod client;
mod commands;
mod config;
mod exit;
mod file_tools;
mod namespace;
mod paths;
mod plan;
mod reconcile;
mod references;
mod settings;
mod state;
mod tls;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 1, not clap's 2: exit 2 means drift (`--non-zero-exit-code`).
    let env = |k: &str| std::env::var(k).ok();
    let argv = match settings::effective_args(std::env::args_os().collect(), &env) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let cli = match cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::BrokenPipe
                {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, as `{:#}` prints them, but without repeating a cause
/// whose text the line already carries (many errors quote their source in their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
