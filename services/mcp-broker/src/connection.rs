//! Opens one MCP client connection (rmcp) over the transport a
//! [`ServerDefinition`] names, and runs the `initialize` handshake within a
//! time limit.
//!
//! Child processes run like shell commands ([`ProcessSettings`]): confined
//! by the OS (`tools.sandbox`: Landlock, their own process namespace where
//! available; writes only in their workspace, the temp directories and
//! `tools.writable_paths`), with an environment built for them (nothing a
//! deny rule matches: no keys), in their own process group (so a server
//! started through a wrapper such as `npx` dies with all its children),
//! killed when the connection is dropped, with their stderr forwarded to the
//! broker's log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationCapability,
    FormElicitationCapability, Implementation,
};
use rmcp::service::{
    ClientInitializeError, MaybeSendFuture, NotificationContext, RequestContext, RunningService,
};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::{Notify, watch};

use crate::McpBrokerError;
use crate::definition::{ServerDefinition, Transport};
use crate::elicitation::Elicitations;
use crate::oauth::{OAuthHttpClient, OAuthTarget, TokenSession};

/// A live, initialized connection.
pub type McpService = RunningService<RoleClient, ClientEvents>;

/// How stdio servers are started.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub confinement: openheim_sandbox::Confinement,
    pub env: openheim_sandbox::EnvPolicy,
    /// What a server's environment starts from (`Config::child_env`); a
    /// server's own configured `env` is added to what passes.
    pub child_env: BTreeMap<String, String>,
    /// The workspace of configured servers without a `cwd`; `/tmp` when
    /// unknown.
    pub default_dir: Option<PathBuf>,
    /// Whether sessions may start stdio servers: not when the shell is
    /// disabled (`allow_shell = false`), since a stdio server is a command.
    pub session_stdio: bool,
    /// Whether servers are told the broker answers elicitation requests:
    /// only where callers can put them to a user (ACP, the gateway), not
    /// for `openheim run` (docs/mcp.md, "Elicitation").
    pub elicitation: bool,
}

impl Default for ProcessSettings {
    /// No confinement (for tests): the container is the sandbox.
    fn default() -> Self {
        Self {
            confinement: openheim_sandbox::Confinement::probe(
                openheim_sandbox::SandboxMode::Off,
                Vec::new(),
            ),
            env: openheim_sandbox::EnvPolicy::default(),
            child_env: BTreeMap::new(),
            default_dir: None,
            session_stdio: true,
            elicitation: false,
        }
    }
}

impl ProcessSettings {
    /// The settings of a configuration: `[tools]` (sandbox, writable
    /// paths, environment rules), `work_dir`, `allow_shell`.
    pub fn from_config(config: &openheim_config::Config) -> Self {
        let tools = &config.tools;
        Self {
            confinement: openheim_sandbox::Confinement::probe(
                tools.sandbox,
                tools.writable_paths.clone(),
            ),
            env: openheim_sandbox::EnvPolicy::from_config(config),
            child_env: config.child_env.clone(),
            default_dir: config.work_dir.clone(),
            session_stdio: config.allow_shell,
            elicitation: false,
        }
    }
}

/// Lines of a child's stderr kept to explain why it failed.
const STDERR_TAIL_LINES: usize = 5;
/// How long a failed handshake waits for the child's stderr to end.
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// Receives what a server tells or asks the broker unprompted.
#[derive(Clone)]
pub struct ClientEvents {
    /// Woken by `notifications/tools/list_changed`; the server's supervisor
    /// re-lists the tools.
    pub tools_changed: Arc<Notify>,
    /// The server's name, in elicitation questions and notices.
    pub server: String,
    /// Where the server's elicitation requests go.
    pub elicitations: Arc<Elicitations>,
    /// Whether the server is told this client answers elicitation requests
    /// (`ProcessSettings::elicitation`).
    pub elicitation: bool,
}

impl ClientHandler for ClientEvents {
    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.tools_changed.notify_one();
        std::future::ready(())
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, rmcp::ErrorData> {
        Ok(self.elicitations.ask(&self.server, request).await)
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.elicitation {
            capabilities.elicitation =
                Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("openheim", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// The last lines a child wrote to stderr, shared with the task reading them.
#[derive(Clone)]
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Set once the child's stderr reached its end.
    closed: Arc<watch::Sender<bool>>,
}

impl Default for StderrTail {
    fn default() -> Self {
        Self {
            lines: Arc::default(),
            closed: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined with `; `, if any.
    pub fn summary(&self) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        (!lines.is_empty()).then(|| lines.iter().cloned().collect::<Vec<_>>().join("; "))
    }

    /// Like [`Self::summary`], after giving the reader a moment to catch up:
    /// a child that failed usually wrote why just before exiting, and its
    /// stdout closing (what failed the handshake) races the stderr reader.
    async fn settled_summary(&self) -> Option<String> {
        let mut closed = self.closed.subscribe();
        let _ = tokio::time::timeout(STDERR_SETTLE, closed.wait_for(|c| *c)).await;
        self.summary()
    }
}

/// Connects and initializes; `stderr` collects a child's last stderr lines.
pub async fn connect(
    definition: &ServerDefinition,
    events: ClientEvents,
    initialize_timeout: Duration,
    stderr: &StderrTail,
    processes: &ProcessSettings,
) -> Result<McpService, McpBrokerError> {
    let handshake = async {
        match &definition.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let process = Process {
                    command,
                    args,
                    env,
                    cwd,
                    hidden: &definition.hidden,
                };
                let transport = spawn(&definition.name, process, stderr, processes).await?;
                match events.serve(transport).await {
                    Ok(service) => Ok(service),
                    Err(e) => Err(McpBrokerError::Initialize {
                        reason: crate::wording::initialize(&e),
                        stderr: stderr.settled_summary().await,
                    }),
                }
            }
            Transport::Http { url, headers } => {
                let config = http_config(url, headers)?;
                connect_http(&definition.name, config, definition.oauth.as_ref(), events).await
            }
            Transport::Invalid(reason) => Err(McpBrokerError::InvalidServer(reason.clone())),
        }
    };
    // Dropping the handshake on timeout drops the transport, which kills a child.
    tokio::time::timeout(initialize_timeout, handshake)
        .await
        .map_err(|_| McpBrokerError::InitializeTimeout {
            after: initialize_timeout,
        })?
}

/// Connects over Streamable HTTP; with stored OAuth tokens, through the
/// client that sends and refreshes them. A server that wants a sign-in we
/// do not have is [`McpBrokerError::LoginNeeded`], not a failure.
async fn connect_http(
    server: &str,
    config: StreamableHttpClientTransportConfig,
    oauth: Option<&OAuthTarget>,
    events: ClientEvents,
) -> Result<McpService, McpBrokerError> {
    let login_needed = || McpBrokerError::LoginNeeded {
        server: server.to_owned(),
    };
    let tokens = match oauth {
        Some(target) => TokenSession::load(&target.store, server, token_http_client()?).await?,
        None => None,
    };
    let served = match tokens {
        Some(tokens) => {
            crate::oauth::require_secure(&config.uri)?;
            let client = OAuthHttpClient::new(mcp_http_client()?, Arc::new(tokens));
            events
                .serve(StreamableHttpClientTransport::with_client(client, config))
                .await
        }
        None if oauth.is_some_and(|t| t.configured) => return Err(login_needed()),
        None => {
            events
                .serve(StreamableHttpClientTransport::from_config(config))
                .await
        }
    };
    served.map_err(|e| {
        if oauth.is_some() && asks_for_sign_in(&e) {
            login_needed()
        } else {
            McpBrokerError::Initialize {
                reason: crate::wording::initialize(&e),
                stderr: None,
            }
        }
    })
}

/// Whether `initialize` failed because the server wants a (new) sign-in:
/// a 401 with a challenge, or stored tokens that could not be refreshed.
fn asks_for_sign_in(error: &ClientInitializeError) -> bool {
    let ClientInitializeError::TransportError { error, .. } = error else {
        return false;
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.error.as_ref());
    while let Some(e) = current {
        if e.downcast_ref::<AuthRequiredError>().is_some()
            || matches!(
                e.downcast_ref::<StreamableHttpError<reqwest::Error>>(),
                Some(StreamableHttpError::AuthRequired(_))
            )
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// The HTTP client of MCP requests: like rmcp's own (no idle pool, which
/// stalls on delayed ACKs).
fn mcp_http_client() -> Result<reqwest::Client, McpBrokerError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| McpBrokerError::InvalidServer(format!("cannot start an HTTP client: {e}")))
}

/// The HTTP client of token refreshes.
fn token_http_client() -> Result<reqwest::Client, McpBrokerError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| McpBrokerError::InvalidServer(format!("cannot start an HTTP client: {e}")))
}

/// A stdio server's process, as its definition describes it.
struct Process<'a> {
    command: &'a str,
    args: &'a [String],
    env: &'a BTreeMap<String, String>,
    cwd: &'a Option<PathBuf>,
    /// Directories it must not see (other users').
    hidden: &'a [PathBuf],
}

/// Starts a stdio server, confined, in `cwd` (else the default workspace),
/// with the environment that passes the policy plus its own `env`.
async fn spawn(
    server: &str,
    process: Process<'_>,
    tail: &StderrTail,
    processes: &ProcessSettings,
) -> Result<TokioChildProcess, McpBrokerError> {
    let Process {
        command,
        args,
        env,
        cwd,
        hidden,
    } = process;
    let dir = cwd
        .clone()
        .or_else(|| processes.default_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let mut vars = processes.env.child_env(&processes.child_env);
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let spawn_error = |reason: String| McpBrokerError::Spawn {
        command: command.to_owned(),
        source: std::io::Error::other(reason),
    };
    let launch = processes
        .confinement
        .launch_hiding(
            Path::new(&dir),
            hidden,
            command,
            args.iter().map(Into::into).collect(),
        )
        .map_err(|e| spawn_error(e.to_string()))?;
    let (process, stderr) = launch
        .spawn(move |program, args| {
            let mut child = tokio::process::Command::new(program);
            child
                .args(args)
                .env_clear()
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .current_dir(&dir);
            let mut wrapped = CommandWrap::from(child);
            wrapped.wrap(KillOnDrop).wrap(ProcessGroup::leader());
            TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
        })
        .await
        .map_err(|e| match e {
            openheim_sandbox::SandboxError::Start { source, .. } => McpBrokerError::Spawn {
                command: command.to_owned(),
                source,
            },
            other => spawn_error(other.to_string()),
        })?;
    if let Some(stderr) = stderr {
        tokio::spawn(forward_stderr(server.to_owned(), stderr, tail.clone()));
    }
    Ok(process)
}

/// Logs a child's stderr line by line until it closes.
async fn forward_stderr(server: String, stderr: ChildStderr, tail: StderrTail) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "openheim_mcp_broker::stderr", server = %server, "{line}");
        tail.push(line);
    }
    tail.closed.send_replace(true);
}

fn http_config(
    url: &str,
    headers: &[(String, String)],
) -> Result<StreamableHttpClientTransportConfig, McpBrokerError> {
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(McpBrokerError::InvalidServer(format!(
            "`{url}` is not an http:// or https:// URL"
        )));
    }
    // Credentials in clear text may only travel to this machine.
    if !headers.is_empty() && lower.starts_with("http://") && !openheim_config::is_loopback_url(url)
    {
        return Err(McpBrokerError::InsecureHeaders {
            url: url.to_owned(),
        });
    }
    let mut custom = HashMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| McpBrokerError::InvalidHeader {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        // The value is a secret: the error says what is wrong, never what it is.
        let mut value =
            HeaderValue::from_str(value).map_err(|_| McpBrokerError::InvalidHeader {
                name: name.clone(),
                reason: "the value contains characters not allowed in a header".into(),
            })?;
        value.set_sensitive(true);
        custom.insert(header, value);
    }
    Ok(StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(url: &str, headers: &[(&str, &str)]) -> Option<String> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        http_config(url, &headers).err().map(|e| e.to_string())
    }

    #[test]
    fn headers_travel_in_clear_text_only_to_loopback() {
        let auth = [("Authorization", "Bearer s3cr3t")];
        for url in [
            "http://127.0.0.1:8080/mcp",
            "http://localhost/mcp",
            "http://[::1]:9/mcp",
            "https://mcp.example.com/mcp",
        ] {
            assert_eq!(error(url, &auth), None, "{url}");
        }
        let refused = error("http://mcp.example.com/mcp", &auth).unwrap_or_default();
        assert!(refused.starts_with("refusing to send headers"), "{refused}");
        assert!(!refused.contains("s3cr3t"));
        // Without headers there is nothing to protect.
        assert_eq!(error("http://mcp.example.com/mcp", &[]), None);
    }

    #[test]
    fn bad_urls_and_headers_are_reported_without_values() {
        let scheme = error("ftp://host/mcp", &[]).unwrap_or_default();
        assert!(
            scheme.contains("not an http:// or https:// URL"),
            "{scheme}"
        );
        let name = error("https://h/mcp", &[("Bad Name", "v")]).unwrap_or_default();
        assert!(name.starts_with("invalid header `Bad Name`"), "{name}");
        let value = error("https://h/mcp", &[("X-Key", "s3cr3t\n")]).unwrap_or_default();
        assert!(value.starts_with("invalid header `X-Key`"), "{value}");
        assert!(!value.contains("s3cr3t"), "{value}");
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let tail = StderrTail::default();
        assert_eq!(tail.summary(), None);
        for i in 0..8 {
            tail.push(format!("line {i}"));
        }
        assert_eq!(
            tail.summary().as_deref(),
            Some("line 3; line 4; line 5; line 6; line 7")
        );
    }
}
