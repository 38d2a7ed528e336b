//! Owns `gantry version`: the binary's name and version, as text or JSON.

use crate::cli::VersionArgs;
use crate::exit::ExitStatus;

pub fn run(args: VersionArgs) -> anyhow::Result<ExitStatus> {
    let name = env!("CARGO_PKG_NAME");
    let version = env!("CARGO_PKG_VERSION");
    if args.json {
        let value = serde_json::json!({ "name": name, "version": version });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{name} {version}");
    }
    Ok(ExitStatus::Success)
}
