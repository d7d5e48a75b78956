//! `GET /api/config`: the effective configuration as JSON with every secret
//! redacted — API keys, auth tokens, MCP `env` and `headers` values,
//! credentials in URLs, and values of secret-looking MCP arguments. Built
//! once at startup; the sandbox level is added per request.

use std::collections::BTreeMap;

use openheim_config::{
    Config, McpServerConfig, PermissionsConfig, ProviderConfig, RunApproval, ToolPolicy, WireApi,
};
use serde_json::{Value, json};

/// What replaces a secret value.
pub use openheim_config::redact::REDACTED;

/// Words that mark a command-line flag as carrying a secret value.
const SECRET_WORDS: [&str; 6] = ["key", "token", "secret", "password", "passwd", "auth"];

/// The configuration without secrets.
pub fn redacted(config: &Config) -> Value {
    json!({
        "default_provider": config.default_provider,
        "max_iterations": config.max_iterations,
        "default_skills": config.default_skills,
        "work_dir": config.work_dir,
        "allow_shell": config.allow_shell,
        "data_dir": config.data_dir,
        "tools": {
            "shell_timeout_secs": config.tools.shell_timeout_secs,
            "max_result_bytes": config.tools.max_result_bytes,
            "sandbox": config.tools.sandbox.name(),
            "writable_paths": config.tools.writable_paths,
            "env_allow": config.tools.env_allow,
            "env_deny": config.tools.env_deny,
            "web_fetch_allow_private": config.tools.web_fetch_allow_private,
        },
        "permissions": permissions(&config.permissions),
        "providers": config.providers.iter()
            .map(|(name, p)| (name.clone(), provider(name, p)))
            .collect::<BTreeMap<_, _>>(),
        "mcp_servers": config.mcp_servers.iter()
            .map(|(name, s)| (name.clone(), mcp_server(s)))
            .collect::<BTreeMap<_, _>>(),
        "server": {
            "host": config.server.host,
            "port": config.server.port,
            // What is enforced: empty entries are no token.
            "auth_tokens": config.server.auth_tokens.iter().filter(|t| !t.is_empty()).map(|_| REDACTED).collect::<Vec<_>>(),
            "allowed_origins": config.server.allowed_origins,
        },
        "services": {
            "agent_loop": config.services.agent_loop.as_deref().map(redact),
            "llm_proxy": config.services.llm_proxy.as_deref().map(redact),
            "tool_executor": config.services.tool_executor.as_deref().map(redact),
            "mcp_broker": config.services.mcp_broker.as_deref().map(redact),
        },
        "store": { "url": config.store.url.as_deref().map(redact) },
        "memory": {
            "enabled": config.memory.enabled,
            "project": config.memory.project,
            "embeddings": config.memory.embeddings,
        },
        "telemetry": {
            "otlp_endpoint": config.telemetry.otlp_endpoint.as_deref().map(redact),
            "service_name": config.telemetry.service_name,
        },
    })
}

fn provider(name: &str, p: &ProviderConfig) -> Value {
    let has_key = p.api_key.as_ref().is_some_and(|k| !k.is_empty());
    json!({
        "kind": p.kind_for(name).as_str(),
        "api_base": p.api_base_for(name).as_deref().map(redact),
        "default_model": p.default_model,
        "models": p.models,
        "env_var": p.env_var,
        "api_key": has_key.then_some(REDACTED),
        "timeout_secs": p.timeout_secs,
        "max_tokens": p.max_tokens,
        "context_window": p.context_window,
        "max_retries": p.max_retries,
        "retry_base_delay_ms": p.retry_base_delay_ms,
        "retry_max_delay_ms": p.retry_max_delay_ms,
        "fallbacks": p.fallbacks,
        "cooldown_secs": p.cooldown_secs,
        "wire_api": match p.wire_api {
            WireApi::Chat => "chat",
            WireApi::Responses => "responses",
        },
    })
}

fn mcp_server(s: &McpServerConfig) -> Value {
    let hidden = |keys: Vec<&String>| {
        keys.into_iter()
            .map(|k| (k.clone(), REDACTED))
            .collect::<BTreeMap<_, _>>()
    };
    json!({
        "command": s.command,
        "args": redact_args(&s.args),
        "env": hidden(s.env.keys().collect()),
        "cwd": s.cwd,
        "url": s.url.as_deref().map(redact),
        "headers": hidden(s.headers.keys().collect()),
        "call_timeout_secs": s.call_timeout_secs,
        "oauth": s.oauth.as_ref().map(|o| json!({
            "client_id": o.client_id,
            "client_secret": o.client_secret.as_ref().map(|_| REDACTED),
            "scopes": o.scopes,
        })),
    })
}

fn permissions(p: &PermissionsConfig) -> Value {
    json!({
        "read": tool_policy(p.read),
        "edit": tool_policy(p.edit),
        "execute": tool_policy(p.execute),
        "fetch": tool_policy(p.fetch),
        "other": tool_policy(p.other),
        "run": match p.run {
            RunApproval::Auto => "auto",
            RunApproval::Deny => "deny",
        },
    })
}

fn tool_policy(policy: ToolPolicy) -> &'static str {
    match policy {
        ToolPolicy::Auto => "auto",
        ToolPolicy::Ask => "ask",
        ToolPolicy::Deny => "deny",
    }
}

/// A URL as shown: query values and user information redacted.
fn redact(url: &str) -> String {
    openheim_config::redact_url(url).into_owned()
}

/// MCP arguments with the values of secret-looking flags redacted:
/// `--api-key X`, `--token=X`, `-p` is kept (no secret word).
fn redact_args(args: &[String]) -> Vec<String> {
    let secretive = |flag: &str| {
        let flag = flag.to_ascii_lowercase();
        flag.starts_with('-') && SECRET_WORDS.iter().any(|w| flag.contains(w))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next && !arg.starts_with('-') {
            out.push(REDACTED.to_owned());
            hide_next = false;
            continue;
        }
        hide_next = false;
        match arg.split_once('=') {
            Some((flag, _)) if secretive(flag) => out.push(format!("{flag}={REDACTED}")),
            Some(_) => out.push(arg.clone()),
            None => {
                hide_next = secretive(arg);
                out.push(arg.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use openheim_config::Secret;

    use super::*;

    #[test]
    fn no_secret_survives() {
        let mut config = Config::default();
        config.providers.insert(
            "corp".into(),
            ProviderConfig {
                api_base: Some("https://bob:hunter2@llm.corp/v1?key=sk-in-url".into()),
                api_key: Some(Secret::new("sk-live-SECRET")),
                env_var: Some("CORP_KEY".into()),
                ..ProviderConfig::default()
            },
        );
        let mut server = McpServerConfig {
            command: Some("mcp".into()),
            args: vec![
                "--api-key".into(),
                "sk-arg".into(),
                "--token=tk-arg".into(),
                "-v".into(),
                "plain".into(),
            ],
            ..McpServerConfig::default()
        };
        server.env.insert("GITHUB_TOKEN".into(), "ghp-env".into());
        server
            .headers
            .insert("Authorization".into(), Secret::new("Bearer hdr"));
        config.mcp_servers.insert("gh".into(), server);
        config.server.auth_tokens = vec![Secret::new("gateway-token")];
        config.store.url = Some("redis://:redispw@cache:6379/0".into());
        let view = redacted(&config).to_string();
        for secret in [
            "hunter2",
            "sk-in-url",
            "sk-live-SECRET",
            "sk-arg",
            "tk-arg",
            "ghp-env",
            "hdr",
            "gateway-token",
            "redispw",
        ] {
            assert!(!view.contains(secret), "{secret} leaked: {view}");
        }
        let view = redacted(&config);
        let corp = &view["providers"]["corp"];
        assert_eq!(corp["api_key"], REDACTED);
        assert_eq!(corp["env_var"], "CORP_KEY");
        assert_eq!(
            corp["api_base"],
            "https://[redacted]@llm.corp/v1?key=[redacted]"
        );
        assert_eq!(
            view["mcp_servers"]["gh"]["args"],
            json!(["--api-key", REDACTED, "--token=[redacted]", "-v", "plain"])
        );
        assert_eq!(view["mcp_servers"]["gh"]["env"]["GITHUB_TOKEN"], REDACTED);
        assert_eq!(view["server"]["auth_tokens"], json!([REDACTED]));
        // An empty token enforces nothing, so none is shown.
        config.server.auth_tokens = vec![Secret::new("")];
        assert_eq!(redacted(&config)["server"]["auth_tokens"], json!([]));
        assert_eq!(view["tools"]["sandbox"], "best_effort");
        assert_eq!(view["permissions"]["edit"], "ask");
    }

    #[test]
    fn urls_without_credentials_are_kept() {
        assert_eq!(redact("http://127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(redact("agent-loop:50051"), "agent-loop:50051");
        assert_eq!(redact("redis://u@h/1?x"), "redis://[redacted]@h/1?x");
        assert_eq!(
            redact("redis://h/1?password=p"),
            "redis://h/1?password=[redacted]"
        );
    }
}
