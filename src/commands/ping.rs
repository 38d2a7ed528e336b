//! Owns `gantry ping`: checks the admin API answers and prints its version, decK-style.

use anyhow::Context as _;

use crate::cli::PingArgs;
use crate::client::{AdminClient, ClientOptions};
use crate::exit::ExitStatus;

pub fn run(args: PingArgs) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::new(&ClientOptions::from_args(&args.admin))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let root = runtime.block_on(client.root())?;
    if let Some(name) = &args.workspace {
        runtime.block_on(crate::reconcile::resolve_target(&client, Some(name)))?;
    }
    let version = root
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    println!("Successfully connected to Kong!");
    println!("Kong version:  {version}");
    if let Some(g) = root
        .get("gantry")
        .and_then(|g| g.get("version"))
        .and_then(|v| v.as_str())
    {
        println!("Gantry version:  {g}");
    }
    if let Some(name) = &args.workspace {
        println!("Control plane:  {name}");
    }
    Ok(ExitStatus::Success)
}
