//! Owns output policy: whether colour and progress bars are on. Data goes to stdout, messages
//! and progress to stderr; colour only on a terminal, never with `NO_COLOR` or `--no-color`.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub color: bool,
    pub stderr_is_tty: bool,
    pub stdin_is_tty: bool,
}

impl Ui {
    pub fn detect(no_color_flag: bool) -> Self {
        let no_color = no_color_flag || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !no_color && std::io::stdout().is_terminal(),
            stderr_is_tty: std::io::stderr().is_terminal(),
            stdin_is_tty: std::io::stdin().is_terminal(),
        }
    }

    /// A spinner on stderr for long operations, only on a terminal.
    pub fn progress(&self, message: String) -> Option<indicatif::ProgressBar> {
        if !self.stderr_is_tty {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Some(bar)
    }

    /// Prints a warning line on stderr.
    pub fn warn(&self, message: &str) {
        if self.color {
            eprintln!("\x1b[33mwarning:\x1b[0m {message}");
        } else {
            eprintln!("warning: {message}");
        }
    }
}
