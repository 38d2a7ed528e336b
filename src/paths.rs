//! Owns where Gantry keeps local state: the data directory (`--data-dir`, `GANTRY_DATA_DIR`,
//! `$XDG_DATA_HOME/gantry`, `~/.local/share/gantry`) and the quickstart files inside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Resolves the data directory. `explicit` is `--data-dir` (clap already folds in
/// `GANTRY_DATA_DIR`).
pub fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
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
