//! Sub-agent profiles (`docs/agents.md`): `[agents.NAME]` tables in the
//! configuration and `<data_dir>/agents/NAME.md` files share one type and
//! one set of checks, so a profile means the same wherever it is written.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `agents.max_depth` when unset: a sub-agent cannot delegate further.
pub const DEFAULT_AGENT_MAX_DEPTH: u32 = 1;
/// `agents.max_children` when unset: sub-agents one turn may start.
pub const DEFAULT_AGENT_MAX_CHILDREN: u32 = 4;
/// Longest profile description shown in the `delegate_task` tool, in chars.
pub const MAX_AGENT_DESCRIPTION_CHARS: usize = 120;

/// `[agents]`: the limits of delegation and the profiles written in the
/// configuration. Keys other than the limits are profile names.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// How deep delegation may go: 1 = the user's session may delegate, a
    /// sub-agent may not; 0 = no delegation at all.
    pub max_depth: u32,
    /// Sub-agents one turn may start, over all its replies.
    pub max_children: u32,
    pub profiles: BTreeMap<String, AgentProfile>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_AGENT_MAX_DEPTH,
            max_children: DEFAULT_AGENT_MAX_CHILDREN,
            profiles: BTreeMap::new(),
        }
    }
}

/// One sub-agent profile.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentProfile {
    /// One line shown to the model in the `delegate_task` tool.
    pub description: String,
    /// `provider/model`; unset = the parent session's model.
    pub model: Option<String>,
    /// Names of the tools the sub-agent is offered; unset = every tool its
    /// session would have.
    pub tools: Option<Vec<String>>,
    /// Skills of the sub-agent's sessions (after the default skills).
    pub skills: Vec<String>,
    /// Offer only read-only tools.
    pub read_only: bool,
    /// Iterations of one sub-agent turn; unset = `max_iterations`.
    pub max_iterations: Option<u32>,
    /// The sub-agent's identity (a file's body); "" = `system.md`.
    pub prompt: String,
}

/// A profile name that could not name a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent name {0:?}: use 1 to 40 of a-z, 0-9, - and _")]
pub struct InvalidAgentName(pub String);

/// Why a profile file (`<data_dir>/agents/NAME.md`) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileFileError {
    #[error("must start with a `+++` line, then TOML, then `+++`")]
    NoFrontMatter,
    #[error("the front matter has no closing `+++` line")]
    Unclosed,
    #[error("front matter: {0}")]
    Toml(String),
    #[error("front matter: `prompt` is the file's body, not a key")]
    PromptKey,
    /// A field's value breaks a rule of [`check_profile`].
    #[error("`{field}` {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Profile names: what may name a file, `[a-z0-9_-]`, 1 to 40 characters.
pub fn check_agent_name(name: &str) -> Result<(), InvalidAgentName> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(InvalidAgentName(name.to_owned())),
    }
}

/// Every problem of one profile, as (field, message).
pub fn check_profile(profile: &AgentProfile) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if profile.description.trim().is_empty() {
        problems.push(("description", "is required (one line)".to_owned()));
    } else if profile.description.contains('\n')
        || profile.description.chars().count() > MAX_AGENT_DESCRIPTION_CHARS
    {
        problems.push((
            "description",
            format!("must be one line of at most {MAX_AGENT_DESCRIPTION_CHARS} characters"),
        ));
    }
    if let Some(model) = &profile.model {
        let shaped = model
            .split_once('/')
            .is_some_and(|(p, m)| !p.trim().is_empty() && !m.trim().is_empty());
        if !shaped {
            problems.push(("model", format!("{model:?} is not `provider/model`")));
        }
    }
    if profile.max_iterations == Some(0) {
        problems.push(("max_iterations", "must be at least 1".to_owned()));
    }
    if let Some(tools) = &profile.tools
        && tools.iter().any(|t| t.trim().is_empty())
    {
        problems.push(("tools", "tool names must not be empty".to_owned()));
    }
    for skill in &profile.skills {
        if let Err(reason) = crate::check_skill_name(skill) {
            problems.push(("skills", reason.to_string()));
        }
    }
    problems
}

/// Parses `<data_dir>/agents/NAME.md`: a TOML block between two `+++`
/// lines, then the identity text. The whole file is checked; the error
/// names the field.
pub fn parse_profile_file(text: &str) -> Result<AgentProfile, ProfileFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or_default();
    if first.trim_end() != "+++" {
        return Err(ProfileFileError::NoFrontMatter);
    }
    let mut front = String::new();
    let mut closed = false;
    let mut consumed = first.len();
    for line in lines.by_ref() {
        consumed += line.len();
        if line.trim_end() == "+++" {
            closed = true;
            break;
        }
        front.push_str(line);
    }
    if !closed {
        return Err(ProfileFileError::Unclosed);
    }
    let mut profile: AgentProfile =
        toml::from_str(&front).map_err(|e| ProfileFileError::Toml(e.message().to_owned()))?;
    if !profile.prompt.is_empty() {
        return Err(ProfileFileError::PromptKey);
    }
    profile.prompt = text[consumed..].trim().to_owned();
    if let Some((field, message)) = check_profile(&profile).into_iter().next() {
        return Err(ProfileFileError::Invalid { field, message });
    }
    Ok(profile)
}

/// `[agents]` from its configuration value: the limits, and every other
/// key a profile table. Problems are (key, message).
pub(crate) fn agents_from_table(
    table: impl IntoIterator<Item = (String, config::Value)>,
) -> (AgentsConfig, Vec<(String, String)>) {
    let mut agents = AgentsConfig::default();
    let mut problems = Vec::new();
    for (key, value) in table {
        let limit = |value: config::Value| value.try_deserialize::<u32>();
        match key.as_str() {
            "max_depth" => match limit(value) {
                Ok(n) => agents.max_depth = n,
                Err(e) => problems.push(("agents.max_depth".to_owned(), e.to_string())),
            },
            "max_children" => match limit(value) {
                Ok(0) => problems.push((
                    "agents.max_children".to_owned(),
                    "must be at least 1".to_owned(),
                )),
                Ok(n) => agents.max_children = n,
                Err(e) => problems.push(("agents.max_children".to_owned(), e.to_string())),
            },
            name => {
                let section = format!("agents.{name}");
                if let Err(reason) = check_agent_name(name) {
                    problems.push((section, reason.to_string()));
                    continue;
                }
                match value.try_deserialize::<AgentProfile>() {
                    Ok(profile) => {
                        for (field, message) in check_profile(&profile) {
                            problems.push((format!("{section}.{field}"), message));
                        }
                        agents.profiles.insert(name.to_owned(), profile);
                    }
                    Err(e) => problems.push((section, e.to_string())),
                }
            }
        }
    }
    (agents, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_file_is_front_matter_then_identity() {
        let text = "+++\ndescription = \"Reads code, changes nothing\"\nmodel = \"openai/gpt-5-mini\"\ntools = [\"read_file\", \"search\"]\nread_only = true\nmax_iterations = 5\n+++\n\nYou review code.\nBe brief.\n";
        let profile = parse_profile_file(text).unwrap();
        assert_eq!(profile.description, "Reads code, changes nothing");
        assert_eq!(profile.model.as_deref(), Some("openai/gpt-5-mini"));
        assert_eq!(
            profile.tools,
            Some(vec!["read_file".to_owned(), "search".to_owned()])
        );
        assert!(profile.read_only);
        assert_eq!(profile.max_iterations, Some(5));
        assert_eq!(profile.prompt, "You review code.\nBe brief.");
    }

    #[test]
    fn bad_profile_files_name_the_problem() {
        let cases = [
            ("no front matter", "then TOML, then"),
            ("+++\ndescription = \"x\"\n", "no closing"),
            (
                "+++\ndescription = \"x\"\ncolour = 1\n+++\n",
                "unknown field",
            ),
            ("+++\nmodel = \"gpt\"\n+++\n", "`description` is required"),
            (
                "+++\ndescription = \"x\"\nmodel = \"gpt\"\n+++\n",
                "`model` \"gpt\" is not `provider/model`",
            ),
            (
                "+++\ndescription = \"x\"\nmax_iterations = 0\n+++\n",
                "`max_iterations` must be at least 1",
            ),
            (
                "+++\ndescription = \"x\"\nprompt = \"y\"\n+++\n",
                "the file's body",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_profile_file(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn names_are_file_stems_without_surprises() {
        assert!(check_agent_name("code-reviewer_2").is_ok());
        for bad in ["", "Reviewer", "../x", "a b", &"x".repeat(41)] {
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
    }
}
