//! Owns decK's ways of giving flags without typing them: a `--config` file (`~/.gantry.yaml`,
//! else `~/.deck.yaml`; keys are flag names, as decK's) and a `DECK_<FLAG>` variable for every
//! flag. Precedence, as decK's: command line > `DECK_*` variable > config file > default. The
//! result is more command-line arguments, so clap still checks every value.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory as _};
use serde_json::Value;

use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "config file {path}: unknown key '{key}': keys are the long names of gantry's flags (e.g. kong-addr, tls-skip-verify, select-tag)"
    )]
    UnknownKey { path: String, key: String },
    #[error("config file {path}: key '{key}' must be a string, number, boolean or a list of them")]
    BadValue { path: String, key: String },
    #[error("--config needs a file name")]
    MissingValue,
}

/// The command line with flags from `DECK_*` variables and the config file appended.
pub fn effective_args(
    argv: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<OsString>, SettingsError> {
    let (mut argv, explicit) = take_config_flag(argv)?;
    let config = match explicit {
        Some(path) => Some(load(&path)?),
        None => default_config_path(env).map(|p| load(&p)).transpose()?,
    };
    let mut cmd = Cli::command();
    cmd.build();
    if let Some((path, map)) = &config {
        let known = all_long_names(&cmd);
        if let Some(key) = map.keys().find(|k| !known.contains(k.as_str())) {
            return Err(SettingsError::UnknownKey {
                path: path.display().to_string(),
                key: key.clone(),
            });
        }
    }
    // Parse as typed; a parse error is left for `main` to report as usual.
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let (leaf, leaf_matches) = leaf(&cmd, &matches);
    let mut extra: Vec<OsString> = Vec::new();
    for arg in leaf.get_arguments() {
        let (Some(long), false) = (arg.get_long(), arg.is_positional()) else {
            continue;
        };
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let source = leaf_matches.value_source(id);
        if source == Some(ValueSource::CommandLine) {
            continue;
        }
        let var = format!("DECK_{}", long.to_uppercase().replace('-', "_"));
        let clap_reads_it = arg.get_env().is_some_and(|e| e == var.as_str());
        let values: Vec<String> = if source == Some(ValueSource::EnvVariable) {
            // clap already read a variable for it.
            Vec::new()
        } else if let Some(v) = env(&var).filter(|_| !clap_reads_it) {
            if matches!(arg.get_action(), ArgAction::Append) {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                vec![v]
            }
        } else if let Some((path, map)) = &config
            && let Some(value) = map.get(long)
        {
            scalars(value).ok_or_else(|| SettingsError::BadValue {
                path: path.display().to_string(),
                key: long.to_owned(),
            })?
        } else {
            Vec::new()
        };
        for v in values {
            match arg.get_action() {
                ArgAction::SetTrue => {
                    if matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on") {
                        extra.push(format!("--{long}").into());
                    }
                }
                ArgAction::SetFalse => {
                    if matches!(
                        v.to_ascii_lowercase().as_str(),
                        "false" | "0" | "no" | "off"
                    ) {
                        extra.push(format!("--{long}").into());
                    }
                }
                _ => extra.push(format!("--{long}={v}").into()),
            }
        }
    }
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, extra);
    Ok(argv)
}

/// Removes `--config FILE` / `--config=FILE` unless the command is `serve`, whose `--config`
/// names DB-less state files.
fn take_config_flag(
    argv: Vec<OsString>,
) -> Result<(Vec<OsString>, Option<PathBuf>), SettingsError> {
    let is_serve = argv
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "serve");
    if is_serve {
        return Ok((argv, None));
    }
    let mut out = Vec::with_capacity(argv.len());
    let mut path = None;
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a);
            out.extend(it.by_ref());
            break;
        }
        let s = a.to_string_lossy();
        if s == "--config" {
            path = Some(PathBuf::from(it.next().ok_or(SettingsError::MissingValue)?));
        } else if let Some(p) = s.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        } else {
            out.push(a);
        }
    }
    Ok((out, path))
}

/// `~/.gantry.yaml` if it exists, else `~/.deck.yaml` if it exists.
fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = PathBuf::from(env("HOME").filter(|h| !h.is_empty())?);
    [".gantry.yaml", ".deck.yaml"]
        .iter()
        .map(|n| home.join(n))
        .find(|p| p.is_file())
}

fn load(path: &Path) -> Result<(PathBuf, serde_json::Map<String, Value>), SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let value: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_yaml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?
    };
    match value {
        Value::Object(map) => Ok((path.to_owned(), map)),
        Value::Null => Ok((path.to_owned(), Default::default())),
        _ => Err(SettingsError::Parse {
            path: path.display().to_string(),
            reason: "expected a map of flag names to values".into(),
        }),
    }
}

fn scalars(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Bool(b) => Some(vec![b.to_string()]),
        Value::Number(n) => Some(vec![n.to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|i| scalars(i).map(|mut s| s.remove(0)))
            .collect(),
        _ => None,
    }
}

fn leaf<'a>(
    cmd: &'a clap::Command,
    matches: &'a ArgMatches,
) -> (&'a clap::Command, &'a ArgMatches) {
    match matches.subcommand() {
        Some((name, sub)) => match cmd.find_subcommand(name) {
            Some(sub_cmd) => leaf(sub_cmd, sub),
            None => (cmd, matches),
        },
        None => (cmd, matches),
    }
}

fn all_long_names(cmd: &clap::Command) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        for a in c.get_arguments() {
            if let Some(l) = a.get_long() {
                out.insert(l.to_owned());
            }
        }
        stack.extend(c.get_subcommands());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn run(argv: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        effective_args(args(argv), &env)
            .unwrap()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn deck_variables_fill_flags_not_given() {
        let got = run(
            &["gantry", "diff", "a.yaml"],
            &[
                ("DECK_SKIP_CONSUMERS", "true"),
                ("DECK_SELECT_TAG", "a,b"),
                ("DECK_TIMEOUT", "3"),
            ],
        );
        assert_eq!(
            got,
            [
                "gantry",
                "diff",
                "a.yaml",
                "--timeout=3",
                "--select-tag=a",
                "--select-tag=b",
                "--skip-consumers"
            ]
        );
        // The command line wins.
        let got = run(
            &["gantry", "diff", "--timeout", "7"],
            &[("DECK_TIMEOUT", "3")],
        );
        assert_eq!(got, ["gantry", "diff", "--timeout", "7"]);
        // false leaves a switch off.
        let got = run(&["gantry", "diff"], &[("DECK_SKIP_CONSUMERS", "false")]);
        assert_eq!(got, ["gantry", "diff"]);
    }

    #[test]
    fn serve_keeps_its_own_config_flag() {
        let got = run(&["gantry", "serve", "--config", "kong.yaml"], &[]);
        assert_eq!(got, ["gantry", "serve", "--config", "kong.yaml"]);
    }
}
