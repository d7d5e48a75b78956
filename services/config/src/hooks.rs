//! `[[hooks.EVENT]]`: commands run at points of a session
//! (docs/automation.md, "Hooks"). Only their configuration lives here; the
//! agent loop runs them through tool-executor and interprets their answers.

use serde::Deserialize;

/// Default `timeout_secs` of a hook.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 30;
/// The longest `timeout_secs` a hook may be given.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 600;

/// The hooks of each event, run in the order configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// At the first turn of a session; may add context.
    pub session_start: Vec<HookConfig>,
    /// Before a prompt reaches the model; may add context or block it.
    pub user_prompt_submit: Vec<HookConfig>,
    /// Before a tool call runs; may allow, deny, ask or replace arguments.
    pub pre_tool_use: Vec<HookConfig>,
    /// After a tool call ran; may add context to its result.
    pub post_tool_use: Vec<HookConfig>,
    /// When a turn ends.
    pub stop: Vec<HookConfig>,
}

impl HooksConfig {
    /// Every configured hook with its key (`hooks.pre_tool_use[0]`), for
    /// validation.
    pub fn all(&self) -> impl Iterator<Item = (String, &HookConfig)> {
        let events = [
            ("session_start", &self.session_start),
            ("user_prompt_submit", &self.user_prompt_submit),
            ("pre_tool_use", &self.pre_tool_use),
            ("post_tool_use", &self.post_tool_use),
            ("stop", &self.stop),
        ];
        events.into_iter().flat_map(|(event, hooks)| {
            hooks
                .iter()
                .enumerate()
                .map(move |(i, hook)| (format!("hooks.{event}[{i}]"), hook))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.all().next().is_none()
    }
}

/// One hook command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Run as `sh -c COMMAND` in the session's workspace.
    pub command: String,
    /// Shown in notices and decisions; default: the command.
    #[serde(default)]
    pub name: Option<String>,
    /// Tool calls the hook sees (`pre_tool_use`, `post_tool_use`): tool
    /// names separated by `|`, `*` for every tool; default every tool.
    #[serde(default)]
    pub matcher: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// What a hook that fails (times out, crashes, answers garbage) means;
    /// default `deny` for `pre_tool_use` and `user_prompt_submit`, `allow`
    /// for the others.
    #[serde(default)]
    pub on_error: Option<OnError>,
}

fn default_timeout() -> u64 {
    DEFAULT_HOOK_TIMEOUT_SECS
}

impl HookConfig {
    /// The hook's name in messages.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.command)
    }

    /// Whether the hook sees calls of `tool`.
    pub fn matches(&self, tool: &str) -> bool {
        match self.matcher.as_deref().map(str::trim) {
            None | Some("" | "*") => true,
            Some(names) => names.split('|').any(|name| name.trim() == tool),
        }
    }

    /// A problem with this hook, if any.
    pub fn problem(&self) -> Option<String> {
        if self.command.trim().is_empty() {
            return Some("command must not be empty".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_HOOK_TIMEOUT_SECS {
            return Some(format!("timeout_secs must be 1 to {MAX_HOOK_TIMEOUT_SECS}"));
        }
        None
    }
}

/// What a failed hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    Allow,
    Deny,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(matcher: Option<&str>) -> HookConfig {
        HookConfig {
            command: "true".into(),
            name: None,
            matcher: matcher.map(Into::into),
            timeout_secs: 5,
            on_error: None,
        }
    }

    #[test]
    fn matchers_name_tools() {
        assert!(hook(None).matches("read_file"));
        assert!(hook(Some("*")).matches("read_file"));
        let shell_or_write = hook(Some("execute_command | write_file"));
        assert!(shell_or_write.matches("execute_command"));
        assert!(shell_or_write.matches("write_file"));
        assert!(!shell_or_write.matches("read_file"));
        assert!(!shell_or_write.matches("execute"));
    }

    #[test]
    fn bad_hooks_are_reported() {
        let mut h = hook(None);
        assert_eq!(h.problem(), None);
        h.timeout_secs = 0;
        assert!(h.problem().is_some());
        h.timeout_secs = 5;
        h.command = " ".into();
        assert!(h.problem().is_some());
    }
}
