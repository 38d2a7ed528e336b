//! Owns the process exit statuses: 0 ok, 1 any error, 2 drift found (with `--non-zero-exit-code`).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked, and found no drift.
    Success,
    /// A user-visible failure whose message was already printed (validation problems, refusals).
    Failure,
    /// `--non-zero-exit-code` was given and the plan is not empty.
    Drift,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Drift => ExitCode::from(2),
        }
    }
}
