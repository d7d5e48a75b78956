//! The provider abstraction: one streaming call to one LLM API, normalised
//! into [`ProviderEvent`]s. Retries, fallbacks and the gRPC stream are the
//! service's business; a provider only speaks its wire format.
//!
//! [`ProviderClient`] is the internal seam under the service's policy. Its
//! implementations are the built-in clients, test fakes, and the adapter
//! of the public extension point (`crate::custom`, whose trait is what
//! embedding applications implement; this one may change freely). The
//! built-in clients are [`OpenAiChat`] (OpenAI and compatible servers),
//! [`OpenAiResponses`], [`Anthropic`] and [`Gemini`]. They share
//! the HTTP plumbing in `http` (endpoint validation, error answers, the SSE
//! reader driving a per-format decoder), the error-body parser in
//! `wire_error` and the request helpers in `content`.

mod anthropic;
mod content;
mod embeddings;
mod gemini;
mod http;
mod openai_chat;
mod openai_responses;
mod signature;
mod wire_error;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use openheim_config::{ProviderConfig, ProviderKind, Thinking, WireApi};
use openheim_proto::common::v1::{Message, StopReason, ToolDefinition, Usage};

use crate::error::LlmError;
use crate::http_clients::HttpClients;

pub use anthropic::{ANTHROPIC_DEFAULT_MAX_TOKENS, ANTHROPIC_VERSION, Anthropic};
pub use embeddings::{EmbedRequest, MAX_INPUTS};
pub use gemini::Gemini;
/// Provider messages quoted in errors are cut to a bounded length.
pub(crate) use http::truncate;
pub use openai_chat::OpenAiChat;
pub use openai_responses::OpenAiResponses;

/// One streamed completion from one LLM API.
pub trait ProviderClient: Send + Sync {
    /// Starts the call. The stream ends after [`ProviderEvent::Finished`] or
    /// after the first `Err`. Dropping it must abort the upstream request:
    /// that is how client cancellation reaches the provider.
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, LlmError>>;

    /// One vector per input, in order. Providers without an embeddings API
    /// keep this default, a configuration error.
    fn embed(&self, request: EmbedRequest) -> BoxFuture<'static, Result<Vec<Vec<f32>>, LlmError>> {
        let message = format!(
            "this provider has no embeddings API (model {:?}); set memory.embeddings to an OpenAI-compatible, Gemini or Ollama model",
            request.model
        );
        Box::pin(async move { Err(LlmError::config(message)) })
    }
}

/// What to send: the model chosen by resolution and the conversation, shared
/// between attempts so retries and fallbacks do not copy the history.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub model: String,
    pub conversation: Arc<Conversation>,
}

/// The provider-independent content of a completion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub system_prompt: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDefinition>,
    /// Overrides the provider's configured `max_tokens`.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// How hard to reason; `None` = as the provider configures the model.
    pub thinking: Option<Thinking>,
}

/// A provider's reasoning settings (`thinking`, `model_thinking`), for the
/// requests that do not bring their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThinkingDefaults {
    provider: Option<Thinking>,
    models: std::collections::BTreeMap<String, Thinking>,
}

impl ThinkingDefaults {
    pub(crate) fn of(config: &ProviderConfig) -> Self {
        Self {
            provider: config.thinking,
            models: config.model_thinking.clone(),
        }
    }

    /// The setting a request to `model` is sent with: the conversation's
    /// own, else the model's, else the provider's, else off.
    pub(crate) fn resolve(&self, conversation: &Conversation, model: &str) -> Thinking {
        conversation
            .thinking
            .or_else(|| self.models.get(model).copied())
            .or(self.provider)
            .unwrap_or_default()
    }
}

/// One normalised piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    TextDelta(String),
    ThinkingDelta {
        text: String,
        signature: String,
    },
    /// A new thinking block of the same answer begins (Anthropic sends
    /// several, each signed). `redacted` is the opaque data of a
    /// `redacted_thinking` block, which has no text and no deltas.
    ThinkingBlock {
        redacted: Option<String>,
    },
    /// A fragment of tool call `index`; `id` and `name` are non-empty only on
    /// the first fragment of that index.
    ToolCallDelta {
        index: u32,
        id: String,
        name: String,
        arguments_fragment: String,
    },
    /// Token counts. `input_tokens` counts the whole prompt, including the
    /// `cache_read_tokens` and `cache_write_tokens` part of it (as the
    /// OpenTelemetry GenAI conventions define it).
    Usage(Usage),
    /// The answer is complete; always the last event.
    Finished(StopReason),
}

/// The id given to tool call `index` of an answer whose provider sent none
/// (older Gemini models, some OpenAI-compatible servers, custom
/// providers): `nonce` is random per answer, so ids stay unique across the
/// answers of a session, as clients and the history need.
pub(crate) fn made_up_call_id(index: u32, nonce: u64) -> String {
    format!("call_{index}_{nonce:016x}")
}

/// Builds the client for provider `name`. Unusable settings are errors
/// here, reported on first use of the provider. A `custom` provider has no
/// built-in client: its implementation comes from the embedding
/// application, and without one (a standalone llm-proxy, or the CLI) every
/// request for it gets this error.
pub fn build(
    name: &str,
    config: &ProviderConfig,
    clients: &HttpClients,
) -> Result<Arc<dyn ProviderClient>, LlmError> {
    let kind = config.kind_for(name);
    if let Some(default_var) = kind.default_key_var()
        && config.api_key.as_ref().is_none_or(|k| k.is_empty())
    {
        // Known before any request: say so instead of asking the provider.
        let var = config.env_var.as_deref().unwrap_or(default_var);
        return Err(LlmError::config(format!(
            "provider {name} ({}) needs an API key: set {var} (or api_key in [providers.{name}])",
            kind.as_str()
        )));
    }
    let client = clients;
    Ok(match (kind, config.wire_api) {
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible, WireApi::Chat) => {
            Arc::new(OpenAiChat::new(name, kind, config, client)?)
        }
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible, WireApi::Responses) => {
            Arc::new(OpenAiResponses::new(name, config, client)?)
        }
        (ProviderKind::Anthropic, _) => Arc::new(Anthropic::new(name, config, client)?),
        (ProviderKind::Gemini, _) => Arc::new(Gemini::new(name, config, client)?),
        (ProviderKind::Custom, _) => return Err(crate::custom::not_registered(name)),
    })
}

#[cfg(test)]
mod tests {
    use openheim_config::Secret;

    use super::*;

    fn build_err(name: &str, config: ProviderConfig) -> String {
        match build(name, &config, &reqwest::Client::new().into()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => {
                assert!(matches!(e, LlmError::Config { .. }), "{e:?}");
                e.to_string()
            }
        }
    }

    #[test]
    fn every_kind_builds_with_its_public_default_base() {
        for (name, kind, wire_api) in [
            ("openai", None, WireApi::Chat),
            ("openai", None, WireApi::Responses),
            ("anthropic", None, WireApi::Chat),
            ("x", Some(ProviderKind::Gemini), WireApi::Chat),
        ] {
            let config = ProviderConfig {
                kind,
                wire_api,
                api_key: Some(Secret::new("k")),
                ..ProviderConfig::default()
            };
            assert!(
                build(name, &config, &reqwest::Client::new().into()).is_ok(),
                "{name} {kind:?} {wire_api:?}"
            );
        }
    }

    #[test]
    fn kinds_that_need_a_key_refuse_to_build_without_one_naming_the_variable() {
        for (name, var) in [
            ("openai", "OPENAI_API_KEY"),
            ("anthropic", "ANTHROPIC_API_KEY"),
            ("gemini", "GEMINI_API_KEY"),
        ] {
            let message = build_err(name, ProviderConfig::default());
            assert!(message.contains(var), "{message}");
        }
        let named = ProviderConfig {
            env_var: Some("CORP_KEY".into()),
            api_key: Some(Secret::new("")),
            ..ProviderConfig::default()
        };
        assert!(build_err("openai", named).contains("CORP_KEY"));
        let local = ProviderConfig {
            api_base: Some("http://127.0.0.1:1/v1".into()),
            ..ProviderConfig::default()
        };
        assert!(build("ollama", &local, &reqwest::Client::new().into()).is_ok());
    }

    #[test]
    fn keys_are_never_sent_over_plain_http_to_remote_hosts() {
        let remote = ProviderConfig {
            api_base: Some("http://example.com/v1".into()),
            api_key: Some(Secret::new("sk-secret")),
            ..ProviderConfig::default()
        };
        let err = build_err("openai", remote.clone());
        assert!(err.contains("plain http://"), "{err}");
        assert!(!err.contains("sk-secret"));
        let local = ProviderConfig {
            api_base: Some("http://127.0.0.1:11434/v1".into()),
            ..remote.clone()
        };
        assert!(build("openai", &local, &reqwest::Client::new().into()).is_ok());
        let keyless = ProviderConfig {
            kind: Some(ProviderKind::OpenaiCompatible),
            api_key: None,
            ..remote
        };
        assert!(build("corp", &keyless, &reqwest::Client::new().into()).is_ok());
    }

    #[test]
    fn compatible_providers_need_an_api_base() {
        let err = build_err("ollama", ProviderConfig::default());
        assert!(err.contains("api_base"), "{err}");
    }
}
