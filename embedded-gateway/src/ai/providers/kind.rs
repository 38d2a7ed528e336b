//! Owns the list of providers this build translates for ([`ProviderKind`]), their names, and
//! the wire format each speaks ([`Wire`]). Dispatch to the provider files lives in `mod.rs`.

use crate::ai::config::{Llama2Format, MistralFormat, ModelOptions, Provider};

/// The providers this build translates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Azure,
    Bedrock,
    Gemini,
    Mistral(MistralFormat),
    Cohere,
    HuggingFace,
    Llama2(Llama2Format),
    Ollama,
    Vllm,
}

/// The wire format a provider speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Cohere,
    Ollama,
    /// Hugging Face Text Generation Inference (`inputs`/`parameters`), Kong's `llama2_format: raw`.
    Tgi,
}

impl ProviderKind {
    /// The translator for a configured provider; `mistral_format`/`llama2_format` choose the
    /// wire format of the two self-describing providers (OpenAI when unset).
    pub fn for_target(p: Provider, options: &ModelOptions) -> Self {
        match p {
            Provider::Openai => Self::OpenAi,
            Provider::Anthropic => Self::Anthropic,
            Provider::Azure => Self::Azure,
            Provider::Bedrock => Self::Bedrock,
            Provider::Gemini => Self::Gemini,
            Provider::Mistral => {
                Self::Mistral(options.mistral_format.unwrap_or(MistralFormat::Openai))
            }
            Provider::Cohere => Self::Cohere,
            Provider::Huggingface => Self::HuggingFace,
            Provider::Llama2 => Self::Llama2(options.llama2_format.unwrap_or(Llama2Format::Openai)),
            Provider::Ollama => Self::Ollama,
            Provider::Vllm => Self::Vllm,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::Mistral(_) => "mistral",
            Self::Cohere => "cohere",
            Self::HuggingFace => "huggingface",
            Self::Llama2(_) => "llama2",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
        }
    }

    pub fn wire(self) -> Wire {
        match self {
            Self::OpenAi
            | Self::Azure
            | Self::HuggingFace
            | Self::Vllm
            | Self::Mistral(MistralFormat::Openai)
            | Self::Llama2(Llama2Format::Openai) => Wire::OpenAi,
            Self::Anthropic => Wire::Anthropic,
            Self::Bedrock => Wire::Bedrock,
            Self::Gemini => Wire::Gemini,
            Self::Cohere => Wire::Cohere,
            Self::Ollama
            | Self::Mistral(MistralFormat::Ollama)
            | Self::Llama2(Llama2Format::Ollama) => Wire::Ollama,
            Self::Llama2(Llama2Format::Raw) => Wire::Tgi,
        }
    }

    /// OpenAI-compatible servers that may be TGI underneath (Hugging Face, vLLM, llama2's
    /// `openai` format): their finish reasons are normalised to OpenAI's.
    pub(crate) fn asks_stream_usage(self) -> bool {
        matches!(self, Self::OpenAi | Self::Azure | Self::Vllm)
    }

    /// OpenAI-compatible servers that may be TGI underneath: see [`Self::wire`].
    pub(crate) fn normalizes_finish(self) -> bool {
        matches!(
            self,
            Self::HuggingFace | Self::Vllm | Self::Llama2(Llama2Format::Openai)
        )
    }

    /// `provider (format)` for messages about self-describing providers.
    pub fn label(self) -> String {
        match self {
            Self::Mistral(f) => format!(
                "mistral (mistral_format {})",
                match f {
                    MistralFormat::Openai => "openai",
                    MistralFormat::Ollama => "ollama",
                }
            ),
            Self::Llama2(f) => format!(
                "llama2 (llama2_format {})",
                match f {
                    Llama2Format::Openai => "openai",
                    Llama2Format::Ollama => "ollama",
                    Llama2Format::Raw => "raw",
                }
            ),
            other => other.name().to_owned(),
        }
    }
}
