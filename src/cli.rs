//! Owns the command-line surface: clap derive structs only, no logic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative config for Kong-style LLM gateways, and the gateway itself.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Disable coloured output (also `NO_COLOR`).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check state files offline: syntax, templates, schemas and references.
    Validate(ValidateArgs),
    /// Print the merged, expanded, defaults-filled state.
    Render(RenderArgs),
    /// decK-style file commands.
    #[command(subcommand)]
    File(FileCommand),
    /// Check that the admin API answers and print its version.
    Ping(PingArgs),
    /// Run the gateway: proxy and admin API.
    Serve(ServeArgs),
    /// Start a local gateway for a control plane in the background, or stop it with `-d`.
    Quickstart(QuickstartArgs),
    /// Run the local LLM provider simulator.
    MockLlm(MockLlmArgs),
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Same as `gantry validate`.
    Validate(ValidateArgs),
    /// Same as `gantry render`.
    Render(RenderArgs),
}

/// Where state files come from: files, directories (walked for .yaml/.yml/.json) or `-` for stdin.
#[derive(Debug, Clone, Args)]
pub struct StateFiles {
    /// State files or directories; `-` reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub state: StateFiles,
    /// Validate without the `DECK_` variables set: each stands for a placeholder value.
    #[arg(long)]
    pub mock_env: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub state: StateFiles,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Print secret fields instead of `[masked]`.
    #[arg(long)]
    pub show_secrets: bool,
    /// Render without the `DECK_` variables set: each stands for a placeholder value.
    #[arg(long)]
    pub mock_env: bool,
}

/// How to reach the admin API.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Admin API address.
    #[arg(
        long,
        env = "DECK_KONG_ADDR",
        default_value = "http://localhost:8001",
        value_name = "URL"
    )]
    pub kong_addr: String,
    /// Extra request header `key:value`; repeatable.
    #[arg(long = "headers", value_name = "KEY:VALUE")]
    pub headers: Vec<String>,
    /// Sent as the `Kong-Admin-Token` header.
    #[arg(long, env = "DECK_KONG_ADMIN_TOKEN", value_name = "TOKEN")]
    pub kong_admin_token: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Proxy listen address.
    #[arg(long, default_value = "0.0.0.0:8000", value_name = "ADDR")]
    pub proxy_listen: String,
    /// Admin API listen address.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDR")]
    pub admin_listen: String,
    /// Where the SQLite store lives (default: `$XDG_DATA_HOME/gantry`).
    #[arg(long, env = "GANTRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The control plane whose config the proxy serves; created if missing.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub control_plane: String,
    /// DB-less mode: boot from decK state files; the admin API is then read-only.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub config: Vec<PathBuf>,
    /// Require this token in the `Kong-Admin-Token` header on every admin call.
    #[arg(long, env = "GANTRY_ADMIN_TOKEN", value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Send a provider's traffic to another base URL, e.g. `openai=http://127.0.0.1:9000`.
    #[arg(long, value_name = "PROVIDER=URL")]
    pub upstream_override: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// Stop the gateway and delete the control plane and its data.
    #[arg(short = 'd', long = "destroy")]
    pub destroy: bool,
    /// The control plane to create and serve.
    #[arg(
        long,
        env = "GANTRY_CONTROL_PLANE_NAME",
        default_value = "default",
        value_name = "NAME"
    )]
    pub control_plane: String,
    /// Proxy listen address.
    #[arg(long, default_value = "0.0.0.0:8000", value_name = "ADDR")]
    pub proxy_listen: String,
    /// Admin API listen address.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDR")]
    pub admin_listen: String,
    /// Where the store, pid and log files live.
    #[arg(long, env = "GANTRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also start `gantry mock-llm` and send provider traffic to it.
    #[arg(long)]
    pub mock_llm: bool,
    /// Listen address of the mock LLM started by `--mock-llm`.
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub mock_llm_listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct MockLlmArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub listen: String,
}
