//! Environment hygiene: which variables a process openheim starts for the
//! model (a shell command, a stdio MCP server) inherits, and which ones
//! openheim removes from its own environment at start-up.
//!
//! The rule (documented in `docs/configuration.md`, `[tools]`, and
//! `docs/security.md`): a variable reaches a command when no deny rule
//! matches it and, if an allow list is configured, it matches the allow list
//! or is one of [`BASICS`]. Deny rules always win: the configured deny list,
//! every `OPENHEIM_*` variable, names that look like credentials
//! ([`SECRET_SUFFIXES`], [`SECRET_NAMES`]) and the providers' key variables,
//! which [`EnvPolicy::from_config`] adds to the deny list. What a deny rule
//! matches is also what `openheim-boot` scrubs from the process itself.

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

/// Variables that carry credentials although their names do not say so:
/// OTLP exporter headers hold the API keys of hosted telemetry backends.
pub const SECRET_NAMES: [&str; 4] = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
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

    /// The policy of a configuration: `[tools] env_allow` and `env_deny`,
    /// plus every provider's key variable (`env_var`) denied.
    pub fn from_config(config: &openheim_config::Config) -> Self {
        let tools = &config.tools;
        let mut deny = tools.env_deny.clone();
        deny.extend(config.providers.values().filter_map(|p| p.env_var.clone()));
        Self::new(&tools.env_allow, &deny)
    }

    /// Whether a deny rule matches `name`: a credential, an openheim
    /// setting or a configured name. Such a variable reaches no child, and
    /// openheim removes it from its own environment once configured.
    pub fn denies(&self, name: &OsStr) -> bool {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        is_secret(&upper) || self.deny.iter().any(|p| p.matches(&upper))
    }

    /// Whether a command may see the variable `name`.
    pub fn passes(&self, name: &OsStr) -> bool {
        if self.denies(name) {
            return false;
        }
        let upper = name.to_string_lossy().to_ascii_uppercase();
        self.allow.is_empty()
            || self.allow.iter().any(|p| p.matches(&upper))
            || BASICS
                .iter()
                .filter_map(|b| Pattern::parse(b))
                .any(|p| p.matches(&upper))
    }

    /// The environment of a child: the variables of `base` (the
    /// environment openheim was started with) this policy lets through.
    pub fn child_env<'a>(
        &self,
        base: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Vec<(String, String)> {
        base.into_iter()
            .filter(|(name, _)| self.passes(OsStr::new(name.as_str())))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// openheim's own settings and anything named like a credential.
fn is_secret(upper_name: &str) -> bool {
    upper_name.starts_with("OPENHEIM_")
        || SECRET_SUFFIXES.iter().any(|s| upper_name.ends_with(s))
        || SECRET_NAMES.contains(&upper_name)
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
    fn a_child_gets_what_passes_of_the_base_environment() {
        let base: std::collections::BTreeMap<String, String> = [
            ("OPENAI_API_KEY", "sk-test"),
            ("EDITOR", "vi"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=k"),
            ("OPENHEIM_HOME", "/h"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = EnvPolicy::default().child_env(&base);
        assert_eq!(env, [("EDITOR".to_owned(), "vi".to_owned())]);
    }

    #[test]
    fn denied_is_narrower_than_not_passing() {
        let policy = EnvPolicy::new(&strings(&["CARGO_*"]), &strings(&["KUBECONFIG"]));
        assert!(policy.denies(OsStr::new("KUBECONFIG")));
        assert!(policy.denies(OsStr::new("GITHUB_TOKEN")));
        // Not allowed to a child, but no secret: openheim keeps it.
        assert!(!policy.passes(OsStr::new("EDITOR")));
        assert!(!policy.denies(OsStr::new("EDITOR")));
    }

    #[test]
    fn provider_key_variables_are_denied_by_the_config_policy() {
        let mut config = openheim_config::Config::default();
        config.tools.env_deny = vec!["KUBECONFIG".to_owned()];
        config.providers.insert(
            "corp".to_owned(),
            openheim_config::ProviderConfig {
                env_var: Some("CORP_LLM".to_owned()),
                ..openheim_config::ProviderConfig::default()
            },
        );
        let policy = EnvPolicy::from_config(&config);
        assert!(policy.denies(OsStr::new("CORP_LLM")));
        assert!(policy.denies(OsStr::new("kubeconfig")));
        assert!(policy.passes(OsStr::new("PATH")));
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
