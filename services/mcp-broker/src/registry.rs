//! The servers the broker knows — global ones from configuration and each
//! session's own — and the tool view a session gets of them: global servers
//! first, then the session's, named by [`crate::naming`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openheim_proto::common::v1::ToolDefinition;
use openheim_proto::mcp_broker::v1::{ServerSpec, ServerStatus};
use rmcp::model::{JsonObject, Tool};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::connection::ProcessSettings;

/// How long attaching a session's servers waits for their first connection
/// attempts, so that the answer says `failed` (with the reason) for a server
/// that cannot start, rather than `connecting`.
pub const ATTACH_SETTLE: Duration = Duration::from_secs(1);
use crate::definition::{ServerDefinition, Transport};
use crate::mapping::{self, ToolOutput};
use crate::naming::{self, ToolKey};
use crate::server::{McpServer, Phase, Timing};
use tokio::sync::mpsc;

use crate::elicitation::Ask;
use crate::{McpBrokerConfig, McpBrokerError};

pub struct Registry {
    timing: Timing,
    processes: Arc<ProcessSettings>,
    default_call_timeout: Duration,
    global: Vec<Arc<McpServer>>,
    sessions: Mutex<HashMap<String, Vec<Arc<McpServer>>>>,
    /// Parent of every server's stop token.
    root: CancellationToken,
    /// Dropping the registry (the broker stops) stops every server, which
    /// closes their connections and kills their processes.
    _stop_all: DropGuard,
}

/// What a session's tool listing finds.
#[derive(Debug, Default)]
pub struct ToolListing {
    pub tools: Vec<ToolDefinition>,
    /// Servers still in their first connection attempt.
    pub pending: Vec<String>,
}

/// One tool as a session sees it.
struct Entry {
    server: Arc<McpServer>,
    tool: Tool,
    name: String,
    ready: bool,
}

impl Registry {
    /// Knows the configured servers and, inside a Tokio runtime, starts
    /// connecting them in the background (outside one, they start on first
    /// use). Never waits for a connection.
    pub fn new(config: McpBrokerConfig) -> Self {
        let root = CancellationToken::new();
        let timing = Timing {
            initialize_timeout: config.initialize_timeout,
            startup_grace: config.startup_grace,
            reconnect: config.reconnect,
        };
        let processes = Arc::new(config.processes);
        let global: Vec<Arc<McpServer>> = config
            .servers
            .iter()
            .map(|(name, server)| {
                let definition =
                    ServerDefinition::from_config(name, server, config.tokens.as_ref());
                let processes = Arc::clone(&processes);
                McpServer::new(definition, "", timing, processes, root.child_token())
            })
            .collect();
        global.iter().for_each(McpServer::start);
        Self {
            timing,
            processes,
            default_call_timeout: config.default_call_timeout,
            global,
            sessions: Mutex::default(),
            _stop_all: root.clone().drop_guard(),
            root,
        }
    }

    /// Global servers, then those of `session_id` (when not empty).
    pub(crate) fn default_call_timeout(&self) -> Duration {
        self.default_call_timeout
    }

    pub(crate) fn visible(&self, session_id: &str) -> Vec<Arc<McpServer>> {
        let mut servers = self.global.clone();
        if !session_id.is_empty()
            && let Some(own) = self.lock_sessions().get(session_id)
        {
            servers.extend(own.iter().cloned());
        }
        // Servers created outside a runtime start here, on first use.
        servers.iter().for_each(McpServer::start);
        servers
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<McpServer>>>> {
        // A panic elsewhere must not take every session's tools with it.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn statuses(&self, session_id: &str) -> Vec<ServerStatus> {
        self.visible(session_id)
            .iter()
            .map(|s| s.status())
            .collect()
    }

    /// Starts `specs` for `session_id` only, replacing (and stopping) any
    /// servers it had. Returns their statuses after at most
    /// [`ATTACH_SETTLE`]: a server that cannot start (a missing command, a
    /// refused connection) is `failed` with its reason by then, a slower
    /// one is still `connecting`.
    pub async fn attach(&self, session_id: &str, specs: Vec<ServerSpec>) -> Vec<ServerStatus> {
        let servers: Vec<Arc<McpServer>> = specs
            .into_iter()
            .map(|spec| {
                let mut definition = ServerDefinition::from_spec(spec);
                if !self.processes.session_stdio && definition.is_stdio() {
                    definition.transport = Transport::Invalid(
                        "stdio MCP servers are disabled here: a stdio server is a command, and commands are disabled (allow_shell = false)".into(),
                    );
                }
                let processes = Arc::clone(&self.processes);
                McpServer::new(definition, session_id, self.timing, processes, self.root.child_token())
            })
            .collect();
        servers.iter().for_each(McpServer::start);
        let replaced = self
            .lock_sessions()
            .insert(session_id.to_owned(), servers.clone());
        replaced.iter().flatten().for_each(|s| s.stop());
        let settled = servers
            .iter()
            .map(|s| s.settle_first_attempt_within(ATTACH_SETTLE));
        futures::future::join_all(settled).await;
        servers.iter().map(|s| s.status()).collect()
    }

    /// Stops the servers of `session_id`.
    pub fn detach(&self, session_id: &str) {
        let removed = self.lock_sessions().remove(session_id);
        removed.iter().flatten().for_each(|s| s.stop());
    }

    /// The tools of the servers connected now, and the names of the
    /// servers still in their first connection attempt. Servers in their
    /// first attempt get until their startup grace ends; a slow or failing
    /// server costs its own tools, never the listing.
    /// With `read_mcp_resource` when some connected server has resources.
    pub async fn list_tools(&self, session_id: &str) -> ToolListing {
        let servers = self.visible(session_id);
        futures::future::join_all(servers.iter().map(|s| s.settle_first_attempt())).await;
        let pending = servers
            .iter()
            .filter(|s| s.snapshot().phase == Phase::Connecting)
            .map(|s| s.name().to_owned())
            .collect();
        let mut tools: Vec<ToolDefinition> = entries(&servers)
            .iter()
            .filter(|e| e.ready)
            .map(|e| mapping::definition(e.server.name(), &e.name, &e.tool))
            .collect();
        if crate::extras::any_resources(&servers) {
            tools.push(crate::extras::read_resource_definition());
        }
        ToolListing { tools, pending }
    }

    /// Runs the tool offered as `name` to `session_id`; the server's
    /// elicitation requests meanwhile go to `asker` (else they are
    /// declined). Also returns the notices of the call.
    pub async fn call_tool(
        &self,
        session_id: &str,
        name: &str,
        arguments_json: &str,
        timeout_ms: u32,
        asker: Option<mpsc::Sender<Ask>>,
    ) -> (Result<ToolOutput, McpBrokerError>, Vec<String>) {
        let mut notices = Vec::new();
        let result = self
            .call_tool_noting(
                session_id,
                name,
                arguments_json,
                timeout_ms,
                asker,
                &mut notices,
            )
            .await;
        (result, notices)
    }

    async fn call_tool_noting(
        &self,
        session_id: &str,
        name: &str,
        arguments_json: &str,
        timeout_ms: u32,
        asker: Option<mpsc::Sender<Ask>>,
        notices: &mut Vec<String>,
    ) -> Result<ToolOutput, McpBrokerError> {
        let arguments = parse_arguments(name, arguments_json)?;
        if name == crate::extras::READ_RESOURCE_TOOL {
            return Ok(self.read_resource_tool(session_id, &arguments).await);
        }
        let servers = self.visible(session_id);
        // Names are resolved against the same view the listing used, including
        // servers that are down right now: calling one of those reconnects it.
        let entry = entries(&servers)
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| McpBrokerError::UnknownTool(name.to_owned()))?;
        let timeout = match timeout_ms {
            0 => entry
                .server
                .call_timeout()
                .unwrap_or(self.default_call_timeout),
            ms => Duration::from_millis(u64::from(ms)),
        };
        let running = entry.server.elicitations().enter(asker);
        let call = entry.server.call(&entry.tool.name, arguments, timeout);
        let result =
            crate::telemetry::traced_call(entry.server.name(), &entry.tool.name, call).await;
        notices.extend(running.notices());
        Ok(mapping::output(&result?))
    }
}

/// Every known tool of `servers` with its exposed name.
fn entries(servers: &[Arc<McpServer>]) -> Vec<Entry> {
    let mut listed: Vec<(Arc<McpServer>, Tool, bool)> = Vec::new();
    for server in servers {
        let snapshot = server.snapshot();
        let ready = snapshot.phase == Phase::Connected;
        for tool in snapshot.tools.iter() {
            listed.push((Arc::clone(server), tool.clone(), ready));
        }
    }
    let keys: Vec<ToolKey<'_>> = listed
        .iter()
        .map(|(server, tool, _)| ToolKey {
            server: server.name(),
            tool: &tool.name,
        })
        .collect();
    let names = naming::assign(&keys);
    listed
        .into_iter()
        .zip(names)
        .map(|((server, tool, ready), name)| Entry {
            server,
            tool,
            name,
            ready,
        })
        .collect()
}

/// The model's arguments as a JSON object; empty text means no arguments.
fn parse_arguments(tool: &str, text: &str) -> Result<JsonObject, McpBrokerError> {
    if text.trim().is_empty() {
        return Ok(JsonObject::new());
    }
    let bad = |reason: String| McpBrokerError::BadArguments {
        tool: tool.to_owned(),
        reason,
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(bad(format!("got {other}"))),
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use openheim_proto::mcp_broker::v1::ServerState;

    use super::*;

    fn invalid(name: &str) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            transport: None,
        }
    }

    #[tokio::test]
    async fn sessions_see_global_servers_and_only_their_own() {
        let mut config = McpBrokerConfig::default();
        config
            .servers
            .insert("fs".into(), openheim_config::McpServerConfig::default());
        let registry = Registry::new(config);
        registry.attach("s1", vec![invalid("mine")]).await;
        let names = |session: &str| -> Vec<String> {
            registry
                .statuses(session)
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names("s1"), ["fs", "mine"]);
        assert_eq!(names("s2"), ["fs"]);
        assert_eq!(registry.statuses("s1")[1].session_id, "s1");
        registry.detach("s1");
        assert_eq!(names("s1"), ["fs"]);
    }

    #[tokio::test]
    async fn a_missing_command_is_reported_failed_when_attached() {
        use openheim_proto::mcp_broker::v1::{StdioTransport, server_spec};
        let registry = Registry::new(McpBrokerConfig::default());
        let spec = ServerSpec {
            name: "ghost".into(),
            transport: Some(server_spec::Transport::Stdio(StdioTransport {
                command: "/nonexistent/openheim-no-such-server".into(),
                ..Default::default()
            })),
        };
        let statuses = registry.attach("s", vec![spec]).await;
        assert_eq!(
            statuses[0].state,
            ServerState::Failed as i32,
            "{statuses:?}"
        );
        assert!(
            statuses[0]
                .error
                .contains("/nonexistent/openheim-no-such-server"),
            "{}",
            statuses[0].error
        );
    }

    #[tokio::test]
    async fn an_unusable_definition_fails_with_its_reason() {
        let registry = Registry::new(McpBrokerConfig::default());
        let servers = registry.visible("");
        assert!(servers.is_empty());
        registry.attach("s", vec![invalid("x")]).await;
        let server = registry.visible("s").remove(0);
        server.settle_first_attempt().await;
        let status = server.status();
        assert_eq!(status.state, ServerState::Failed as i32);
        assert!(status.error.contains("no transport"), "{}", status.error);
        assert!(registry.list_tools("s").await.tools.is_empty());
    }

    #[test]
    fn servers_created_outside_a_runtime_start_on_first_use() {
        let mut config = McpBrokerConfig::default();
        config
            .servers
            .insert("fs".into(), openheim_config::McpServerConfig::default());
        // No runtime here: creating the registry must not try to spawn.
        let registry = Registry::new(config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(registry.list_tools("").await.tools.is_empty());
            let status = registry.statuses("").remove(0);
            assert_eq!(status.state, ServerState::Failed as i32, "{status:?}");
        });
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert!(parse_arguments("t", "").unwrap().is_empty());
        assert_eq!(parse_arguments("t", r#"{"a":1}"#).unwrap()["a"], 1);
        let err = parse_arguments("t", "[1]").unwrap_err().to_string();
        assert!(err.contains("must be a JSON object"), "{err}");
        assert!(parse_arguments("t", "{").is_err());
    }

    #[tokio::test]
    async fn unknown_tools_are_refused() {
        let registry = Registry::new(McpBrokerConfig::default());
        let err = registry
            .call_tool("", "nope__x", "{}", 0, None)
            .await
            .0
            .unwrap_err();
        assert!(matches!(err, McpBrokerError::UnknownTool(ref n) if n == "nope__x"));
    }
}
