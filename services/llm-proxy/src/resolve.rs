//! Model resolution: which provider answers a requested model name, and the
//! model catalogue served by `ListModels`.
//!
//! Rules, in order:
//! - `""`: the default provider with its `default_model` (or the first of its
//!   `models`).
//! - `"provider/model"` where `provider` is configured: exactly that provider,
//!   with any model id (providers reject ids they do not know themselves).
//!   Split at the first `/`, so `openrouter/meta-llama/llama-3` works.
//! - any other name: the first provider (the default one first, then by name)
//!   that lists it in `models` or has it as `default_model`; else the default
//!   provider, which may know models nobody listed (this includes ids with a
//!   slash such as `meta-llama/llama-3` on an OpenRouter-like default).
//! - without a default provider, an unlisted `"x/y"` is reported as an
//!   unknown provider `x`, anything else as an unlisted model.

use openheim_config::ProviderKind;
use openheim_proto::llm_proxy::v1::{ListModelsResponse, ProviderModels, ResolveModelResponse};

use crate::LlmProxyConfig;
use crate::error::LlmError;
use crate::provider::ANTHROPIC_DEFAULT_MAX_TOKENS;

/// A concrete provider and model to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: String,
    pub model: String,
}

/// Resolves `requested` (the `model` of a `CompleteRequest`) to a target.
pub fn resolve(config: &LlmProxyConfig, requested: &str) -> Result<Target, LlmError> {
    let requested = requested.trim();
    if requested.is_empty() {
        let provider = default_provider(config)?;
        return default_target(config, provider);
    }
    if let Some((provider, model)) = requested.split_once('/')
        && config.providers.contains_key(provider)
    {
        if model.is_empty() {
            return default_target(config, provider);
        }
        return Ok(target(provider, model));
    }
    if let Some(provider) =
        providers_in_search_order(config).find(|name| lists(config, name, requested))
    {
        return Ok(target(provider, requested));
    }
    if config.default_provider.is_some() {
        return Ok(target(default_provider(config)?, requested));
    }
    match requested.split_once('/') {
        Some((provider, _)) => Err(unknown_provider(config, provider)),
        None => Err(LlmError::config(format!(
            "model {requested:?} is not listed by any provider and no default_provider is configured; \
             use \"provider/model\" or add it to a provider's models"
        ))),
    }
}

/// Parses a `fallbacks` entry (`"provider/model"`).
pub fn resolve_fallback(config: &LlmProxyConfig, entry: &str) -> Result<Target, LlmError> {
    match entry.split_once('/') {
        Some((provider, model)) if !model.is_empty() => {
            if config.providers.contains_key(provider) {
                Ok(target(provider, model))
            } else {
                Err(unknown_provider(config, provider))
            }
        }
        _ => Err(LlmError::config(format!(
            "fallback {entry:?} is not of the form \"provider/model\""
        ))),
    }
}

/// The catalogue for `ListModels`: names, kinds and models, never keys.
pub fn list_models(config: &LlmProxyConfig) -> ListModelsResponse {
    let providers = config
        .providers
        .iter()
        .map(|(name, provider)| ProviderModels {
            provider: name.clone(),
            kind: provider.kind_for(name).as_str().to_owned(),
            default_model: provider
                .default_model
                .clone()
                .or_else(|| provider.models.first().cloned())
                .unwrap_or_default(),
            models: provider.models.clone(),
            context_window: provider.context_window.unwrap_or(0),
        })
        .collect();
    ListModelsResponse {
        providers,
        default_provider: config.default_provider.clone().unwrap_or_default(),
    }
}

/// `ResolveModel`: the target `Complete` would call first for `requested`,
/// with its context window and the output cap a request without
/// `max_tokens` gets (0 = unknown / the provider's own default).
pub fn resolve_model(
    config: &LlmProxyConfig,
    requested: &str,
) -> Result<ResolveModelResponse, LlmError> {
    let Target { provider, model } = resolve(config, requested)?;
    let settings = config.providers.get(&provider);
    let context_window = settings.and_then(|p| p.context_window).unwrap_or(0);
    let max_output_tokens = settings.map_or(0, |p| match (p.max_tokens, p.kind_for(&provider)) {
        (Some(max), _) => max,
        (None, ProviderKind::Anthropic) => ANTHROPIC_DEFAULT_MAX_TOKENS,
        (
            None,
            ProviderKind::Openai
            | ProviderKind::OpenaiCompatible
            | ProviderKind::Gemini
            | ProviderKind::Custom,
        ) => 0,
    });
    Ok(ResolveModelResponse {
        provider,
        model,
        context_window,
        max_output_tokens,
    })
}

fn target(provider: &str, model: &str) -> Target {
    Target {
        provider: provider.to_owned(),
        model: model.to_owned(),
    }
}

fn default_provider(config: &LlmProxyConfig) -> Result<&str, LlmError> {
    let name = config.default_provider.as_deref().ok_or_else(|| {
        LlmError::config(
            "no default_provider configured: set default_provider or request a model as \"provider/model\"",
        )
    })?;
    if config.providers.contains_key(name) {
        Ok(name)
    } else {
        Err(unknown_provider(config, name))
    }
}

fn default_target(config: &LlmProxyConfig, provider: &str) -> Result<Target, LlmError> {
    let settings = config
        .providers
        .get(provider)
        .ok_or_else(|| unknown_provider(config, provider))?;
    let model = settings
        .default_model
        .as_deref()
        .or_else(|| settings.models.first().map(String::as_str))
        .ok_or_else(|| {
            LlmError::config(format!(
                "provider {provider} has no default_model and no models; set providers.{provider}.default_model"
            ))
        })?;
    Ok(target(provider, model))
}

/// The default provider first, then the others in name order.
fn providers_in_search_order(config: &LlmProxyConfig) -> impl Iterator<Item = &str> {
    let first = config
        .default_provider
        .as_deref()
        .filter(|name| config.providers.contains_key(*name));
    first.into_iter().chain(
        config
            .providers
            .keys()
            .map(String::as_str)
            .filter(move |name| Some(*name) != first),
    )
}

fn lists(config: &LlmProxyConfig, provider: &str, model: &str) -> bool {
    config.providers.get(provider).is_some_and(|p| {
        p.default_model.as_deref() == Some(model) || p.models.iter().any(|m| m == model)
    })
}

fn unknown_provider(config: &LlmProxyConfig, name: &str) -> LlmError {
    let known: Vec<&str> = config.providers.keys().map(String::as_str).collect();
    let known = if known.is_empty() {
        "none configured".to_owned()
    } else {
        known.join(", ")
    };
    LlmError::config(format!("unknown provider {name} (known: {known})"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openheim_config::{ProviderConfig, Secret};

    use super::*;

    fn provider(default_model: Option<&str>, models: &[&str]) -> ProviderConfig {
        ProviderConfig {
            default_model: default_model.map(str::to_owned),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..ProviderConfig::default()
        }
    }

    fn config(default: Option<&str>) -> LlmProxyConfig {
        let mut providers = BTreeMap::new();
        providers.insert(
            "anthropic".into(),
            provider(Some("claude"), &["claude", "shared"]),
        );
        providers.insert("ollama".into(), provider(None, &["llama3", "shared"]));
        providers.insert("openai".into(), provider(Some("gpt-4o"), &["o3"]));
        LlmProxyConfig {
            providers,
            default_provider: default.map(str::to_owned),
            ..LlmProxyConfig::default()
        }
    }

    fn ok(config: &LlmProxyConfig, requested: &str) -> (String, String) {
        let t = resolve(config, requested).unwrap();
        (t.provider, t.model)
    }

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn empty_means_default_provider_and_model() {
        assert_eq!(ok(&config(Some("openai")), ""), s("openai", "gpt-4o"));
        // No default_model: the first listed model.
        assert_eq!(ok(&config(Some("ollama")), ""), s("ollama", "llama3"));
    }

    #[test]
    fn provider_slash_model_is_exact_and_accepts_any_id() {
        let c = config(Some("openai"));
        assert_eq!(ok(&c, "ollama/qwen3:8b"), s("ollama", "qwen3:8b"));
        assert_eq!(ok(&c, "ollama/org/model"), s("ollama", "org/model"));
        assert_eq!(ok(&c, "anthropic/"), s("anthropic", "claude"));
    }

    #[test]
    fn bare_names_search_the_default_provider_first() {
        let c = config(Some("ollama"));
        assert_eq!(ok(&c, "shared"), s("ollama", "shared"));
        assert_eq!(ok(&c, "claude"), s("anthropic", "claude"));
        assert_eq!(ok(&c, "gpt-4o"), s("openai", "gpt-4o"));
        let c = config(Some("openai"));
        assert_eq!(ok(&c, "shared"), s("anthropic", "shared"));
    }

    #[test]
    fn unlisted_names_go_to_the_default_provider() {
        assert_eq!(ok(&config(Some("openai")), "gpt-5"), s("openai", "gpt-5"));
        let err = resolve(&config(None), "gpt-5").unwrap_err().to_string();
        assert!(err.contains("no default_provider is configured"), "{err}");
    }

    #[test]
    fn clear_config_errors() {
        let err = resolve(&config(None), "").unwrap_err();
        assert!(matches!(err, LlmError::Config { .. }));
        assert!(
            err.to_string()
                .starts_with("no default_provider configured")
        );
        let err = resolve(&config(None), "opnai/gpt-4o")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown provider opnai (known: anthropic, ollama, openai)"
        );
        // With a default provider, a slash id nobody lists goes there as a whole.
        assert_eq!(
            ok(&config(Some("openai")), "meta-llama/llama-3"),
            s("openai", "meta-llama/llama-3")
        );
        let err = resolve(&config(Some("missing")), "")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown provider missing"), "{err}");
        let mut c = config(Some("openai"));
        c.providers.insert("empty".into(), provider(None, &[]));
        let err = resolve(&c, "empty/").unwrap_err().to_string();
        assert!(err.contains("provider empty has no default_model"), "{err}");
    }

    #[test]
    fn fallbacks_must_name_a_provider_and_a_model() {
        let c = config(None);
        assert_eq!(
            resolve_fallback(&c, "ollama/llama3").unwrap(),
            Target {
                provider: "ollama".into(),
                model: "llama3".into()
            }
        );
        assert!(resolve_fallback(&c, "ollama").is_err());
        assert!(resolve_fallback(&c, "ollama/").is_err());
        assert!(resolve_fallback(&c, "nope/x").is_err());
    }

    #[test]
    fn resolve_model_reports_window_and_output_cap() {
        let mut c = config(Some("openai"));
        if let Some(p) = c.providers.get_mut("openai") {
            p.context_window = Some(128_000);
            p.max_tokens = Some(4_000);
        }
        let r = resolve_model(&c, "").unwrap();
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!((r.context_window, r.max_output_tokens), (128_000, 4_000));
        // Unknown window and cap: zeros; Anthropic without `max_tokens`
        // gets the default the provider sends.
        let r = resolve_model(&c, "ollama/llama3").unwrap();
        assert_eq!((r.context_window, r.max_output_tokens), (0, 0));
        let r = resolve_model(&c, "claude").unwrap();
        assert_eq!(r.max_output_tokens, ANTHROPIC_DEFAULT_MAX_TOKENS);
        assert!(matches!(
            resolve_model(&config(None), "nope/x"),
            Err(LlmError::Config { .. })
        ));
    }

    #[test]
    fn list_models_never_shows_keys() {
        let mut c = config(Some("openai"));
        if let Some(p) = c.providers.get_mut("openai") {
            p.api_key = Some(Secret::new("sk-very-secret"));
            p.context_window = Some(128_000);
        }
        let list = list_models(&c);
        assert_eq!(list.default_provider, "openai");
        assert_eq!(list.providers.len(), 3);
        let openai = &list.providers[2];
        assert_eq!(openai.kind, "openai");
        assert_eq!(openai.context_window, 128_000);
        assert_eq!(list.providers[0].kind, "anthropic");
        assert_eq!(list.providers[1].default_model, "llama3");
        assert!(!format!("{list:?}").contains("sk-very-secret"));
    }
}
