//! Opens one MCP client connection (rmcp) over the transport a
//! [`ServerDefinition`] names, and runs the `initialize` handshake within a
//! time limit.
//!
//! Child processes get their own process group (so a server started through
//! a wrapper such as `npx` dies with all its children), are killed when the
//! connection is dropped, and have their stderr forwarded to the broker's log.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{MaybeSendFuture, NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::{Notify, watch};

use crate::McpBrokerError;
use crate::definition::{ServerDefinition, Transport};

/// A live, initialized connection.
pub type McpService = RunningService<RoleClient, ClientEvents>;

/// Lines of a child's stderr kept to explain why it failed.
const STDERR_TAIL_LINES: usize = 5;
/// How long a failed handshake waits for the child's stderr to end.
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// Receives what a server tells the broker unprompted.
#[derive(Clone)]
pub struct ClientEvents {
    /// Woken by `notifications/tools/list_changed`; the server's supervisor
    /// re-lists the tools.
    pub tools_changed: Arc<Notify>,
}

impl ClientHandler for ClientEvents {
    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.tools_changed.notify_one();
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
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
) -> Result<McpService, McpBrokerError> {
    let handshake = async {
        match &definition.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut child = tokio::process::Command::new(command);
                child.args(args).envs(env);
                if let Some(cwd) = cwd {
                    child.current_dir(cwd);
                }
                let transport = spawn(&definition.name, command, child, stderr)?;
                match events.serve(transport).await {
                    Ok(service) => Ok(service),
                    Err(e) => Err(McpBrokerError::Initialize {
                        reason: e.to_string(),
                        stderr: stderr.settled_summary().await,
                    }),
                }
            }
            Transport::Http { url, headers } => {
                let transport =
                    StreamableHttpClientTransport::from_config(http_config(url, headers)?);
                events
                    .serve(transport)
                    .await
                    .map_err(|e| McpBrokerError::Initialize {
                        reason: e.to_string(),
                        stderr: None,
                    })
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

fn spawn(
    server: &str,
    command: &str,
    child: tokio::process::Command,
    tail: &StderrTail,
) -> Result<TokioChildProcess, McpBrokerError> {
    let mut wrapped = CommandWrap::from(child);
    wrapped.wrap(KillOnDrop).wrap(ProcessGroup::leader());
    let (process, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| McpBrokerError::Spawn {
            command: command.to_owned(),
            source,
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
