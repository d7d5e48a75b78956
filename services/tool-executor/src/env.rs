//! Environment hygiene for shell commands: which of this process's
//! variables a command inherits.
//!
//! The rule (documented in `docs/configuration.md`, `[tools]`): a variable
//! reaches a command when no deny rule matches it and, if an allow list is
//! configured, it matches the allow list or is one of [`BASICS`]. Deny rules
//! always win: the configured deny list, every `OPENHEIM_*` variable, names
//! that look like credentials ([`SECRET_SUFFIXES`]) and the providers' key
//! variables, which the caller adds to the deny list.

use std::ffi::OsStr;

/// Kept under an allow list even when not named in it: what ordinary
/// programs need to find binaries, the home directory and the locale.
pub const BASICS: [&str; 11] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE", "LC_*",
];

/// Environment variable name endings that mark credentials.
pub const SECRET_SUFFIXES: [&str; 5] = [
    "_API_KEY",
    "_TOKEN",
    "_SECRET",
    "_SECRET_KEY",
    "_ACCESS_KEY",
];

/// One entry of an allow or deny list: `NAME` or `PREFIX*`, compared
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(entry: &str) -> Option<Self> {
        let upper = entry.trim().to_ascii_uppercase();
        match upper.strip_suffix('*') {
            Some(prefix) => Some(Self::Prefix(prefix.to_owned())),
            None if upper.is_empty() => None,
            None => Some(Self::Exact(upper)),
        }
    }

    fn matches(&self, upper_name: &str) -> bool {
        match self {
            Self::Exact(name) => upper_name == name,
            Self::Prefix(prefix) => upper_name.starts_with(prefix.as_str()),
        }
    }
}

/// Which variables commands inherit.
#[derive(Debug, Clone, Default)]
pub struct EnvPolicy {
    /// Empty: everything not denied passes.
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

impl EnvPolicy {
    /// A policy from allow and deny entries (`NAME` or `PREFIX*`).
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let parse = |list: &[String]| list.iter().filter_map(|e| Pattern::parse(e)).collect();
        Self {
            allow: parse(allow),
            deny: parse(deny),
        }
    }

    /// Whether a command may see the variable `name`.
    pub fn passes(&self, name: &OsStr) -> bool {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        if is_secret(&upper) || self.deny.iter().any(|p| p.matches(&upper)) {
            return false;
        }
        self.allow.is_empty()
            || self.allow.iter().any(|p| p.matches(&upper))
            || BASICS
                .iter()
                .filter_map(|b| Pattern::parse(b))
                .any(|p| p.matches(&upper))
    }

    /// Removes from `cmd` every variable of `inherited` (this process's
    /// environment, by name) that must not reach it.
    pub(crate) fn apply<'a>(
        &self,
        cmd: &mut tokio::process::Command,
        inherited: impl IntoIterator<Item = &'a OsStr>,
    ) {
        for name in inherited {
            if !self.passes(name) {
                cmd.env_remove(name);
            }
        }
    }
}

/// openheim's own settings and anything named like a credential.
fn is_secret(upper_name: &str) -> bool {
    upper_name.starts_with("OPENHEIM_") || SECRET_SUFFIXES.iter().any(|s| upper_name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn passes(policy: &EnvPolicy, name: &str) -> bool {
        policy.passes(OsStr::new(name))
    }

    #[test]
    fn credentials_and_openheim_settings_never_pass() {
        let open = EnvPolicy::default();
        let allowing = EnvPolicy::new(&strings(&["GITHUB_TOKEN", "OPENHEIM_*"]), &[]);
        for name in [
            "OPENAI_API_KEY",
            "anthropic_api_key",
            "GITHUB_TOKEN",
            "OPENHEIM_CONFIG",
            "AWS_SECRET_ACCESS_KEY",
            "MY_SECRET",
        ] {
            assert!(!passes(&open, name), "{name}");
            assert!(
                !passes(&allowing, name),
                "allow does not beat the rule: {name}"
            );
        }
        for name in ["PATH", "HOME", "TOKENIZER_PATH", "LANG", "CARGO_HOME"] {
            assert!(passes(&open, name), "{name}");
        }
    }

    #[test]
    fn apply_removes_what_must_not_pass_from_the_command() {
        let mut cmd = tokio::process::Command::new("true");
        cmd.env("OPENAI_API_KEY", "sk-test").env("EDITOR", "vi");
        let inherited = [OsStr::new("OPENAI_API_KEY"), OsStr::new("EDITOR")];
        EnvPolicy::default().apply(&mut cmd, inherited);
        let envs: Vec<(String, Option<String>)> = cmd
            .as_std()
            .get_envs()
            .map(|(k, v)| {
                let text = |s: &OsStr| s.to_string_lossy().into_owned();
                (text(k), v.map(text))
            })
            .collect();
        assert!(
            envs.contains(&("OPENAI_API_KEY".to_owned(), None)),
            "{envs:?}"
        );
        assert!(
            envs.contains(&("EDITOR".to_owned(), Some("vi".to_owned()))),
            "{envs:?}"
        );
    }

    #[test]
    fn deny_entries_remove_names_and_prefixes() {
        let policy = EnvPolicy::new(&[], &strings(&["AWS_*", "kubeconfig", " "]));
        assert!(!passes(&policy, "AWS_REGION"));
        assert!(!passes(&policy, "KUBECONFIG"));
        assert!(passes(&policy, "KUBECONFIG_EXTRA"));
        assert!(passes(&policy, "PATH"));
    }

    #[test]
    fn an_allow_list_keeps_only_its_names_and_the_basics_and_deny_wins() {
        let policy = EnvPolicy::new(
            &strings(&["CARGO_*", "RUST_LOG"]),
            &strings(&["CARGO_REGISTRY_AUTH"]),
        );
        for name in ["CARGO_HOME", "rust_log", "PATH", "HOME", "LC_ALL", "TMPDIR"] {
            assert!(passes(&policy, name), "{name}");
        }
        for name in [
            "EDITOR",
            "SSH_AUTH_SOCK",
            "CARGO_REGISTRY_AUTH",
            "RUST_LOG_STYLE",
        ] {
            assert!(!passes(&policy, name), "{name}");
        }
    }
}
