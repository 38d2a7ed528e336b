//! Owns where Gantry keeps local state: the data directory (`--data-dir`, `GANTRY_DATA_DIR`,
//! `$XDG_DATA_HOME/gantry`, `~/.local/share/gantry`) and the quickstart files inside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Resolves the data directory. `explicit` is `--data-dir` (clap already folds in
/// `GANTRY_DATA_DIR`).
pub fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    data_dir_with(explicit, |var| std::env::var_os(var))
}

fn data_dir_with(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let from = |var: &str| env(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(xdg) = from("XDG_DATA_HOME") {
        return Ok(xdg.join("gantry"));
    }
    let home = from("HOME").context(
        "cannot find a data directory: set --data-dir, GANTRY_DATA_DIR, XDG_DATA_HOME or HOME",
    )?;
    Ok(home.join(".local").join("share").join("gantry"))
}

/// Files `quickstart` keeps in the data directory.
pub struct QuickstartFiles {
    pub state: PathBuf,
    pub pid: PathBuf,
    pub log: PathBuf,
    pub mock_pid: PathBuf,
    pub mock_log: PathBuf,
}

impl QuickstartFiles {
    pub fn new(dir: &Path) -> Self {
        Self {
            state: dir.join("quickstart.json"),
            pid: dir.join("gantry.pid"),
            log: dir.join("gantry.log"),
            mock_pid: dir.join("mock-llm.pid"),
            mock_log: dir.join("mock-llm.log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn the_flag_wins_then_xdg_data_home_then_home() {
        let all = [("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")];
        let flag = Some(PathBuf::from("/flag"));
        assert_eq!(
            data_dir_with(flag, env(&all)).unwrap(),
            PathBuf::from("/flag")
        );
        assert_eq!(
            data_dir_with(None, env(&all)).unwrap(),
            PathBuf::from("/xdg/gantry")
        );
        let home = [("XDG_DATA_HOME", ""), ("HOME", "/home/u")];
        assert_eq!(
            data_dir_with(None, env(&home)).unwrap(),
            PathBuf::from("/home/u/.local/share/gantry")
        );
        assert!(data_dir_with(None, env(&[])).is_err());
    }
}
