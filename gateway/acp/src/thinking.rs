//! The `thinking` config option: how hard the model reasons in this
//! session's turns; and the `/compact` command (the slash commands offered
//! are listed in `commands.rs`).

use agent_client_protocol::v1::schema::{
    SessionConfigOption, SessionConfigOptionCategory, SessionConfigSelectOption,
};
use openheim_config::{BadThinking, Thinking};
use openheim_proto::llm_proxy::v1::{ThinkingLevel, ThinkingSetting};

/// Id of the config option that sets the reasoning effort.
pub const THINKING_OPTION: &str = "thinking";
/// Value of the thinking option meaning "as configured for the model".
pub const DEFAULT_THINKING: &str = "default";
/// The slash command that compacts the session's conversation.
pub const COMPACT_COMMAND: &str = "compact";

/// The wire form of a reasoning setting, for `StartTurn.thinking`.
pub fn thinking_setting(thinking: Thinking) -> ThinkingSetting {
    let (level, budget_tokens) = match thinking {
        Thinking::Off => (ThinkingLevel::Off, 0),
        Thinking::Low => (ThinkingLevel::Low, 0),
        Thinking::Medium => (ThinkingLevel::Medium, 0),
        Thinking::High => (ThinkingLevel::High, 0),
        Thinking::Budget(n) => (ThinkingLevel::Budget, n),
    };
    ThinkingSetting {
        level: level as i32,
        budget_tokens,
    }
}

/// The option value of a session's setting.
fn value(thinking: Option<Thinking>) -> String {
    thinking.map_or_else(|| DEFAULT_THINKING.to_owned(), |t| t.to_string())
}

/// A chosen value: `None` = as configured. A number of tokens is accepted
/// too (a client may send any value id it was not offered).
pub fn parse(value: &str) -> Result<Option<Thinking>, BadThinking> {
    match value {
        DEFAULT_THINKING => Ok(None),
        other => Thinking::parse(other).map(Some),
    }
}

/// The `thinking` option of a session whose setting is `thinking`.
pub fn option(thinking: Option<Thinking>) -> SessionConfigOption {
    let mut choices = vec![SessionConfigSelectOption::new(
        DEFAULT_THINKING,
        "Default (as configured)",
    )];
    for level in ["off", "low", "medium", "high"] {
        choices.push(SessionConfigSelectOption::new(level, capitalised(level)));
    }
    let current = value(thinking);
    if matches!(thinking, Some(Thinking::Budget(_))) {
        let label = format!("{current} tokens");
        choices.push(SessionConfigSelectOption::new(current.clone(), label));
    }
    SessionConfigOption::select(THINKING_OPTION, "Thinking", current, choices)
        .category(SessionConfigOptionCategory::ThoughtLevel)
        .description("How hard the model reasons before it answers".to_owned())
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The focus of a `/compact [focus]` prompt, or `None` when the prompt is
/// not that command.
pub fn compact_focus(text: &str) -> Option<String> {
    let rest = text
        .trim()
        .strip_prefix('/')?
        .strip_prefix(COMPACT_COMMAND)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use agent_client_protocol::v1::schema::SessionConfigKind;

    use super::*;

    #[test]
    fn values_round_trip_and_budgets_are_accepted() {
        assert_eq!(parse("default"), Ok(None));
        assert_eq!(parse("high"), Ok(Some(Thinking::High)));
        assert_eq!(parse("4096"), Ok(Some(Thinking::Budget(4096))));
        assert!(parse("lots").is_err());
        let SessionConfigKind::Select(select) = option(Some(Thinking::Budget(4096))).kind else {
            panic!("not a select");
        };
        assert_eq!(select.current_value.to_string(), "4096");
        let setting = thinking_setting(Thinking::Budget(4096));
        assert_eq!(
            (setting.level(), setting.budget_tokens),
            (ThinkingLevel::Budget, 4096)
        );
        assert_eq!(thinking_setting(Thinking::Low).level(), ThinkingLevel::Low);
    }

    #[test]
    fn the_compact_command_is_recognised_with_its_focus() {
        assert_eq!(compact_focus("/compact"), Some(String::new()));
        assert_eq!(
            compact_focus("  /compact  the API design "),
            Some("the API design".into())
        );
        assert_eq!(compact_focus("/compaction"), None);
        assert_eq!(compact_focus("please /compact"), None);
        assert_eq!(crate::commands::available()[0].name, "compact");
    }
}
