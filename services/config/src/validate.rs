//! Validation of a loaded configuration: every problem, each with its key.

use crate::load::ConfigProblem;
use crate::schema::{
    Config, EmbeddingsApi, LEASE_TTL_SECS_RANGE, ProviderConfig, ProviderKind, WireApi,
};

pub(crate) fn validate(config: &Config, problems: &mut Vec<ConfigProblem>) {
    let mut problem = |key: String, message: String| {
        problems.push(ConfigProblem {
            key,
            source: None,
            message,
        })
    };
    validate_top_level(config, &mut problem);
    for (name, provider) in &config.providers {
        validate_provider(config, name, provider, &mut problem);
    }
    validate_endpoints(config, &mut problem);
    validate_store(config, &mut problem);
    validate_memory(config, &mut problem);
    validate_agents(config, &mut problem);
    if config.completion_timeout_secs == 0 {
        problem(
            "completion_timeout_secs".into(),
            "must be at least 1".into(),
        );
    }
    validate_server(&config.server, &mut problem);
    for (key, hook) in config.hooks.all() {
        if let Some(reason) = hook.problem() {
            problem(key, reason);
        }
    }
    for (key, price) in crate::pricing::configured(config) {
        if let Some(reason) = price.problem() {
            problem(key, reason.into());
        }
    }
    validate_context(config, &mut problem);
    if config.tools.max_result_bytes < 1024 {
        problem(
            "tools.max_result_bytes".into(),
            "must be at least 1024".into(),
        );
    }
}

/// `[store]`.
fn validate_store(config: &Config, problem: &mut impl FnMut(String, String)) {
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
        problem("store.prefix".into(), reason.to_string());
    }
}

/// `[agents.NAME]`: a profile's model names a configured provider.
fn validate_agents(config: &Config, problem: &mut impl FnMut(String, String)) {
    for (name, profile) in &config.agents.profiles {
        if let Some((provider, _)) = profile.model.as_deref().and_then(|m| m.split_once('/'))
            && !config.providers.contains_key(provider)
        {
            problem(
                format!("agents.{name}.model"),
                format!(
                    "provider {provider:?} is not configured (known: {})",
                    known(config.providers.keys())
                ),
            );
        }
    }
}

/// `[context]`.
fn validate_context(config: &Config, problem: &mut impl FnMut(String, String)) {
    let compact_at = config.context.compact_at;
    if !(compact_at > 0.0 && compact_at <= 1.0) {
        problem(
            "context.compact_at".into(),
            format!("must be a fraction of the window above 0 and at most 1, got {compact_at}"),
        );
    }
    if config
        .context
        .compaction_model
        .as_deref()
        .is_some_and(|m| m.trim().is_empty())
    {
        problem(
            "context.compaction_model".into(),
            "is empty; leave it unset to use the session's model".into(),
        );
    }
}

/// Keys at the top of the file.
fn validate_top_level(config: &Config, problem: &mut impl FnMut(String, String)) {
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
            problem(format!("default_skills[{i}]"), reason.to_string());
        }
    }
    for (i, path) in config.project_instructions.iter().enumerate() {
        let escapes = path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if escapes || path.as_os_str().is_empty() {
            problem(
                format!("project_instructions[{i}]"),
                format!(
                    "{} must be a path inside the workspace, relative to it",
                    path.display()
                ),
            );
        }
    }
}

/// `[mcp_servers]` and `[services]`: what to reach, and how.
fn validate_endpoints(config: &Config, problem: &mut impl FnMut(String, String)) {
    for (name, server) in &config.mcp_servers {
        let key = format!("mcp_servers.{name}");
        match (&server.command, &server.url) {
            (Some(_), Some(_)) => problem(
                key.clone(),
                "set either `command` or `url`, not both".into(),
            ),
            (None, None) => problem(key.clone(), "set `command` (stdio) or `url` (HTTP)".into()),
            (None, Some(url)) => {
                if let Err(reason) = check_http_url(url) {
                    problem(format!("{key}.url"), reason.to_string());
                }
            }
            (Some(_), None) => {}
        }
        if server.oauth.is_some() && server.url.is_none() {
            problem(
                format!("{key}.oauth"),
                "OAuth is for Streamable HTTP servers: set `url`".into(),
            );
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
    validate_users(server, problem);
    validate_limits("server.limits", &server.limits, problem);
    for (name, user) in &server.users {
        validate_limits(
            &format!("server.users.{name}.limits"),
            &user.limits,
            problem,
        );
    }
    validate_projects(server, problem);
    if let Some(oidc) = &server.oidc {
        validate_oidc(oidc, problem);
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

/// A limit of 0 would refuse everything: leave the key out for no limit.
fn validate_limits(
    key: &str,
    limits: &crate::LimitsConfig,
    problem: &mut impl FnMut(String, String),
) {
    let keys = [
        ("concurrent_turns", limits.concurrent_turns.map(u64::from)),
        ("sessions_per_day", limits.sessions_per_day.map(u64::from)),
        (
            "requests_per_minute",
            limits.requests_per_minute.map(u64::from),
        ),
        ("tokens_per_day", limits.tokens_per_day),
    ];
    for (name, value) in keys {
        if value == Some(0) {
            problem(
                format!("{key}.{name}"),
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
    }
}

/// Each user needs a name that is a user id and a token of its own.
fn validate_users(server: &crate::ServerConfig, problem: &mut impl FnMut(String, String)) {
    let mut seen: Vec<&str> = server
        .auth_tokens
        .iter()
        .map(|t| t.expose())
        .filter(|t| !t.is_empty())
        .collect();
    for (name, user) in &server.users {
        let key = format!("server.users.{name}");
        if let Err(why) = openheim_access::check_user_id(name) {
            problem(key.clone(), why.to_string());
        }
        let token = user.token.as_ref().map(|t| t.expose()).unwrap_or_default();
        if user.is_limits_only() {
            continue;
        }
        if token.is_empty() {
            let why = match &user.token_env {
                Some(var) => format!("no token: the variable {var} is unset or empty"),
                None => "no token: set `token_env` (or `token`)".to_owned(),
            };
            problem(key, why);
        } else if token.trim().is_empty() || token.chars().any(char::is_whitespace) {
            problem(
                key,
                "a token must not be blank or contain whitespace".into(),
            );
        } else if seen.contains(&token) {
            problem(key, "this token is also another user's".into());
        } else {
            seen.push(token);
        }
    }
}

/// A project lies below `work_dir`, under a first directory whose name
/// starts with a dot (no user id can, so no user's directory is a
/// project's), and names members that are user ids.
fn validate_projects(server: &crate::ServerConfig, problem: &mut impl FnMut(String, String)) {
    use std::path::Component;
    for (name, project) in &server.projects {
        let key = format!("server.projects.{name}.path");
        let mut parts = project.path.components();
        let first = parts.next();
        let hidden =
            matches!(first, Some(Component::Normal(c)) if c.to_string_lossy().starts_with('.'));
        let plain = project
            .path
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !hidden || !plain || parts.next().is_none() {
            problem(
                key,
                "must be relative to work_dir, below a directory whose name starts with a dot, \
                 without `..` (e.g. `.projects/web`)"
                    .into(),
            );
        }
        for member in &project.members {
            if let Err(why) = openheim_access::check_user_id(member) {
                problem(format!("server.projects.{name}.members"), why.to_string());
            }
        }
    }
}

fn validate_oidc(oidc: &crate::OidcConfig, problem: &mut impl FnMut(String, String)) {
    if oidc.issuer.trim().is_empty() {
        problem("server.oidc.issuer".into(), "must be set".into());
    }
    if oidc.audience.iter().all(|a| a.trim().is_empty()) {
        problem(
            "server.oidc.audience".into(),
            "must name at least one audience".into(),
        );
    }
    if !(oidc.jwks_url.starts_with("https://") || oidc.jwks_url.starts_with("http://")) {
        problem(
            "server.oidc.jwks_url".into(),
            "must be an http(s) URL of the issuer's JWK Set".into(),
        );
    }
    if oidc.algorithms.is_empty() {
        problem(
            "server.oidc.algorithms".into(),
            "must name at least one algorithm".into(),
        );
    }
    for alg in &oidc.algorithms {
        if !crate::OIDC_ALGORITHMS.contains(&alg.as_str()) {
            problem(
                "server.oidc.algorithms".into(),
                format!(
                    "{alg:?} is not one of {}",
                    crate::OIDC_ALGORITHMS.join(", ")
                ),
            );
        }
    }
    if oidc.user_claim.trim().is_empty() {
        problem("server.oidc.user_claim".into(), "must be set".into());
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
    if provider.embeddings_api == EmbeddingsApi::Ollama
        && provider.kind_for(name) != ProviderKind::OpenaiCompatible
    {
        problem(
            format!("{key}.embeddings_api"),
            "\"ollama\" applies to openai_compatible providers only".into(),
        );
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

fn validate_memory(config: &Config, problem: &mut impl FnMut(String, String)) {
    let memory = &config.memory;
    if let Some(project) = &memory.project
        && (project.trim().is_empty() || project.chars().any(char::is_control))
    {
        problem(
            "memory.project".into(),
            "must be a non-empty project id without control characters".into(),
        );
    }
    let Some(embeddings) = &memory.embeddings else {
        return;
    };
    match embeddings.split_once('/') {
        Some((provider, model)) if !model.is_empty() => match config.providers.get(provider) {
            None => problem(
                "memory.embeddings".into(),
                format!(
                    "provider {provider:?} is not configured (known: {})",
                    known(config.providers.keys())
                ),
            ),
            Some(settings) if settings.kind_for(provider) == ProviderKind::Anthropic => problem(
                "memory.embeddings".into(),
                format!(
                    "provider {provider:?} is an Anthropic provider, which has no embeddings API"
                ),
            ),
            Some(_) => {}
        },
        _ => problem(
            "memory.embeddings".into(),
            format!("expected \"provider/model\", got {embeddings:?}"),
        ),
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
            Err(reason) => problem(format!("{key}.api_base"), reason.to_string()),
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

/// Why a value of the configuration is refused (its key is added by the
/// caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("skill name is empty")]
    EmptySkillName,
    #[error("invalid skill name {0:?}: no path separators or `..`")]
    SkillName(String),
    #[error("expected 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-`, `.`, `:`; got {0:?}")]
    StorePrefix(String),
    #[error("expected an http:// or https:// URL, got {0:?}")]
    NotHttp(String),
    #[error("URL has no host: {0:?}")]
    NoHost(String),
}

/// A skill name is a bare file stem: no separators, no `..`, not empty.
pub fn check_skill_name(name: &str) -> Result<(), InvalidValue> {
    if name.is_empty() {
        return Err(InvalidValue::EmptySkillName);
    }
    if name.contains(['/', '\\', '\0']) || name == "." || name.contains("..") {
        return Err(InvalidValue::SkillName(name.to_owned()));
    }
    Ok(())
}

/// The Redis key prefix: 1 to 64 of `A-Z a-z 0-9 _ - . :`, so keys stay
/// readable in `redis-cli` and never contain spaces or glob characters.
fn check_store_prefix(prefix: &str) -> Result<(), InvalidValue> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
        return Err(InvalidValue::StorePrefix(prefix.to_owned()));
    }
    Ok(())
}

fn check_http_url(url: &str) -> Result<(), InvalidValue> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| InvalidValue::NotHttp(url.to_owned()))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(InvalidValue::NoHost(url.to_owned()));
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
