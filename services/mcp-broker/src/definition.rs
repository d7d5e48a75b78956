//! What the broker needs to know to connect one MCP server, whether it came
//! from `[mcp_servers.NAME]` or from a session's `AttachSessionServers`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openheim_proto::mcp_broker::v1::{ServerSpec, server_spec};

use crate::secrets;

/// How to reach a server.
#[derive(Clone)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Added to the broker's own environment.
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP at `url`, with extra request headers (secret values).
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// The definition names no usable transport; the reason is reported as
    /// the server's status and no connection is attempted.
    Invalid(String),
}

/// Header values are credentials: only their names are ever printed.
impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Self::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", &openheim_config::redact_url(url))
                .field(
                    "headers",
                    &headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                )
                .finish(),
            Self::Invalid(reason) => f.debug_tuple("Invalid").field(reason).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerDefinition {
    pub name: String,
    pub transport: Transport,
    /// Per-call timeout of this server, when configured.
    pub call_timeout: Option<Duration>,
    /// Where the OAuth sign-in of a configured HTTP server lives; `None`
    /// for stdio servers, a session's servers and brokers with neither a
    /// data directory nor a Redis store.
    pub oauth: Option<crate::oauth::OAuthTarget>,
    /// Directories a stdio server's process must not see (other users' on
    /// a server divided between users), hidden in its mount namespace.
    pub hidden: Vec<PathBuf>,
}

impl ServerDefinition {
    /// Whether the server is a child process.
    pub fn is_stdio(&self) -> bool {
        matches!(self.transport, Transport::Stdio { .. })
    }

    /// A server from `[mcp_servers.NAME]`. The config crate has already
    /// checked that exactly one of `command` / `url` is set.
    pub fn from_config(
        name: &str,
        config: &openheim_config::McpServerConfig,
        tokens: Option<&crate::oauth::TokenStore>,
    ) -> Self {
        let transport = match (&config.command, &config.url) {
            (Some(command), None) => Transport::Stdio {
                command: command.clone(),
                args: config.args.clone(),
                env: config.env.clone(),
                cwd: config.cwd.clone(),
            },
            (None, Some(url)) => Transport::Http {
                url: url.clone(),
                headers: secrets::header_values(config),
            },
            (Some(_), Some(_)) => {
                Transport::Invalid("set either `command` or `url`, not both".into())
            }
            (None, None) => Transport::Invalid("set `command` (stdio) or `url` (HTTP)".into()),
        };
        let oauth = match (&transport, tokens) {
            // A name that cannot name its tokens has no sign-in.
            (Transport::Http { .. }, Some(store)) if store.location(name).is_ok() => {
                Some(crate::oauth::OAuthTarget {
                    store: store.clone(),
                    configured: config.oauth.is_some(),
                })
            }
            _ => None,
        };
        Self {
            name: name.to_owned(),
            transport,
            call_timeout: config.call_timeout_secs.map(Duration::from_secs),
            oauth,
            hidden: Vec::new(),
        }
    }

    /// A per-session server, as an ACP client described it.
    pub fn from_spec(spec: ServerSpec) -> Self {
        let hidden = match &spec.transport {
            Some(server_spec::Transport::Stdio(stdio))
                if !stdio.boundary.is_empty() && !stdio.workspace_root.is_empty() =>
            {
                openheim_sandbox::hiding::beside(
                    Path::new(&stdio.workspace_root),
                    Path::new(&stdio.boundary),
                )
            }
            _ => Vec::new(),
        };
        let transport = match spec.transport {
            Some(server_spec::Transport::Stdio(stdio)) if stdio.command.is_empty() => {
                Transport::Invalid("the stdio transport has an empty `command`".into())
            }
            Some(server_spec::Transport::Stdio(stdio)) => Transport::Stdio {
                command: stdio.command,
                args: stdio.args,
                env: stdio.env.into_iter().collect(),
                cwd: (!stdio.cwd.is_empty()).then(|| PathBuf::from(stdio.cwd)),
            },
            Some(server_spec::Transport::Http(http)) => Transport::Http {
                url: http.url,
                headers: http.headers.into_iter().collect(),
            },
            None => Transport::Invalid("no transport given (stdio or http)".into()),
        };
        Self {
            name: spec.name,
            transport,
            call_timeout: None,
            oauth: None,
            hidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use openheim_config::{McpServerConfig, Secret};
    use openheim_proto::mcp_broker::v1::{HttpTransport, StdioTransport};

    use super::*;

    #[test]
    fn debug_output_never_shows_header_values() {
        let mut config = McpServerConfig {
            url: Some("https://mcp.example.com/mcp".into()),
            call_timeout_secs: Some(5),
            ..McpServerConfig::default()
        };
        config
            .headers
            .insert("Authorization".into(), Secret::new("Bearer s3cr3t"));
        let definition = ServerDefinition::from_config("remote", &config, None);
        let printed = format!("{definition:?}");
        assert!(printed.contains("Authorization"), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert_eq!(definition.call_timeout, Some(Duration::from_secs(5)));
    }

    /// What docs/mcp.md promises: a token can come from the environment
    /// instead of the config file.
    #[test]
    fn header_values_can_come_from_the_environment() {
        let env = [
            (
                "OPENHEIM_MCP_SERVERS__REMOTE__URL",
                "https://mcp.example.com/mcp",
            ),
            (
                "OPENHEIM_MCP_SERVERS__REMOTE__HEADERS__AUTHORIZATION",
                "Bearer from-env",
            ),
        ];
        let options = openheim_config::LoadOptions {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        let config = openheim_config::load(&options).unwrap();
        let definition =
            ServerDefinition::from_config("remote", &config.mcp_servers["remote"], None);
        let Transport::Http { headers, .. } = definition.transport else {
            panic!("expected HTTP: {definition:?}")
        };
        assert_eq!(headers.len(), 1);
        assert!(headers[0].0.eq_ignore_ascii_case("authorization"));
        assert_eq!(headers[0].1, "Bearer from-env");
    }

    #[test]
    fn specs_map_to_transports() {
        let stdio = ServerDefinition::from_spec(ServerSpec {
            name: "local".into(),
            transport: Some(server_spec::Transport::Stdio(StdioTransport {
                command: "srv".into(),
                args: vec!["--flag".into()],
                env: [("K".to_owned(), "V".to_owned())].into(),
                cwd: String::new(),
                ..Default::default()
            })),
        });
        assert!(matches!(
            stdio.transport,
            Transport::Stdio { ref command, ref cwd, .. } if command == "srv" && cwd.is_none()
        ));
        let http = ServerDefinition::from_spec(ServerSpec {
            name: "web".into(),
            transport: Some(server_spec::Transport::Http(HttpTransport {
                url: "http://127.0.0.1:1/mcp".into(),
                headers: Default::default(),
            })),
        });
        assert!(matches!(http.transport, Transport::Http { .. }));
        let none = ServerDefinition::from_spec(ServerSpec {
            name: "x".into(),
            transport: None,
        });
        assert!(matches!(none.transport, Transport::Invalid(_)));
    }
}
