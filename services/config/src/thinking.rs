//! How hard a model is asked to reason: the `thinking` setting of a provider,
//! of one of its models, or of a session (`--thinking`, `/thinking`, the ACP
//! config option). docs/configuration.md has the table of what each provider
//! is sent.

use std::fmt;

use serde::Deserialize;

/// A reasoning setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Thinking {
    /// Ask for no reasoning (a model that always reasons still does).
    #[default]
    Off,
    Low,
    Medium,
    High,
    /// An explicit budget of reasoning tokens.
    Budget(u32),
}

/// The smallest explicit budget accepted: below it no provider reasons
/// usefully (Anthropic refuses less than 1,024).
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// The budget a level stands for where a provider wants tokens.
pub const LOW_BUDGET: u32 = 2048;
pub const MEDIUM_BUDGET: u32 = 8192;
pub const HIGH_BUDGET: u32 = 24576;

/// A thinking setting that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadThinking {
    #[error(
        "a thinking budget of {0} tokens is below the minimum of {min}",
        min = MIN_THINKING_BUDGET
    )]
    BelowMinimum(u32),
    #[error("{0:?} is not a thinking setting (off, low, medium, high or a number of tokens)")]
    Unknown(String),
}

impl Thinking {
    /// `off`, `low`, `medium`, `high` or a number of tokens.
    pub fn parse(text: &str) -> Result<Self, BadThinking> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(Self::Off),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            other => match other.parse::<u32>() {
                Ok(n) if n >= MIN_THINKING_BUDGET => Ok(Self::Budget(n)),
                Ok(n) => Err(BadThinking::BelowMinimum(n)),
                Err(_) => Err(BadThinking::Unknown(text.to_owned())),
            },
        }
    }

    /// The budget in tokens this setting stands for (`None` when off).
    pub fn budget(self) -> Option<u32> {
        match self {
            Self::Off => None,
            Self::Low => Some(LOW_BUDGET),
            Self::Medium => Some(MEDIUM_BUDGET),
            Self::High => Some(HIGH_BUDGET),
            Self::Budget(n) => Some(n),
        }
    }

    /// The effort level this setting stands for where a provider wants a
    /// level (an explicit budget maps to the nearest one).
    pub fn effort(self) -> Option<Effort> {
        match self {
            Self::Off => None,
            Self::Low => Some(Effort::Low),
            Self::Medium => Some(Effort::Medium),
            Self::High => Some(Effort::High),
            Self::Budget(n) if n <= LOW_BUDGET * 2 => Some(Effort::Low),
            Self::Budget(n) if n <= MEDIUM_BUDGET * 2 => Some(Effort::Medium),
            Self::Budget(_) => Some(Effort::High),
        }
    }
}

impl fmt::Display for Thinking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Low => f.write_str("low"),
            Self::Medium => f.write_str("medium"),
            Self::High => f.write_str("high"),
            Self::Budget(n) => write!(f, "{n}"),
        }
    }
}

/// A reasoning effort level, as OpenAI, Gemini 3 and Anthropic's adaptive
/// thinking spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl<'de> Deserialize<'de> for Thinking {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Tokens(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Text(text) => Self::parse(&text).map_err(serde::de::Error::custom),
            Raw::Tokens(n) => {
                let n =
                    u32::try_from(n).map_err(|_| serde::de::Error::custom("too many tokens"))?;
                Self::parse(&n.to_string()).map_err(serde::de::Error::custom)
            }
        }
    }
}

/// How Anthropic models are asked to think: a token budget
/// (`thinking.type = "enabled"`) or adaptively, with an effort level
/// (`thinking.type = "adaptive"` and `output_config.effort`), which newer
/// models require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingStyle {
    Budget,
    Adaptive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_from_words_and_numbers() {
        assert_eq!(Thinking::parse("HIGH"), Ok(Thinking::High));
        assert_eq!(Thinking::parse("off"), Ok(Thinking::Off));
        assert_eq!(Thinking::parse("4096"), Ok(Thinking::Budget(4096)));
        assert!(
            Thinking::parse("100")
                .unwrap_err()
                .to_string()
                .contains("minimum")
        );
        assert!(
            Thinking::parse("lots")
                .unwrap_err()
                .to_string()
                .contains("not a thinking setting")
        );
        assert_eq!(Thinking::Budget(4096).to_string(), "4096");
        let parsed: Thinking = serde_json::from_str("20000").unwrap();
        assert_eq!(parsed, Thinking::Budget(20000));
        let parsed: Thinking = serde_json::from_str("\"medium\"").unwrap();
        assert_eq!(parsed, Thinking::Medium);
    }

    #[test]
    fn levels_and_budgets_map_both_ways() {
        assert_eq!(Thinking::Medium.budget(), Some(MEDIUM_BUDGET));
        assert_eq!(Thinking::Off.budget(), None);
        assert_eq!(Thinking::Budget(3000).effort(), Some(Effort::Low));
        assert_eq!(Thinking::Budget(12000).effort(), Some(Effort::Medium));
        assert_eq!(Thinking::Budget(40000).effort(), Some(Effort::High));
    }
}
