//! Layering and validation: built-in defaults < config file < `OPENHEIM_*`
//! environment < explicit overrides, checked all at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Source, Value};
use serde::de::DeserializeOwned;

use crate::Secret;
use crate::schema::{Config, McpServerConfig, ProviderConfig, THEMES};
use crate::validate::validate;

/// Environment variables that steer the binaries themselves and are not config keys.
const META_ENV_VARS: &[&str] = &["OPENHEIM_CONFIG", "OPENHEIM_HOME", "OPENHEIM_LOG"];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "default_skills",
    "project_instructions",
    "server.auth_tokens",
    "server.allowed_origins",
    "server.allowed_hosts",
    "tools.env_allow",
    "tools.env_deny",
    "tools.writable_paths",
];

/// What to layer. The binary fills it; tests pass exactly what they want.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// Config file to read, if any.
    pub file: Option<PathBuf>,
    /// Whether a missing `file` is an error (an explicit `--config PATH`).
    pub file_required: bool,
    /// The process environment to consider: `OPENHEIM_*` keys and the
    /// variables providers name in `env_var`.
    pub env: BTreeMap<String, String>,
    /// Highest-priority values by dotted key (`server.port`), e.g. CLI flags.
    pub overrides: Vec<(String, String)>,
}

/// One thing wrong with the configuration, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key (`providers.openai.api_base`), empty for file-level problems.
    pub key: String,
    /// The file or "environment" the offending value came from, when known.
    pub source: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.key.is_empty()) {
            (Some(src), false) => write!(f, "{src}: `{}`: {}", self.key, self.message),
            (Some(src), true) => write!(f, "{src}: {}", self.message),
            (None, false) => write!(f, "`{}`: {}", self.key, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Loads, layers and validates the configuration.
pub fn load(options: &LoadOptions) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let table = match merged_table(options) {
        Ok(table) => table,
        Err(problem) => {
            return Err(ConfigError {
                problems: vec![problem],
            });
        }
    };
    let mut config = typed(table, &mut problems);
    if let Some(file) = &options.file {
        name_file_as_given(&mut problems, file);
    }
    resolve_api_keys(&mut config, &options.env);
    resolve_user_tokens(&mut config, &options.env);
    validate(&config, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

fn merged_table(options: &LoadOptions) -> Result<BTreeMap<String, Value>, ConfigProblem> {
    let mut builder = config::Config::builder();
    if let Some(path) = &options.file {
        if options.file_required && !path.exists() {
            return Err(ConfigProblem {
                key: String::new(),
                source: Some(path.display().to_string()),
                message: "config file not found".to_owned(),
            });
        }
        builder = builder.add_source(file_source(path));
    }
    let env: config::Map<String, String> = options
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("OPENHEIM_") && !META_ENV_VARS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut environment = Environment::with_prefix("OPENHEIM")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(env));
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    builder = builder.add_source(environment);
    for (key, value) in &options.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigProblem {
                key: key.clone(),
                source: Some("command line".to_owned()),
                message: e.to_string(),
            })?;
    }
    let built = builder.build().map_err(|e| ConfigProblem {
        key: String::new(),
        source: options.file.as_ref().map(|p| p.display().to_string()),
        message: e.to_string(),
    })?;
    built
        .collect()
        .map(|m| m.into_iter().collect())
        .map_err(|e| ConfigProblem {
            key: String::new(),
            source: None,
            message: e.to_string(),
        })
}

fn file_source(path: &Path) -> File<config::FileSourceFile, FileFormat> {
    File::from(path).format(FileFormat::Toml).required(false)
}

/// Deserialises key by key so one bad value does not hide the next one.
fn typed(table: BTreeMap<String, Value>, problems: &mut Vec<ConfigProblem>) -> Config {
    let mut config = Config::default();
    for (key, value) in table {
        let origin = value.origin().map(ToOwned::to_owned);
        let mut field = |target: &mut dyn FnMut(Value) -> Result<(), config::ConfigError>| {
            if let Err(e) = target(value.clone()) {
                problems.push(ConfigProblem {
                    key: key.clone(),
                    source: origin.clone(),
                    message: clean_message(&e),
                });
            }
        };
        match key.as_str() {
            "default_provider" => field(&mut |v| set(&mut config.default_provider, v)),
            "max_iterations" => field(&mut |v| set(&mut config.max_iterations, v)),
            "default_skills" => field(&mut |v| set(&mut config.default_skills, v)),
            "project_instructions" => field(&mut |v| set(&mut config.project_instructions, v)),
            "work_dir" => field(&mut |v| set(&mut config.work_dir, v)),
            "allow_shell" => field(&mut |v| set(&mut config.allow_shell, v)),
            "data_dir" => field(&mut |v| set(&mut config.data_dir, v)),
            "completion_timeout_secs" => {
                field(&mut |v| set(&mut config.completion_timeout_secs, v))
            }
            "tools" => field(&mut |v| set(&mut config.tools, v)),
            "permissions" => field(&mut |v| set(&mut config.permissions, v)),
            "server" => field(&mut |v| set(&mut config.server, v)),
            "services" => field(&mut |v| set(&mut config.services, v)),
            "store" => field(&mut |v| set(&mut config.store, v)),
            "memory" => field(&mut |v| set(&mut config.memory, v)),
            "agents" => typed_agents(&value, origin, &mut config, problems),
            "telemetry" => field(&mut |v| set(&mut config.telemetry, v)),
            "context" => field(&mut |v| set(&mut config.context, v)),
            "pricing" => field(&mut |v| set(&mut config.pricing, v)),
            "hooks" => field(&mut |v| set(&mut config.hooks, v)),
            "ui" => {
                field(&mut |v| set(&mut config.ui, v));
                check_theme(&config, &value, origin, problems);
            }
            "providers" => {
                config.providers = named_tables::<ProviderConfig>("providers", value, problems)
            }
            "mcp_servers" => {
                config.mcp_servers = named_tables::<McpServerConfig>("mcp_servers", value, problems)
            }
            _ => problems.push(ConfigProblem {
                key: key.clone(),
                source: origin,
                message: "unknown key".to_owned(),
            }),
        }
    }
    config
}

/// `[agents]`: the limits and the profiles, each problem with its key.
fn typed_agents(
    value: &Value,
    origin: Option<String>,
    config: &mut Config,
    problems: &mut Vec<ConfigProblem>,
) {
    match value.clone().into_table() {
        Ok(table) => {
            let (agents, found) = crate::agents::agents_from_table(table);
            config.agents = agents;
            problems.extend(found.into_iter().map(|(key, message)| ConfigProblem {
                key,
                source: origin.clone(),
                message,
            }));
        }
        Err(e) => problems.push(ConfigProblem {
            key: "agents".to_owned(),
            source: origin,
            message: clean_message(&e),
        }),
    }
}

/// `ui.theme` names a known theme.
fn check_theme(
    config: &Config,
    ui: &Value,
    origin: Option<String>,
    problems: &mut Vec<ConfigProblem>,
) {
    if !THEMES.contains(&config.ui.theme.as_str()) {
        problems.push(ConfigProblem {
            key: "ui.theme".to_owned(),
            source: nested_origin(ui, "theme").or(origin),
            message: format!(
                "unknown theme {:?} (themes: {})",
                config.ui.theme,
                THEMES.join(", ")
            ),
        });
    }
}

/// Where the value of `table.key` came from, when `table` is a table.
fn nested_origin(table: &Value, key: &str) -> Option<String> {
    let table = table.clone().into_table().ok()?;
    table.get(key)?.origin().map(ToOwned::to_owned)
}

fn set<T: DeserializeOwned>(slot: &mut T, value: Value) -> Result<(), config::ConfigError> {
    *slot = value.try_deserialize()?;
    Ok(())
}

/// `[providers.NAME]`-style sections, each checked on its own.
fn named_tables<T: DeserializeOwned>(
    section: &str,
    value: Value,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, T> {
    let origin = value.origin().map(ToOwned::to_owned);
    let mut out = BTreeMap::new();
    let table = match value.into_table() {
        Ok(t) => t,
        Err(e) => {
            problems.push(ConfigProblem {
                key: section.to_owned(),
                source: origin,
                message: clean_message(&e),
            });
            return out;
        }
    };
    for (name, entry) in table {
        let origin = entry.origin().map(ToOwned::to_owned);
        match entry.try_deserialize::<T>() {
            Ok(parsed) => {
                out.insert(name, parsed);
            }
            Err(e) => problems.push(ConfigProblem {
                key: format!("{section}.{name}"),
                source: origin,
                message: clean_message(&e),
            }),
        }
    }
    out
}

/// The config crate's messages end with " in <origin>", which the problem
/// already shows as its source.
fn clean_message(e: &config::ConfigError) -> String {
    let text = e.to_string();
    match text.rfind(" in ") {
        Some(i) if !text[i + 4..].contains(' ') => text[..i].to_owned(),
        _ => text,
    }
}

/// The config crate records file origins relative to the current
/// directory; show the path the way the user (or the binary) named it.
fn name_file_as_given(problems: &mut [ConfigProblem], file: &Path) {
    let given = file.display().to_string();
    for problem in problems {
        let same_file = problem
            .source
            .as_deref()
            .map(Path::new)
            .is_some_and(|origin| origin.file_name() == file.file_name());
        if same_file {
            problem.source = Some(given.clone());
        }
    }
}

/// Fills `api_key` from the environment variable each provider names (or
/// the conventional one of its kind) unless a key is configured directly.
fn resolve_api_keys(config: &mut Config, env: &BTreeMap<String, String>) {
    for (name, provider) in &mut config.providers {
        if provider.env_var.is_none() {
            provider.env_var = provider.kind_for(name).default_key_var().map(str::to_owned);
        }
        let has_key = provider.api_key.as_ref().is_some_and(|k| !k.is_empty());
        if !has_key {
            provider.api_key = provider
                .env_var
                .as_ref()
                .and_then(|var| env.get(var))
                .filter(|v| !v.is_empty())
                .map(Secret::new);
        }
    }
}

/// Fills each `[server.users.NAME]` token from its `token_env` unless a
/// token is configured directly.
fn resolve_user_tokens(config: &mut Config, env: &BTreeMap<String, String>) {
    for user in config.server.users.values_mut() {
        if user.token.as_ref().is_some_and(|t| !t.is_empty()) {
            continue;
        }
        user.token = user
            .token_env
            .as_ref()
            .and_then(|var| env.get(var))
            .filter(|v| !v.is_empty())
            .map(Secret::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EmbeddingsApi, ProviderKind};
    use crate::validate::is_loopback_url;
    use std::io::Write;

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn options(file: &tempfile::NamedTempFile, env: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            file: Some(file.path().to_path_buf()),
            file_required: true,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides: Vec::new(),
        }
    }

    #[test]
    fn defaults_without_a_file() {
        let config = load(&LoadOptions::default()).expect("defaults are valid");
        assert_eq!(config.max_iterations, 10);
        assert!(config.allow_shell);
        assert_eq!(config.server.host, "127.0.0.1");
        assert_eq!(config.server.port, 1217);
        assert_eq!(config.tools.max_result_bytes, 128 * 1024);
    }

    #[test]
    fn layers_file_then_env_then_overrides() {
        let file = write_config(
            r#"
default_provider = "ollama"
max_iterations = 4
default_skills = ["rules"]
[providers.ollama]
api_base = "http://localhost:11434/v1"
default_model = "llama3"
[server]
port = 9000
"#,
        );
        let mut opts = options(
            &file,
            &[
                ("OPENHEIM_MAX_ITERATIONS", "7"),
                ("OPENHEIM_DEFAULT_SKILLS", "a,b"),
                ("OPENHEIM_TOOLS__ENV_DENY", "AWS_*,GITHUB_TOKEN"),
                ("OPENHEIM_PROVIDERS__OLLAMA__DEFAULT_MODEL", "mistral"),
                ("OPENHEIM_HOME", "/ignored"),
            ],
        );
        opts.overrides.push(("server.port".into(), "9100".into()));
        let config = load(&opts).expect("valid");
        assert_eq!(config.max_iterations, 7);
        assert_eq!(config.default_skills, vec!["a", "b"]);
        assert_eq!(config.tools.env_deny, vec!["AWS_*", "GITHUB_TOKEN"]);
        assert_eq!(
            config.providers["ollama"].default_model.as_deref(),
            Some("mistral")
        );
        assert_eq!(config.server.port, 9100);
        assert_eq!(
            config.providers["ollama"].kind_for("ollama"),
            ProviderKind::OpenaiCompatible
        );
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let file = write_config(
            r#"
default_provider = "nope"
max_iterations = "many"
colour = "green"
default_skills = ["../etc"]
project_instructions = ["docs/RULES.md", "../outside.md"]
[providers.local]
default_model = "x"
[providers.remote]
api_base = "http://example.com/v1"
api_key = "sk-1"
fallbacks = ["ghost/model", "bad"]
[mcp_servers.both]
command = "x"
url = "http://localhost/mcp"
[mcp_servers.local.oauth]
client_id = "c"
[mcp_servers.local]
command = "x"
"#,
        );
        let err = load(&options(&file, &[])).expect_err("invalid");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "max_iterations",
            "colour",
            "default_provider",
            "default_skills[0]",
            "project_instructions[1]",
            "providers.local.api_base",
            "providers.remote.api_base",
            "providers.remote.fallbacks[0]",
            "providers.remote.fallbacks[1]",
            "mcp_servers.both",
            "mcp_servers.local.oauth",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {err}");
        }
        let text = err.to_string();
        let bad_type = &err.problems[keys.iter().position(|k| *k == "max_iterations").unwrap()];
        assert_eq!(
            bad_type.source.as_deref(),
            Some(&*file.path().display().to_string())
        );
        assert!(!bad_type.message.contains(" in "), "{text}");
        assert!(!text.contains("sk-1"), "a key leaked into: {text}");
    }

    #[test]
    fn mcp_servers_take_an_oauth_table() {
        let file = write_config(
            r#"
[mcp_servers.tracker]
url = "https://mcp.example.com/mcp"
[mcp_servers.tracker.oauth]
client_id = "openheim"
client_secret = "cs-1"
scopes = ["issues:read"]
"#,
        );
        let config = load(&options(&file, &[])).unwrap();
        let oauth = config.mcp_servers["tracker"].oauth.clone().unwrap();
        assert_eq!(oauth.client_id.as_deref(), Some("openheim"));
        assert_eq!(oauth.scopes, ["issues:read"]);
        assert!(!format!("{oauth:?}").contains("cs-1"));
    }

    #[test]
    fn api_key_comes_from_the_named_env_var() {
        let file = write_config(
            r#"
[providers.openai]
default_model = "gpt-4o"
[providers.mine]
api_base = "https://llm.example.com/v1"
env_var = "MY_KEY"
"#,
        );
        let config = load(&options(
            &file,
            &[("OPENAI_API_KEY", "sk-a"), ("MY_KEY", "sk-b")],
        ))
        .expect("valid");
        assert_eq!(
            config.providers["openai"]
                .api_key
                .as_ref()
                .map(Secret::expose),
            Some("sk-a")
        );
        assert_eq!(
            config.providers["mine"]
                .api_key
                .as_ref()
                .map(Secret::expose),
            Some("sk-b")
        );
        assert_eq!(
            config.providers["openai"].api_base_for("openai").as_deref(),
            Some("https://api.openai.com/v1")
        );
    }

    #[test]
    fn the_ui_theme_defaults_to_green_and_must_be_known() {
        assert_eq!(load(&LoadOptions::default()).unwrap().ui.theme, "green");
        let file = write_config("[ui]\ntheme = \"cyan\"\n");
        assert_eq!(load(&options(&file, &[])).unwrap().ui.theme, "cyan");

        let file = write_config("[ui]\ntheme = \"purple\"\n");
        let err = load(&options(&file, &[])).expect_err("unknown theme");
        assert_eq!(err.problems.len(), 1, "{err}");
        let problem = &err.problems[0];
        assert_eq!(problem.key, "ui.theme");
        assert_eq!(
            problem.source.as_deref(),
            Some(&*file.path().display().to_string())
        );
        assert!(
            problem.message.contains("\"purple\"")
                && problem
                    .message
                    .contains("green, blue, red, white, cyan, magenta, yellow"),
            "{err}"
        );

        let file = write_config("");
        let err = load(&options(&file, &[("OPENHEIM_UI__THEME", "pink")])).expect_err("env");
        assert_eq!(err.problems[0].key, "ui.theme");
        assert!(err.problems[0].source.is_some(), "{err}");
    }

    #[test]
    fn store_keys_have_defaults_and_are_checked() {
        let store = load(&LoadOptions::default()).unwrap().store;
        assert_eq!(store.url, None);
        assert_eq!(store.prefix, "openheim");
        assert_eq!(store.lease_ttl_secs, 10);

        let file = write_config("[store]\nurl = \"redis://cache:6379/0\"\nprefix = \"team-a\"\n");
        let env = [("OPENHEIM_STORE__LEASE_TTL_SECS", "5")];
        let store = load(&options(&file, &env)).unwrap().store;
        assert_eq!(store.url.as_deref(), Some("redis://cache:6379/0"));
        assert_eq!(store.prefix, "team-a");
        assert_eq!(store.lease_ttl_secs, 5);

        let file =
            write_config("[store]\nurl = \"mysql://x\"\nprefix = \"a b*\"\nlease_ttl_secs = 0\n");
        let err = load(&options(&file, &[])).expect_err("invalid store");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["store.url", "store.lease_ttl_secs", "store.prefix"],
            "{err}"
        );
    }

    #[test]
    fn context_keys_have_defaults_and_are_checked() {
        let context = load(&LoadOptions::default()).unwrap().context;
        assert_eq!(context.compact_at, 0.8);
        assert_eq!(context.compaction_model, None);

        let file = write_config("[context]\ncompact_at = 0.5\ncompaction_model = \"mock/small\"\n");
        let context = load(&options(&file, &[])).unwrap().context;
        assert_eq!(context.compact_at, 0.5);
        assert_eq!(context.compaction_model.as_deref(), Some("mock/small"));

        let file = write_config("[context]\ncompact_at = 1.5\ncompaction_model = \" \"\n");
        let err = load(&options(&file, &[])).expect_err("invalid context");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["context.compact_at", "context.compaction_model"],
            "{err}"
        );
    }

    #[test]
    fn agents_have_limits_and_profiles_each_checked_by_key() {
        let agents = load(&LoadOptions::default()).unwrap().agents;
        assert_eq!((agents.max_depth, agents.max_children), (1, 4));
        assert!(agents.profiles.is_empty());
        let file = write_config(
            "[agents]\nmax_depth = 2\n[agents.scout]\ndescription = \"Finds files\"\nread_only = true\ntools = [\"list_dir\"]\nprompt = \"You look around.\"\n",
        );
        let config = load(&options(&file, &[])).unwrap();
        assert_eq!(config.agents.max_depth, 2);
        let scout = &config.agents.profiles["scout"];
        assert!(scout.read_only && scout.prompt == "You look around.");

        let file = write_config(
            "[agents]\nmax_children = 0\n[agents.Bad]\ndescription = \"x\"\n[agents.ok]\nmodel = \"ghost/m\"\n[agents.typo]\ndescripton = \"x\"\n",
        );
        let err = load(&options(&file, &[])).expect_err("invalid agents");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "agents.max_children",
            "agents.Bad",
            "agents.ok.description",
            "agents.typo",
            "agents.ok.model",
        ] {
            assert!(keys.contains(&key), "{key} missing: {err}");
        }
    }

    #[test]
    fn memory_keys_have_defaults_and_are_checked() {
        let memory = load(&LoadOptions::default()).unwrap().memory;
        assert_eq!(memory.enabled, None);
        assert!(memory.enabled_or(true) && !memory.enabled_or(false));
        let file = write_config(
            "[memory]\nenabled = false\nproject = \"ledgerly\"\nembeddings = \"local/nomic\"\n[providers.local]\napi_base = \"http://127.0.0.1:11434/v1\"\nembeddings_api = \"ollama\"\n",
        );
        let config = load(&options(&file, &[])).unwrap();
        assert_eq!(config.memory.enabled, Some(false));
        assert_eq!(config.memory.project.as_deref(), Some("ledgerly"));
        assert_eq!(config.memory.embeddings.as_deref(), Some("local/nomic"));
        assert_eq!(
            config.providers["local"].embeddings_api,
            EmbeddingsApi::Ollama
        );

        let file = write_config(
            "[memory]\nproject = \" \"\nembeddings = \"claude/x\"\n[providers.claude]\nkind = \"anthropic\"\nembeddings_api = \"ollama\"\n",
        );
        let err = load(&options(&file, &[])).expect_err("invalid memory");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "providers.claude.embeddings_api",
                "memory.project",
                "memory.embeddings"
            ],
            "{err}"
        );
        for bad in ["nomic", "ghost/nomic"] {
            let env = [("OPENHEIM_MEMORY__EMBEDDINGS", bad)];
            let err = load(&options(&write_config(""), &env)).expect_err(bad);
            assert_eq!(err.problems[0].key, "memory.embeddings", "{err}");
        }
    }

    #[test]
    fn a_custom_provider_needs_no_endpoint_and_refuses_one() {
        let file = write_config(
            r#"
default_provider = "acme"
[providers.acme]
kind = "custom"
default_model = "acme-large"
context_window = 200000
max_retries = 1
[providers.openai]
default_model = "gpt-4o"
fallbacks = ["acme/acme-small"]
"#,
        );
        let config = load(&options(&file, &[("OPENAI_API_KEY", "sk-a")])).expect("valid");
        let acme = &config.providers["acme"];
        assert_eq!(acme.kind_for("acme"), ProviderKind::Custom);
        assert_eq!(ProviderKind::Custom.as_str(), "custom");
        assert!(acme.env_var.is_none() && acme.api_key.is_none());

        let file = write_config(
            r#"
[providers.acme]
kind = "custom"
api_base = "https://acme.example/v1"
env_var = "ACME_KEY"
wire_api = "responses"
"#,
        );
        let err = load(&options(&file, &[])).expect_err("endpoint keys are refused");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "providers.acme.api_base",
                "providers.acme.env_var",
                "providers.acme.wire_api"
            ],
            "{err}"
        );
        assert!(
            err.to_string().contains("not used by custom providers"),
            "{err}"
        );
    }

    #[test]
    fn blank_tokens_and_hosts_with_schemes_are_refused() {
        let file = write_config("");
        let env = [
            ("OPENHEIM_SERVER__AUTH_TOKENS", " "),
            (
                "OPENHEIM_SERVER__ALLOWED_HOSTS",
                "https://evil.example,ok.example:8080",
            ),
        ];
        let err = load(&options(&file, &env)).expect_err("blank token");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["server.auth_tokens[0]", "server.allowed_hosts"],
            "{err}"
        );
        assert!(err.to_string().contains("must not be blank"), "{err}");
        // An empty value is no token at all (an unset variable in compose).
        let unset = load(&options(&file, &[("OPENHEIM_SERVER__AUTH_TOKENS", "")])).unwrap();
        assert!(
            unset
                .server
                .auth_tokens
                .iter()
                .all(|t| t.expose().is_empty())
        );
        let tab = load(&options(&file, &[("OPENHEIM_SERVER__AUTH_TOKENS", "a\tb")]));
        assert!(tab.is_err());
    }

    #[test]
    fn workspaces_default_by_users_and_projects_must_be_hidden_directories() {
        use openheim_access::WorkspaceMode;
        let file = write_config("");
        let mode =
            |env: &[(&str, &str)]| load(&options(&file, env)).unwrap().server.workspace_mode();
        assert_eq!(mode(&[]), WorkspaceMode::Shared);
        assert_eq!(
            mode(&[("OPENHEIM_SERVER__WORKSPACES", "")]),
            WorkspaceMode::Shared
        );
        assert_eq!(
            mode(&[("OPENHEIM_SERVER__WORKSPACES", "session")]),
            WorkspaceMode::Session
        );
        let users = write_config(
            "[server.users.alice]\ntoken = \"t-a\"\n\
             [server.projects.web]\npath = \".projects/web\"\nmembers = [\"alice\"]\n",
        );
        let loaded = load(&options(&users, &[])).unwrap();
        assert_eq!(loaded.server.workspace_mode(), WorkspaceMode::User);
        let spaces = loaded.server.workspaces_under("/w".into());
        assert_eq!(spaces.projects[0].path, PathBuf::from("/w/.projects/web"));
        for bad in ["web", ".projects/../alice", "/w/.projects/web", ".projects"] {
            let text = format!("[server.projects.web]\npath = \"{bad}\"\nmembers = [\"a\"]\n");
            let err = load(&options(&write_config(&text), &[])).expect_err(bad);
            assert!(
                err.to_string().contains("server.projects.web.path"),
                "{bad}: {err}"
            );
        }
        let wrong = load(&options(
            &file,
            &[("OPENHEIM_SERVER__WORKSPACES", "everyone")],
        ));
        assert!(wrong.is_err());
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let opts = LoadOptions {
            file: Some(PathBuf::from("/definitely/not/here.toml")),
            file_required: true,
            ..LoadOptions::default()
        };
        let err = load(&opts).expect_err("missing file");
        assert!(err.to_string().contains("config file not found"));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://localhost:11434/v1"));
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://[::1]:8080/v1"));
        assert!(!is_loopback_url("http://localhost.evil.com/v1"));
        assert!(!is_loopback_url("http://10.0.0.1/v1"));
        assert!(!is_loopback_url("http://user@example.com/v1"));
    }
}
