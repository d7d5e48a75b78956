//! Layering and validation: built-in defaults < config file < `OPENHEIM_*`
//! environment < explicit overrides, checked all at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Source, Value};
use serde::de::DeserializeOwned;

use crate::Secret;
use crate::schema::{
    Config, LEASE_TTL_SECS_RANGE, McpServerConfig, ProviderConfig, ProviderKind, THEMES, WireApi,
};

/// Environment variables that steer the binaries themselves and are not config keys.
const META_ENV_VARS: &[&str] = &["OPENHEIM_CONFIG", "OPENHEIM_HOME", "OPENHEIM_LOG"];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "default_skills",
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
            "telemetry" => field(&mut |v| set(&mut config.telemetry, v)),
            "ui" => {
                field(&mut |v| set(&mut config.ui, v));
                if !THEMES.contains(&config.ui.theme.as_str()) {
                    problems.push(ConfigProblem {
                        key: "ui.theme".to_owned(),
                        source: nested_origin(&value, "theme").or(origin),
                        message: format!(
                            "unknown theme {:?} (themes: {})",
                            config.ui.theme,
                            THEMES.join(", ")
                        ),
                    });
                }
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
            provider.env_var = match provider.kind_for(name) {
                ProviderKind::Openai => Some("OPENAI_API_KEY".to_owned()),
                ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY".to_owned()),
                ProviderKind::Gemini => Some("GEMINI_API_KEY".to_owned()),
                ProviderKind::OpenaiCompatible | ProviderKind::Custom => None,
            };
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

fn validate(config: &Config, problems: &mut Vec<ConfigProblem>) {
    let mut problem = |key: String, message: String| {
        problems.push(ConfigProblem {
            key,
            source: None,
            message,
        })
    };
    if config.max_iterations == 0 {
        problem("max_iterations".into(), "must be at least 1".into());
    }
    if let Some(default) = &config.default_provider
        && !config.providers.contains_key(default)
    {
        problem(
            "default_provider".into(),
            format!(
                "provider {default:?} is not configured (known: {})",
                known(config.providers.keys())
            ),
        );
    }
    for (i, skill) in config.default_skills.iter().enumerate() {
        if let Err(reason) = check_skill_name(skill) {
            problem(format!("default_skills[{i}]"), reason);
        }
    }
    for (name, provider) in &config.providers {
        validate_provider(config, name, provider, &mut problem);
    }
    for (name, server) in &config.mcp_servers {
        let key = format!("mcp_servers.{name}");
        match (&server.command, &server.url) {
            (Some(_), Some(_)) => problem(key, "set either `command` or `url`, not both".into()),
            (None, None) => problem(key, "set `command` (stdio) or `url` (HTTP)".into()),
            (None, Some(url)) => {
                if let Err(reason) = check_http_url(url) {
                    problem(format!("{key}.url"), reason);
                }
            }
            (Some(_), None) => {}
        }
    }
    let services = [
        ("services.agent_loop", &config.services.agent_loop),
        ("services.llm_proxy", &config.services.llm_proxy),
        ("services.tool_executor", &config.services.tool_executor),
        ("services.mcp_broker", &config.services.mcp_broker),
    ];
    for (key, address) in services {
        if let Some(address) = address
            && address.trim().is_empty()
        {
            problem(key.into(), "address is empty".into());
        }
    }
    if let Some(url) = &config.store.url
        && url != "files"
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
    {
        problem(
            "store.url".into(),
            format!("expected \"files\" or a redis:// URL, got {url:?}"),
        );
    }
    if !LEASE_TTL_SECS_RANGE.contains(&config.store.lease_ttl_secs) {
        problem(
            "store.lease_ttl_secs".into(),
            format!(
                "must be between {} and {} seconds",
                LEASE_TTL_SECS_RANGE.start(),
                LEASE_TTL_SECS_RANGE.end()
            ),
        );
    }
    if let Err(reason) = check_store_prefix(&config.store.prefix) {
        problem("store.prefix".into(), reason);
    }
    if config.completion_timeout_secs == 0 {
        problem(
            "completion_timeout_secs".into(),
            "must be at least 1".into(),
        );
    }
    validate_server(&config.server, &mut problem);
    if config.tools.max_result_bytes < 1024 {
        problem(
            "tools.max_result_bytes".into(),
            "must be at least 1024".into(),
        );
    }
}

/// `[server]`: limits above zero, tokens that protect something, host
/// names without schemes or paths.
fn validate_server(server: &crate::ServerConfig, problem: &mut impl FnMut(String, String)) {
    if server.max_connections == 0 {
        problem("server.max_connections".into(), "must be at least 1".into());
    }
    for (key, value) in [
        ("server.header_timeout_secs", server.header_timeout_secs),
        ("server.idle_timeout_secs", server.idle_timeout_secs),
        (
            "server.max_pending_per_ip",
            server.max_pending_per_ip as u64,
        ),
    ] {
        if value == 0 {
            problem(key.into(), "must be at least 1".into());
        }
    }
    // An empty entry is "no token" (e.g. an unset variable in a compose
    // file); a blank one would be a token anyone can send.
    for (i, token) in server.auth_tokens.iter().enumerate() {
        let text = token.expose();
        if !text.is_empty() && (text.trim().is_empty() || text.chars().any(char::is_whitespace)) {
            problem(
                format!("server.auth_tokens[{i}]"),
                "a token must not be blank or contain whitespace (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
    }
    for host in &server.allowed_hosts {
        if host != "*" && (host.is_empty() || host.contains("://") || host.contains('/')) {
            problem(
                "server.allowed_hosts".into(),
                format!("{host:?} is not a host name (`name` or `name:port`, no scheme or path)"),
            );
        }
    }
}

fn validate_provider(
    config: &Config,
    name: &str,
    provider: &ProviderConfig,
    problem: &mut impl FnMut(String, String),
) {
    let key = format!("providers.{name}");
    if provider.kind_for(name) == ProviderKind::Custom {
        validate_custom_provider(&key, provider, problem);
    } else {
        validate_endpoint(&key, name, provider, problem);
    }
    if provider.timeout_secs == 0 {
        problem(format!("{key}.timeout_secs"), "must be at least 1".into());
    }
    if provider.retry_base_delay_ms > provider.retry_max_delay_ms {
        problem(
            format!("{key}.retry_base_delay_ms"),
            "must not exceed retry_max_delay_ms".into(),
        );
    }
    for (i, fallback) in provider.fallbacks.iter().enumerate() {
        match fallback.split_once('/') {
            Some((p, m)) if !m.is_empty() && config.providers.contains_key(p) => {}
            Some((p, _)) if !config.providers.contains_key(p) => problem(
                format!("{key}.fallbacks[{i}]"),
                format!("provider {p:?} is not configured"),
            ),
            _ => problem(
                format!("{key}.fallbacks[{i}]"),
                format!("expected \"provider/model\", got {fallback:?}"),
            ),
        }
    }
}

/// Where a built-in provider is reached: its `api_base`, and never a key
/// over plain http to another host.
fn validate_endpoint(
    key: &str,
    name: &str,
    provider: &ProviderConfig,
    problem: &mut impl FnMut(String, String),
) {
    match provider.api_base_for(name) {
        None => problem(
            format!("{key}.api_base"),
            "required for openai_compatible providers (e.g. http://localhost:11434/v1)".into(),
        ),
        Some(base) => match check_http_url(&base) {
            Err(reason) => problem(format!("{key}.api_base"), reason),
            Ok(()) => {
                let has_key = provider.api_key.is_some();
                if has_key && base.starts_with("http://") && !is_loopback_url(&base) {
                    problem(
                        format!("{key}.api_base"),
                        "refusing to send an API key over plain http:// to a non-loopback host; use https://".into(),
                    );
                }
            }
        },
    }
}

/// A custom provider's implementation brings its own endpoint and
/// credentials (docs/custom-llm-provider.md): the keys that describe how to
/// reach a built-in provider would be silently ignored, so they are refused.
fn validate_custom_provider(
    key: &str,
    provider: &ProviderConfig,
    problem: &mut impl FnMut(String, String),
) {
    let unused = [
        ("api_base", provider.api_base.is_some()),
        ("api_key", provider.api_key.is_some()),
        ("env_var", provider.env_var.is_some()),
        ("wire_api", provider.wire_api != WireApi::default()),
    ];
    for (field, set) in unused {
        if set {
            problem(
                format!("{key}.{field}"),
                "not used by custom providers: their implementation brings its own endpoint and credentials".into(),
            );
        }
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// A skill name is a bare file stem: no separators, no `..`, not empty.
pub fn check_skill_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("skill name is empty".into());
    }
    if name.contains(['/', '\\', '\0']) || name == "." || name.contains("..") {
        return Err(format!(
            "invalid skill name {name:?}: no path separators or `..`"
        ));
    }
    Ok(())
}

/// The Redis key prefix: 1 to 64 of `A-Z a-z 0-9 _ - . :`, so keys stay
/// readable in `redis-cli` and never contain spaces or glob characters.
fn check_store_prefix(prefix: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
        return Err(format!(
            "expected 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-`, `.`, `:`; got {prefix:?}"
        ));
    }
    Ok(())
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {url:?}"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("URL has no host: {url:?}"));
    }
    Ok(())
}

/// Whether an `http(s)://` URL points at this machine.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
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
[providers.local]
default_model = "x"
[providers.remote]
api_base = "http://example.com/v1"
api_key = "sk-1"
fallbacks = ["ghost/model", "bad"]
[mcp_servers.both]
command = "x"
url = "http://localhost/mcp"
"#,
        );
        let err = load(&options(&file, &[])).expect_err("invalid");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "max_iterations",
            "colour",
            "default_provider",
            "default_skills[0]",
            "providers.local.api_base",
            "providers.remote.api_base",
            "providers.remote.fallbacks[0]",
            "providers.remote.fallbacks[1]",
            "mcp_servers.both",
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
        assert_eq!(store.lease_ttl_secs, 30);

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
