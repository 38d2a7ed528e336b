//! Owns `gantry mock-llm`: runs the local LLM provider simulator until Ctrl-C.

use anyhow::Context;

use crate::cli::MockLlmArgs;
use crate::exit::ExitStatus;

pub fn run(args: MockLlmArgs) -> anyhow::Result<ExitStatus> {
    let rt = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("could not listen on {}", args.listen))?;
        let addr = listener
            .local_addr()
            .context("could not read the listen address")?;
        println!("mock-llm listening on {addr}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        embedded_gateway::mock_llm::serve(listener, shutdown)
            .await
            .context("mock-llm stopped with an error")?;
        Ok(ExitStatus::Success)
    })
}
