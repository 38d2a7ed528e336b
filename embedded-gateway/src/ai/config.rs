//! Owns the `ai-proxy-advanced` and `ai-proxy` plugin configurations (Kong 3.14 field names,
//! types and defaults) and Kong's entity rules for them, with Kong's messages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::FieldError;

fn yes() -> bool {
    true
}
fn default_weight() -> u32 {
    100
}
fn default_retries() -> u32 {
    5
}
fn default_timeout() -> u32 {
    60_000
}
fn default_max_body() -> u64 {
    1_048_576
}
fn default_hash_header() -> String {
    "X-Kong-LLM-Request-ID".to_owned()
}
fn default_slots() -> u32 {
    10_000
}
fn default_fail_timeout() -> u32 {
    10_000
}
fn default_failover() -> Vec<FailoverCriterion> {
    vec![FailoverCriterion::Error, FailoverCriterion::Timeout]
}
fn default_azure_api_version() -> Option<String> {
    Some("2023-05-15".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RouteType {
    #[serde(rename = "llm/v1/chat")]
    Chat,
    #[serde(rename = "llm/v1/completions")]
    Completions,
    #[serde(rename = "llm/v1/embeddings")]
    Embeddings,
    #[serde(rename = "preserve")]
    Preserve,
}

/// Every provider Kong's 3.14 schema names. One file per provider in `ai::providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Openai,
    Azure,
    Anthropic,
    Bedrock,
    Gemini,
    Mistral,
    Cohere,
    Llama2,
    Huggingface,
    Ollama,
    Vllm,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
            Provider::Bedrock => "bedrock",
            Provider::Gemini => "gemini",
            Provider::Mistral => "mistral",
            Provider::Cohere => "cohere",
            Provider::Llama2 => "llama2",
            Provider::Huggingface => "huggingface",
            Provider::Ollama => "ollama",
            Provider::Vllm => "vllm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseStreaming {
    #[default]
    Allow,
    Deny,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LlmFormat {
    #[default]
    Openai,
    Anthropic,
    Bedrock,
    Cohere,
    Gemini,
    Huggingface,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum GenaiCategory {
    #[default]
    #[serde(rename = "text/generation")]
    TextGeneration,
    #[serde(rename = "text/embeddings")]
    TextEmbeddings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    ConsistentHashing,
    LeastConnections,
    LowestLatency,
    LowestUsage,
    Priority,
    Semantic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailoverCriterion {
    Error,
    Timeout,
    InvalidHeader,
    #[serde(rename = "http_403")]
    Http403,
    #[serde(rename = "http_404")]
    Http404,
    #[serde(rename = "http_429")]
    Http429,
    #[serde(rename = "http_500")]
    Http500,
    #[serde(rename = "http_502")]
    Http502,
    #[serde(rename = "http_503")]
    Http503,
    #[serde(rename = "http_504")]
    Http504,
    NonIdempotent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TokensCountStrategy {
    #[default]
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LatencyStrategy {
    #[default]
    Tpot,
    E2e,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Query,
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Llama2Format {
    Raw,
    Openai,
    Ollama,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MistralFormat {
    Openai,
    Ollama,
}

/// `config.balancer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Balancer {
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default = "default_retries")]
    #[schemars(range(max = 32767))]
    pub retries: u32,
    #[serde(default = "default_failover")]
    pub failover_criteria: Vec<FailoverCriterion>,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub connect_timeout: u32,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub read_timeout: u32,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 2147483646))]
    pub write_timeout: u32,
    #[serde(default)]
    pub tokens_count_strategy: TokensCountStrategy,
    #[serde(default)]
    pub latency_strategy: LatencyStrategy,
    #[serde(default = "default_hash_header")]
    pub hash_on_header: String,
    #[serde(default = "default_slots")]
    #[schemars(range(min = 10, max = 65536))]
    pub slots: u32,
    #[serde(default)]
    #[schemars(range(max = 32767))]
    pub max_fails: u32,
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout: u32,
}

impl Default for Balancer {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::default(),
            retries: default_retries(),
            failover_criteria: default_failover(),
            connect_timeout: default_timeout(),
            read_timeout: default_timeout(),
            write_timeout: default_timeout(),
            tokens_count_strategy: TokensCountStrategy::default(),
            latency_strategy: LatencyStrategy::default(),
            hash_on_header: default_hash_header(),
            slots: default_slots(),
            max_fails: 0,
            fail_timeout: default_fail_timeout(),
        }
    }
}

/// `targets[].auth`: the provider credentials the gateway injects.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub header_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub param_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_location: Option<ParamLocation>,
    /// Let a client-supplied credential pass through instead of the configured one.
    #[serde(default)]
    pub allow_override: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub aws_access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub aws_secret_access_key: Option<String>,
    #[serde(default)]
    pub gcp_use_service_account: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub gcp_service_account_json: Option<String>,
    #[serde(default)]
    pub azure_use_managed_identity: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-secret" = true))]
    pub azure_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_tenant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default)]
    pub log_statistics: bool,
    #[serde(default)]
    pub log_payloads: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BedrockOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_assume_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_role_session_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_sts_endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_config_latency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeminiOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HuggingfaceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_model: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CohereOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_input_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_model: Option<bool>,
}

/// `targets[].model.options`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 5.0))]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 500))]
    pub top_k: Option<u32>,
    /// Cost per 1M input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost: Option<f64>,
    /// Cost per 1M output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_deployment_id: Option<String>,
    #[serde(
        default = "default_azure_api_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_api_version: Option<String>,
    /// Full upstream URL, path included. Overrides the provider's default endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(url)]
    pub upstream_url: Option<String>,
    /// Deprecated by Kong in favour of `upstream_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llama2_format: Option<Llama2Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mistral_format: Option<MistralFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemini: Option<GeminiOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huggingface: Option<HuggingfaceOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohere: Option<CohereOptions>,
}

impl Default for ModelOptions {
    /// The same values serde fills in, so normalising twice changes nothing.
    fn default() -> Self {
        ModelOptions {
            max_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            input_cost: None,
            output_cost: None,
            anthropic_version: None,
            azure_instance: None,
            azure_deployment_id: None,
            azure_api_version: default_azure_api_version(),
            upstream_url: None,
            upstream_path: None,
            llama2_format: None,
            mistral_format: None,
            bedrock: None,
            gemini: None,
            huggingface: None,
            cohere: None,
        }
    }
}

/// `targets[].model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub provider: Provider,
    /// Upstream model name; when unset, the request body's `model` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The request `model` value that selects this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_alias: Option<String>,
    #[serde(default)]
    pub options: ModelOptions,
}

/// One `ai-proxy-advanced` target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub route_type: RouteType,
    pub model: Model,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1, max = 65535))]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `ai-proxy-advanced` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ai-proxy-advanced")]
pub struct AiProxyAdvancedConfig {
    #[schemars(length(min = 1))]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub balancer: Balancer,
    #[serde(default)]
    pub response_streaming: ResponseStreaming,
    /// Largest request body accepted, in bytes; 0 means unlimited.
    #[serde(default = "default_max_body")]
    pub max_request_body_size: u64,
    /// Send `X-Kong-LLM-Model` on successful responses.
    #[serde(default = "yes")]
    pub model_name_header: bool,
    #[serde(default)]
    pub llm_format: LlmFormat,
    #[serde(default)]
    pub genai_category: GenaiCategory,
}

/// `ai-proxy` config: a single target, flattened at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ai-proxy")]
pub struct AiProxyConfig {
    pub route_type: RouteType,
    pub model: Model,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub response_streaming: ResponseStreaming,
    #[serde(default = "default_max_body")]
    pub max_request_body_size: u64,
    #[serde(default = "yes")]
    pub model_name_header: bool,
    #[serde(default)]
    pub llm_format: LlmFormat,
    #[serde(default)]
    pub genai_category: GenaiCategory,
}

impl From<AiProxyConfig> for AiProxyAdvancedConfig {
    /// `ai-proxy` is the single-target form of `ai-proxy-advanced`; the runtime only knows the latter.
    fn from(c: AiProxyConfig) -> Self {
        AiProxyAdvancedConfig {
            targets: vec![Target {
                route_type: c.route_type,
                model: c.model,
                auth: c.auth,
                logging: c.logging,
                weight: default_weight(),
                description: None,
            }],
            balancer: Balancer::default(),
            response_streaming: c.response_streaming,
            max_request_body_size: c.max_request_body_size,
            model_name_header: c.model_name_header,
            llm_format: c.llm_format,
            genai_category: c.genai_category,
        }
    }
}

impl AiProxyAdvancedConfig {
    /// Kong's entity checks (`kong/llm/schemas/init.lua`), with Kong's messages.
    /// `prefix` is where the targets live (`targets[0].` for ai-proxy-advanced, `` for ai-proxy).
    pub fn entity_errors(&self, single_target: bool) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.balancer.algorithm == Algorithm::Semantic {
            errors.push(FieldError::new(
                "balancer.algorithm",
                "'semantic' is not supported by Gantry: it needs an embeddings model and a vector store; use another algorithm",
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            let at = |field: &str| {
                if single_target {
                    field.to_owned()
                } else {
                    format!("targets[{i}].{field}")
                }
            };
            errors.extend(target_errors(t, self.llm_format, &at));
        }
        errors
    }
}

fn target_errors(
    t: &Target,
    llm_format: LlmFormat,
    at: &dyn Fn(&str) -> String,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: String| errors.push(FieldError::new(at(field), message));
    let a = &t.auth;
    if a.header_name.is_some() != a.header_value.is_some() {
        push(
            "auth",
            "all or none of these fields must be set: 'auth.header_name', 'auth.header_value'"
                .into(),
        );
    }
    let params = [
        a.param_name.is_some(),
        a.param_value.is_some(),
        a.param_location.is_some(),
    ];
    if params.iter().any(|p| *p) && !params.iter().all(|p| *p) {
        push(
            "auth",
            "all or none of these fields must be set: 'auth.param_name', 'auth.param_value', 'auth.param_location'".into(),
        );
    }
    let o = &t.model.options;
    let provider = t.model.provider;
    let missing = |field: &str, what: &str| format!("must set 'model.options.{field}' for {what}");
    match provider {
        Provider::Anthropic if o.anthropic_version.is_none() => push(
            "model.options.anthropic_version",
            missing("anthropic_version", "anthropic provider"),
        ),
        Provider::Azure => {
            for (field, value) in [
                ("azure_instance", &o.azure_instance),
                ("azure_api_version", &o.azure_api_version),
                ("azure_deployment_id", &o.azure_deployment_id),
            ] {
                if value.is_none() {
                    push(
                        &format!("model.options.{field}"),
                        missing(field, "azure provider"),
                    );
                }
            }
        }
        Provider::Llama2 => {
            if o.llama2_format.is_none() {
                push(
                    "model.options.llama2_format",
                    missing("llama2_format", "llama2 provider"),
                );
            }
            if o.upstream_url.is_none() {
                push(
                    "model.options.upstream_url",
                    missing("upstream_url", "self-hosted providers/models"),
                );
            }
        }
        Provider::Ollama | Provider::Vllm if o.upstream_url.is_none() => push(
            "model.options.upstream_url",
            missing("upstream_url", "self-hosted providers/models"),
        ),
        Provider::Mistral if o.mistral_format.is_none() => push(
            "model.options.mistral_format",
            missing("mistral_format", "mistral provider"),
        ),
        _ => {}
    }
    if matches!(provider, Provider::Bedrock | Provider::Gemini) && a.allow_override {
        push(
            "auth.allow_override",
            "bedrock and gemini only support auth.allow_override = false".into(),
        );
    }
    if provider == Provider::Anthropic
        && t.route_type == RouteType::Completions
        && t.logging.log_statistics
    {
        push(
            "logging.log_statistics",
            "anthropic does not support statistics when route_type is llm/v1/completions".into(),
        );
    }
    if llm_format != LlmFormat::Openai {
        if t.route_type != RouteType::Chat {
            push(
                "route_type",
                "native provider options in llm_format can only be used with the 'llm/v1/chat' route_type".into(),
            );
        }
        let native = match llm_format {
            LlmFormat::Anthropic => Some(Provider::Anthropic),
            LlmFormat::Bedrock => Some(Provider::Bedrock),
            LlmFormat::Gemini => Some(Provider::Gemini),
            LlmFormat::Cohere => Some(Provider::Cohere),
            LlmFormat::Huggingface => Some(Provider::Huggingface),
            LlmFormat::Openai => None,
        };
        if let Some(native) = native
            && native != provider
        {
            push(
                "model.provider",
                format!(
                    "native llm_format '{0}' can only be used with the '{0}' model.provider",
                    native.as_str()
                ),
            );
        }
    }
    errors
}
