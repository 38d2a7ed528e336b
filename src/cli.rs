//! Owns the command-line surface: clap derive structs only, no logic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative config for Kong-style LLM gateways, and the gateway itself.
#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about,
    propagate_version = true,
    after_help = "Every flag can also come from a DECK_<FLAG> variable (DECK_KONG_ADDR, DECK_SELECT_TAG=a,b, DECK_TLS_SKIP_VERIFY=true) or from a config file: --config FILE, by default ~/.gantry.yaml, else ~/.deck.yaml, with flag names as keys (kong-addr: http://localhost:8001). The command line wins over the variables, which win over the file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Disable coloured output (also `NO_COLOR`).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Log each admin API request and response line (method, URL, status, time) on stderr;
    /// header values given by flags show as `[masked]` and bodies are never logged.
    #[arg(long, global = true, default_value_t = 0, value_name = "LEVEL")]
    pub verbose: u8,
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
    /// Requests, errors, latency, tokens and cost from the gateway's analytics store.
    Analytics(AnalyticsArgs),
    /// Start a local gateway for a control plane in the background, or stop it with `-d`.
    Quickstart(QuickstartArgs),
    /// Run the local LLM provider simulator.
    MockLlm(MockLlmArgs),
    /// Show what `sync` would change (or `apply` with `--mode apply`), without changing anything.
    Diff(DiffArgs),
    /// Create and update entities from state files; never deletes.
    Apply(ApplyArgs),
    /// Create, update and delete in-scope entities so the gateway matches the files.
    Sync(SyncArgs),
    /// Save the plan for state files, to execute later with `apply --plan`.
    Plan(PlanArgs),
    /// Export the live state (in scope) as a decK file.
    Dump(DumpArgs),
    /// Delete every entity in scope.
    Reset(ResetArgs),
    /// decK-style gateway commands.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// List resources (kongctl style).
    #[command(subcommand)]
    Get(GetCommand),
    /// Create a resource.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Adopt an existing resource into a namespace, changing nothing else.
    #[command(subcommand)]
    Adopt(AdoptCommand),
    /// Delete a resource.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completion(CompletionArgs),
    /// Print the man page (roff), or write one page per command into a directory.
    Man(ManArgs),
    /// Print Gantry's version.
    Version(VersionArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write `gantry.1` and one page per subcommand (`gantry-diff.1`, ...) into this directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Print `{"name": ..., "version": ...}` as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    Yaml,
}

/// Admin connection and output format for the control-plane commands.
#[derive(Debug, Clone, Args)]
pub struct CpCommon {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List control planes with their labels and namespace.
    #[command(name = "control-planes", alias = "control-plane", alias = "cp")]
    ControlPlanes(CpCommon),
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a control plane; an existing name is an error.
    #[command(name = "control-plane", alias = "cp")]
    ControlPlane(CreateControlPlaneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CreateControlPlaneArgs {
    pub name: String,
    /// A label `key=value`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub common: CpCommon,
}

#[derive(Debug, Subcommand)]
pub enum AdoptCommand {
    /// Stamp `KONGCTL-namespace: NS` on a control plane.
    #[command(name = "control-plane", alias = "cp")]
    ControlPlane(AdoptControlPlaneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AdoptControlPlaneArgs {
    /// The control plane's name or id.
    pub control_plane: String,
    /// The namespace that takes ownership.
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// Take the control plane over from another namespace.
    #[arg(long)]
    pub overwrite_namespace: bool,
    #[command(flatten)]
    pub common: CpCommon,
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Delete a control plane and all its entities.
    #[command(name = "control-plane", alias = "cp")]
    ControlPlane(DeleteControlPlaneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DeleteControlPlaneArgs {
    /// The control plane's name or id.
    pub control_plane: String,
    /// Refuse unless the control plane belongs to this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub common: CpCommon,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Same as `gantry diff`.
    Diff(DiffArgs),
    /// Same as `gantry apply`.
    Apply(ApplyArgs),
    /// Same as `gantry sync`.
    Sync(SyncArgs),
    /// Same as `gantry dump`.
    Dump(DumpArgs),
    /// Same as `gantry reset`.
    Reset(ResetArgs),
    /// Same as `gantry ping`.
    Ping(PingArgs),
    /// Same as `gantry validate`.
    Validate(ValidateArgs),
}

/// Which control plane, namespace and tags a command works on.
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// Work on this control plane (also `_konnect.control_plane_name`); default: the one `serve` serves.
    #[arg(long, env = "GANTRY_CONTROL_PLANE_NAME", value_name = "NAME")]
    pub control_plane: Option<String>,
    /// decK's workspace: Gantry's control planes play that part, so `-w NAME` means
    /// `--control-plane NAME` (giving both with different names is an error).
    #[arg(short = 'w', long, value_name = "NAME")]
    pub workspace: Option<String>,
    /// The namespace that must own the control plane (also `_defaults.kongctl.namespace`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only entities carrying all these tags are read, changed or deleted; repeatable, or
    /// several at once separated by commas (`--select-tag a,b`), as in decK.
    #[arg(long = "select-tag", value_name = "TAG", value_delimiter = ',')]
    pub select_tags: Vec<String>,
    /// Leave consumers and their credentials and plugins out of the plan.
    #[arg(long)]
    pub skip_consumers: bool,
}

/// Output switches shared by the reconciling commands.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Print one JSON report on stdout instead of event lines.
    #[arg(long)]
    pub json_output: bool,
    /// Exit 2 when there are changes.
    #[arg(long)]
    pub non_zero_exit_code: bool,
    /// Print secret fields instead of `[masked]` (decK's `--no-mask-deck-env-vars-value` too).
    #[arg(long, visible_alias = "no-mask-deck-env-vars-value")]
    pub show_secrets: bool,
    /// Print no event lines and no summary (the JSON report of `--json-output` still prints).
    #[arg(long)]
    pub silence_events: bool,
    /// Accepted for decK compatibility; the whole plan is sent as one atomic batch.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallelism: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub state: StateFiles,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Diff as `apply` would run (no deletes) instead of as `sync`.
    #[arg(long, value_enum, default_value_t = PlanMode::Sync)]
    pub mode: PlanMode,
    /// Accepted as decK does; `diff` never asks anything, so there is nothing to confirm.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanMode {
    Apply,
    Sync,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// State files or directories; `-` reads stdin. Not used with `--plan`.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A state file, decK's older way to name them (`-s a.yaml -s b.yaml`); repeatable.
    #[arg(short = 's', long = "state", value_name = "FILE")]
    pub state: Vec<PathBuf>,
    /// Execute a plan saved by `gantry plan`, refusing it if the state changed since.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["files", "state"])]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub state: StateFiles,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub state: StateFiles,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Where to write the plan.
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    pub output: PathBuf,
    /// The plan's mode: `apply` never deletes.
    #[arg(long, value_enum, default_value_t = PlanMode::Apply)]
    pub mode: PlanMode,
}

#[derive(Debug, Clone, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Output file; `-` is stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Keep entity ids in the output.
    #[arg(long)]
    pub with_id: bool,
    /// Print secret fields instead of `[masked]`.
    #[arg(long)]
    pub show_secrets: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Allow a reset with no select tag: deletes every entity of the control plane.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON report on stdout.
    #[arg(long)]
    pub json_output: bool,
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Same as `gantry validate`.
    Validate(ValidateArgs),
    /// Same as `gantry render`.
    Render(RenderArgs),
    /// Merge decK files into one: top-level arrays are concatenated, other keys taken from the
    /// last file; no validation.
    Merge(FileMergeArgs),
    /// Apply patches (`--selector` + `--value`, or patch files) on top of a decK file.
    Patch(FilePatchArgs),
    /// Add tags to entities (all taggable entities unless `--selector` is given).
    AddTags(FileAddTagsArgs),
    /// Remove tags from entities (or keep only some with `--keep-only`).
    RemoveTags(FileRemoveTagsArgs),
    /// List the tags in use, sorted.
    ListTags(FileListTagsArgs),
    /// Check a decK file against Gantry's built-in rules: plaintext provider keys, routes
    /// without authentication, repeated model aliases.
    Lint(FileLintArgs),
    /// Convert an OpenAPI 3 spec into a decK file (decK's naming rules).
    #[command(name = "openapi2kong")]
    Openapi2kong(FileOpenapiArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FileOpenapiArgs {
    /// The OpenAPI 3 spec (YAML or JSON); `-` reads stdin.
    #[arg(short = 's', long = "spec", default_value = "-", value_name = "FILE")]
    pub spec: String,
    /// Output file; `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: String,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Tag every entity with this tag (instead of the spec's `x-kong-tags`); repeatable.
    #[arg(long = "select-tag", value_name = "TAG")]
    pub select_tags: Vec<String>,
    /// The UUID namespace for the generated ids (default: the DNS namespace, as decK's).
    #[arg(long, value_name = "UUID")]
    pub uuid_base: Option<uuid::Uuid>,
    /// Generate no ids.
    #[arg(long)]
    pub no_id: bool,
    /// Do not make one route per value of a required header enum (gantry never does; without
    /// this flag such a spec is refused so that the difference from decK is not silent).
    #[arg(long)]
    pub skip_route_by_header: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FileLintArgs {
    /// decK's ruleset argument: custom Spectral rulesets are not supported, so giving one is an
    /// error (the rules are built in).
    #[arg(value_name = "RULESET")]
    pub ruleset: Option<String>,
    /// decK file to lint; `-` reads stdin.
    #[arg(short = 's', long = "state", default_value = "-", value_name = "FILE")]
    pub state: String,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, default_value_t = LintFormat::Plain)]
    pub format: LintFormat,
    /// Exit 1 when a finding is at least this severe.
    #[arg(short = 'F', long, value_enum, default_value_t = LintSeverity::Error)]
    pub fail_severity: LintSeverity,
    /// Show only the findings at or above `--fail-severity`.
    #[arg(short = 'D', long)]
    pub display_only_failures: bool,
    /// Output file; `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Plain,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintSeverity {
    Error,
    Warn,
    Info,
    Hint,
}

/// Input and output of the file tools.
#[derive(Debug, Clone, Args)]
pub struct FileIo {
    /// decK file to process; `-` reads stdin.
    #[arg(short = 's', long = "state", default_value = "-", value_name = "FILE")]
    pub state: String,
    /// Output file; `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: String,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Yaml)]
    pub format: Format,
}

#[derive(Debug, Clone, Args)]
pub struct FileMergeArgs {
    /// The files to merge, in order.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<String>,
    /// Output file; `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: String,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Yaml)]
    pub format: Format,
}

#[derive(Debug, Clone, Args)]
pub struct FilePatchArgs {
    /// Patch files `{_format_version, patches: [{selectors, values, remove}]}`, applied in order
    /// after the `--value` flags.
    #[arg(value_name = "PATCH_FILE")]
    pub patch_files: Vec<String>,
    /// JSONPath of the nodes to patch (e.g. `$..services[*]`); repeatable.
    #[arg(long = "selector", value_name = "JSONPATH", requires = "values")]
    pub selectors: Vec<String>,
    /// `key:json` to set on selected objects (`key:` removes it), or a JSON array to append
    /// to selected arrays; repeatable.
    #[arg(long = "value", value_name = "KEY:JSON", requires = "selectors")]
    pub values: Vec<String>,
    #[command(flatten)]
    pub io: FileIo,
}

#[derive(Debug, Clone, Args)]
pub struct FileAddTagsArgs {
    /// The tags to add.
    #[arg(value_name = "TAG", required = true)]
    pub tags: Vec<String>,
    /// JSONPath of the entities to tag (default: every Kong entity); repeatable.
    #[arg(long = "selector", value_name = "JSONPATH")]
    pub selectors: Vec<String>,
    #[command(flatten)]
    pub io: FileIo,
}

#[derive(Debug, Clone, Args)]
pub struct FileRemoveTagsArgs {
    /// The tags to remove (or, with `--keep-only`, to keep).
    #[arg(value_name = "TAG")]
    pub tags: Vec<String>,
    /// Remove every tag except the ones listed (all of them if none are listed).
    #[arg(long)]
    pub keep_only: bool,
    /// Keep tag arrays that end up empty.
    #[arg(long = "keep-empty-array")]
    pub keep_empty_array: bool,
    /// JSONPath of the entities to change (default: every Kong entity); repeatable.
    #[arg(long = "selector", value_name = "JSONPATH")]
    pub selectors: Vec<String>,
    #[command(flatten)]
    pub io: FileIo,
}

#[derive(Debug, Clone, Args)]
pub struct FileListTagsArgs {
    /// decK file to read; `-` reads stdin.
    #[arg(short = 's', long = "state", default_value = "-", value_name = "FILE")]
    pub state: String,
    /// JSONPath of the entities to look at (default: every Kong entity); repeatable.
    #[arg(long = "selector", value_name = "JSONPATH")]
    pub selectors: Vec<String>,
    /// Output: one tag per line (`plain`), or a JSON or YAML list.
    #[arg(long, value_enum, ignore_case = true, default_value_t = TagListFormat::Plain)]
    pub format: TagListFormat,
    /// Output file; `-` writes to stdout.
    #[arg(
        short = 'o',
        long = "output-file",
        default_value = "-",
        value_name = "FILE"
    )]
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TagListFormat {
    Plain,
    Json,
    Yaml,
}

/// Where state files come from: files, directories (walked for .yaml/.yml/.json) or `-` for stdin.
/// With neither `FILE` nor `-s`, stdin is read.
#[derive(Debug, Clone, Args)]
pub struct StateFiles {
    /// State files or directories; `-` reads stdin (the default).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A state file, decK's older way to name them (`-s a.yaml -s b.yaml`); repeatable.
    #[arg(short = 's', long = "state", value_name = "FILE")]
    pub state: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub state: StateFiles,
    /// Validate without the `DECK_` variables set: each stands for a placeholder value.
    #[arg(long)]
    pub mock_env: bool,
    /// Print `{"problems": [{file, line, column, path, message}, ...]}` on stdout.
    #[arg(long)]
    pub json_output: bool,
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
    /// Admin API address (default `http://localhost:8001`; also `GANTRY_ADMIN_URL`).
    // `--help` names the variable, never its value: a URL may carry credentials.
    #[arg(
        long,
        env = "DECK_KONG_ADDR",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub kong_addr: Option<String>,
    /// Extra request header `key:value`; repeatable.
    #[arg(long = "headers", value_name = "KEY:VALUE")]
    pub headers: Vec<String>,
    /// Sent as the `Kong-Admin-Token` header.
    #[arg(
        long,
        env = "DECK_KONG_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub kong_admin_token: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS to an `https://` admin API (decK's flags and `DECK_*` variables).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Do not verify the admin API's certificate (insecure).
    #[arg(long, env = "DECK_TLS_SKIP_VERIFY")]
    pub tls_skip_verify: bool,
    /// Verify the certificate against this name (and send it as SNI) instead of the address's
    /// host.
    #[arg(long, env = "DECK_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// PEM CA certificate(s) to trust for the admin API; wins over `--ca-cert-file`.
    #[arg(
        long,
        env = "DECK_CA_CERT",
        value_name = "PEM",
        allow_hyphen_values = true
    )]
    pub ca_cert: Option<String>,
    /// File with PEM CA certificate(s) to trust for the admin API.
    #[arg(long, env = "DECK_CA_CERT_FILE", value_name = "FILE")]
    pub ca_cert_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `--tls-client-key`).
    #[arg(
        long,
        env = "DECK_TLS_CLIENT_CERT",
        value_name = "PEM",
        allow_hyphen_values = true
    )]
    pub tls_client_cert: Option<String>,
    /// File with the PEM client certificate for mutual TLS (with `--tls-client-key-file`).
    #[arg(long, env = "DECK_TLS_CLIENT_CERT_FILE", value_name = "FILE")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(
        long,
        env = "DECK_TLS_CLIENT_KEY",
        value_name = "PEM",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub tls_client_key: Option<String>,
    /// File with the PEM private key of the client certificate.
    #[arg(long, env = "DECK_TLS_CLIENT_KEY_FILE", value_name = "FILE")]
    pub tls_client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// decK's workspace: also check that the control plane of this name exists.
    #[arg(short = 'w', long, value_name = "NAME")]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct AnalyticsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Group (and rank by tokens, then cost) by this.
    #[arg(long, value_enum, default_value_t = AnalyticsBy::Consumer)]
    pub by: AnalyticsBy,
    /// The time range, ending now: e.g. 15m, 1h, 24h, 7d.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub since: String,
    /// Only this consumer (username).
    #[arg(long, value_name = "USERNAME")]
    pub consumer: Option<String>,
    /// Only this route (name).
    #[arg(long, value_name = "NAME")]
    pub route: Option<String>,
    /// Only this upstream model.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// What `gantry analytics` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalyticsBy {
    Consumer,
    Route,
    Model,
}

impl AnalyticsBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Route => "route",
            Self::Model => "model",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Proxy listen address.
    #[arg(long, default_value = "0.0.0.0:8000", value_name = "ADDR")]
    pub proxy_listen: String,
    /// Admin API listen address.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDR")]
    pub admin_listen: String,
    /// How long the local analytics store (`analytics.db` in the data dir) keeps its
    /// per-minute rollups, e.g. 7d, 24h; `0` turns analytics off.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub analytics_retention: String,
    /// Status listen address (Kong's status API): serves `GET /metrics` without the admin
    /// token. Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub status_listen: Option<String>,
    /// Where the SQLite store lives (default: `$XDG_DATA_HOME/gantry`); with --store, where the
    /// last known good configuration is kept.
    #[arg(long, env = "GANTRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Share the store with other nodes: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
    /// (default: SQLite under --data-dir).
    #[arg(long, env = "GANTRY_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
    /// How often the stored revision is polled for changes made by other nodes, e.g. `2s`
    /// (default: 2s with --store, 400ms with SQLite).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub store_poll: Option<std::time::Duration>,
    /// The control plane whose config the proxy serves; created if missing.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub control_plane: String,
    /// DB-less mode: boot from decK state files; the admin API is then read-only.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub config: Vec<PathBuf>,
    /// Require this token in the `Kong-Admin-Token` header on every admin call.
    #[arg(
        long,
        env = "GANTRY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Send a provider's traffic to another base URL, e.g. `openai=http://127.0.0.1:9000`.
    #[arg(long, value_name = "PROVIDER=URL")]
    pub upstream_override: Vec<String>,
    /// Proxy worker threads, each with its own event loop (default: one per CPU core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Longest wait for the next bytes of a request body before answering 408, like Kong's
    /// `client_body_timeout`: seconds, or with a unit (`60s`, `500ms`); `0` disables.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub client_body_timeout: String,
    /// Slowest request body rate accepted, in bytes per second: a body may take the body
    /// timeout plus one second per this many bytes in all; `0` disables.
    #[arg(long, default_value_t = 500, value_name = "BYTES")]
    pub client_body_min_rate: u64,
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
