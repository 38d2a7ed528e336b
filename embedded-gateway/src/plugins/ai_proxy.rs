//! Owns the `ai-proxy-advanced` plugin and `ai-proxy`, its single-target form, as pipeline
//! plugins: their `access` phase hands the request to the AI engine (`crate::ai`), which
//! answers it from the provider, and records what it did in the request context. The config
//! types live with the engine (`ai/config.rs`), which reads them at every step.

use std::sync::Arc;

use super::api::{CompileEnv, Env, Flow, Plugin};
use crate::ai::AiError;
use crate::ai::plugin::{AiPlugin, AiRequest};
use crate::context::Ctx;
use crate::errors;
use crate::schema::FieldError;

pub use crate::ai::config::*;

/// The compiled `ai-proxy-advanced` plugin.
#[derive(Debug)]
pub struct AiProxyAdvanced(Arc<AiPlugin>);

/// The compiled `ai-proxy` plugin: one target, run by the same engine.
#[derive(Debug)]
pub struct AiProxy(Arc<AiPlugin>);

impl Plugin for AiProxyAdvanced {
    const NAME: &'static str = "ai-proxy-advanced";
    const PRIORITY: u32 = 770;
    const SCHEMA: &'static str =
        include_str!("../../../schemas/plugins/ai-proxy-advanced.schema.json");
    type Config = AiProxyAdvancedConfig;

    fn entity_errors(config: &AiProxyAdvancedConfig) -> Vec<FieldError> {
        config.entity_errors(false)
    }

    fn compile(config: AiProxyAdvancedConfig, env: &CompileEnv<'_>) -> Result<Self, String> {
        Ok(Self(Arc::new(AiPlugin::compile(
            &config,
            &env.options.upstream_overrides,
        ))))
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn body_limit(&self) -> u64 {
        self.0.max_body()
    }

    async fn access(&self, ctx: &mut Ctx, env: &Env<'_>) -> Flow {
        run(&self.0, ctx, env).await
    }
}

impl Plugin for AiProxy {
    const NAME: &'static str = "ai-proxy";
    const PRIORITY: u32 = 770;
    const SCHEMA: &'static str = include_str!("../../../schemas/plugins/ai-proxy.schema.json");
    type Config = AiProxyConfig;

    fn entity_errors(config: &AiProxyConfig) -> Vec<FieldError> {
        AiProxyAdvancedConfig::from(config.clone()).entity_errors(true)
    }

    fn compile(config: AiProxyConfig, env: &CompileEnv<'_>) -> Result<Self, String> {
        let config = AiProxyAdvancedConfig::from(config);
        Ok(Self(Arc::new(AiPlugin::compile(
            &config,
            &env.options.upstream_overrides,
        ))))
    }

    fn reads_body(&self) -> bool {
        true
    }

    fn body_limit(&self) -> u64 {
        self.0.max_body()
    }

    async fn access(&self, ctx: &mut Ctx, env: &Env<'_>) -> Flow {
        run(&self.0, ctx, env).await
    }
}

/// Sends the request to the provider; the provider's answer (or an OpenAI-envelope error)
/// is the response.
async fn run(ai: &AiPlugin, ctx: &mut Ctx, env: &Env<'_>) -> Flow {
    let Some(body) = ctx.take_body() else {
        return Flow::Respond(errors::with_latency(
            AiError::bad_json().response(),
            ctx.started,
        ));
    };
    let req = AiRequest {
        client: env.client,
        headers: std::mem::take(&mut ctx.parts.headers),
        body,
        started: ctx.started,
        facts: &mut ctx.ai,
        want_usage: ctx.logging,
    };
    // Boxed: the engine's future is large, and hyper moves the handler's future.
    Flow::Respond(Box::pin(ai.run(req)).await)
}
