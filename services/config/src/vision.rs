//! Which models take images when the configuration does not say
//! (`vision`, `model_vision`): the hosted APIs' current models do, apart
//! from a few older or text-only OpenAI models; a server of the
//! `openai_compatible` kind runs whatever its operator loaded, so only
//! model names that announce vision count. A model without vision is sent
//! a short text note in place of each image (docs/configuration.md,
//! "Images").

use crate::schema::ProviderKind;

/// OpenAI models (by name prefix) that refuse image input.
const OPENAI_TEXT_ONLY: &[&str] = &[
    "gpt-3.5",
    "gpt-4-0",
    "gpt-4-32k",
    "o1-mini",
    "o1-preview",
    "o3-mini",
    "text-",
    "davinci",
    "babbage",
];

/// Parts of model names that mark a vision model on OpenAI-compatible
/// servers (Ollama, vLLM, LM Studio, OpenRouter names).
const COMPATIBLE_VISION_MARKERS: &[&str] = &[
    "vision",
    "llava",
    "-vl",
    "vl-",
    "2.5vl",
    "gemma3",
    "gemma-3",
    "pixtral",
    "minicpm-v",
    "moondream",
    "llama4",
    "gpt-4o",
    "gpt-4.1",
    "gpt-5",
    "claude",
    "gemini",
];

/// The default for a `kind` provider's `model`.
pub fn default_vision(kind: ProviderKind, model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    match kind {
        ProviderKind::Anthropic | ProviderKind::Gemini | ProviderKind::Custom => true,
        ProviderKind::Openai => !OPENAI_TEXT_ONLY.iter().any(|p| model.starts_with(p)),
        ProviderKind::OpenaiCompatible => COMPATIBLE_VISION_MARKERS
            .iter()
            .any(|marker| model.contains(marker)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderConfig;

    #[test]
    fn defaults_follow_kind_and_name() {
        assert!(default_vision(ProviderKind::Anthropic, "claude-sonnet-4-5"));
        assert!(default_vision(ProviderKind::Gemini, "gemini-2.5-pro"));
        assert!(default_vision(ProviderKind::Openai, "gpt-4o"));
        assert!(!default_vision(ProviderKind::Openai, "o3-mini"));
        assert!(!default_vision(ProviderKind::Openai, "gpt-3.5-turbo"));
        assert!(default_vision(ProviderKind::OpenaiCompatible, "llava:13b"));
        assert!(default_vision(
            ProviderKind::OpenaiCompatible,
            "qwen2.5vl:7b"
        ));
        assert!(!default_vision(ProviderKind::OpenaiCompatible, "qwen3:8b"));
    }

    #[test]
    fn the_model_setting_wins_over_the_provider_setting() {
        let mut config = ProviderConfig {
            vision: Some(false),
            ..ProviderConfig::default()
        };
        config.model_vision.insert("big".into(), true);
        assert!(config.vision_for("anthropic", "big"));
        assert!(!config.vision_for("anthropic", "small"));
        config.vision = None;
        assert!(config.vision_for("anthropic", "small"));
        assert!(!config.vision_for("ollama", "qwen3"));
    }
}
