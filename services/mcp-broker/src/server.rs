//! One MCP server under supervision: a background task connects it, keeps
//! its tool list current, notices when the connection dies and reconnects
//! with backoff. Callers never connect themselves — they read the published
//! state and, when the server is down, ask the supervisor to try now and wait
//! for that attempt. So there is only ever one connection attempt per server
//! in flight (single flight), however many calls arrive at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openheim_proto::mcp_broker::v1::{ServerState, ServerStatus};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::{Peer, RoleClient, ServiceError};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::McpBrokerError;
use crate::backoff::ReconnectPolicy;
use crate::connection::{self, ClientEvents, McpService, ProcessSettings, StderrTail};
use crate::definition::ServerDefinition;
use crate::elicitation::Elicitations;

/// How long a stopping connection may take to close before it is dropped
/// (which kills a child process outright).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Timing of connections, shared by every server of a broker.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Limit of the `initialize` handshake, and of each tool listing.
    pub initialize_timeout: Duration,
    /// How long a tool listing waits for a server's *first* connection
    /// attempt, counted from when the server was started.
    pub startup_grace: Duration,
    pub reconnect: ReconnectPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The first connection attempt is under way.
    Connecting,
    Connected,
    /// The last attempt failed or the connection died; the text says why.
    /// The supervisor keeps retrying (unless `permanent`).
    Failed {
        error: String,
        permanent: bool,
    },
}

/// What callers see of a server; published by the supervisor.
#[derive(Clone)]
pub struct Snapshot {
    pub phase: Phase,
    /// The last tool list the server gave. Kept while it is down so that
    /// tool names (which depend on every visible tool) stay stable.
    pub tools: Arc<Vec<Tool>>,
    peer: Option<Peer<RoleClient>>,
    /// Connections made so far; identifies the current one.
    generation: u64,
    /// Connection attempts finished so far, successful or not.
    attempts: u64,
}

impl Snapshot {
    /// The peer of a live connection newer than `after_generation`.
    fn usable_peer(&self, after_generation: u64) -> Option<(Peer<RoleClient>, u64)> {
        match (&self.phase, &self.peer) {
            (Phase::Connected, Some(peer))
                if self.generation > after_generation && !peer.is_transport_closed() =>
            {
                Some((peer.clone(), self.generation))
            }
            _ => None,
        }
    }

    fn failure(&self) -> String {
        match &self.phase {
            Phase::Failed { error, .. } => error.clone(),
            Phase::Connecting => "still connecting".to_owned(),
            Phase::Connected => "the connection was lost".to_owned(),
        }
    }
}

/// Requests from callers to the supervisor. Counters rather than events, so
/// that several callers asking at once make one reconnect, not several.
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    /// Bumped to ask for a connection attempt now instead of after backoff.
    wake: u64,
    /// The newest connection generation a caller found broken.
    broken: u64,
}

pub struct McpServer {
    definition: ServerDefinition,
    /// Empty for servers from configuration.
    session_id: String,
    timing: Timing,
    /// How a stdio server is started.
    processes: Arc<ProcessSettings>,
    state: watch::Sender<Snapshot>,
    requests: watch::Sender<Requests>,
    tools_changed: Arc<Notify>,
    /// The calls running, for the server's elicitation requests.
    elicitations: Arc<Elicitations>,
    /// Stops the supervisor, which closes the connection (and kills a child).
    stop: CancellationToken,
    started: AtomicBool,
    /// Whether the last attempt found that the server wants a sign-in.
    login_needed: AtomicBool,
    /// When the supervisor started; the start of the startup grace.
    started_at: std::sync::OnceLock<Instant>,
}

impl McpServer {
    pub fn new(
        definition: ServerDefinition,
        session_id: &str,
        timing: Timing,
        processes: Arc<ProcessSettings>,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let snapshot = Snapshot {
            phase: Phase::Connecting,
            tools: Arc::default(),
            peer: None,
            generation: 0,
            attempts: 0,
        };
        Arc::new(Self {
            definition,
            session_id: session_id.to_owned(),
            timing,
            processes,
            state: watch::Sender::new(snapshot),
            requests: watch::Sender::new(Requests::default()),
            tools_changed: Arc::default(),
            elicitations: Arc::default(),
            stop,
            started: AtomicBool::new(false),
            login_needed: AtomicBool::new(false),
            started_at: std::sync::OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// The calls of this server that are running (elicitation routing).
    pub fn elicitations(&self) -> &Arc<Elicitations> {
        &self.elicitations
    }

    pub fn call_timeout(&self) -> Option<Duration> {
        self.definition.call_timeout
    }

    /// Starts the supervisor (once; later calls do nothing). Outside a Tokio
    /// runtime it does nothing either, and a later call from inside one
    /// starts it.
    pub fn start(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.started_at.set(Instant::now());
        runtime.spawn(Arc::clone(self).supervise());
    }

    /// Stops the supervisor and with it the connection.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn snapshot(&self) -> Snapshot {
        self.state.borrow().clone()
    }

    pub fn status(&self) -> ServerStatus {
        let snapshot = self.snapshot();
        let (state, tool_count, error) = match snapshot.phase {
            Phase::Connecting => (ServerState::Connecting, 0, String::new()),
            Phase::Connected => (
                ServerState::Connected,
                u32::try_from(snapshot.tools.len()).unwrap_or(u32::MAX),
                String::new(),
            ),
            Phase::Failed { error, .. } => (ServerState::Failed, 0, error),
        };
        ServerStatus {
            name: self.definition.name.clone(),
            state: state as i32,
            tool_count,
            error,
            session_id: self.session_id.clone(),
            auth: self.auth(),
        }
    }

    /// How the server is signed in to, in words (never a token): empty for
    /// servers without OAuth.
    fn auth(&self) -> String {
        let Some(target) = &self.definition.oauth else {
            return String::new();
        };
        if let Some(words) = crate::oauth::describe(&target.store, self.name()) {
            return words;
        }
        if target.configured || self.login_needed.load(Ordering::Relaxed) {
            crate::oauth::login_needed(self.name())
        } else {
            String::new()
        }
    }

    /// Waits until the first connection attempt has finished, but no longer
    /// than the startup grace after the server was started.
    pub async fn settle_first_attempt(&self) {
        let Some(started_at) = self.started_at.get() else {
            return;
        };
        let deadline = *started_at + self.timing.startup_grace;
        let mut state = self.state.subscribe();
        let _ = tokio::time::timeout_at(deadline, state.wait_for(|s| s.attempts > 0)).await;
    }

    /// Waits until the first connection attempt has finished, at most
    /// `limit`.
    pub async fn settle_first_attempt_within(&self, limit: Duration) {
        let mut state = self.state.subscribe();
        let _ = tokio::time::timeout(limit, state.wait_for(|s| s.attempts > 0)).await;
    }

    /// Calls `tool` with `arguments`, all within `timeout`. When the server
    /// is down, or the connection turns out to be dead, asks for a reconnect
    /// and tries once more on the new connection.
    pub async fn call(
        &self,
        tool: &str,
        arguments: JsonObject,
        timeout: Duration,
    ) -> Result<CallToolResult, McpBrokerError> {
        let deadline = Instant::now() + timeout;
        let mut broken_generation = 0;
        let mut retried = false;
        loop {
            let (peer, generation) = self.peer_for_call(broken_generation, deadline).await?;
            let params =
                CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments.clone());
            // Dropping the call on timeout makes rmcp send `notifications/cancelled`.
            let result = tokio::time::timeout_at(deadline, peer.call_tool(params)).await;
            match result {
                Err(_) => {
                    return Err(McpBrokerError::CallTimeout {
                        tool: tool.to_owned(),
                        after: timeout,
                    });
                }
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(error)) if is_connection_error(&error) && !retried => {
                    tracing::warn!(server = %self.name(), error = %openheim_config::redact_urls_in(&error.to_string()), "MCP connection failed during a call; reconnecting and retrying once");
                    self.report_broken(generation);
                    broken_generation = generation;
                    retried = true;
                }
                Ok(Err(source)) => {
                    return Err(McpBrokerError::Call {
                        tool: tool.to_owned(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }

    /// The peer of a live connection within `timeout`, reconnecting when
    /// the server is down (for requests other than tool calls).
    pub async fn peer(&self, timeout: Duration) -> Result<Peer<RoleClient>, McpBrokerError> {
        let (peer, _) = self.peer_for_call(0, Instant::now() + timeout).await?;
        Ok(peer)
    }

    /// What the connected server said it offers; `None` while it is down.
    pub fn capabilities(&self) -> Option<rmcp::model::ServerCapabilities> {
        let snapshot = self.state.borrow();
        match (&snapshot.phase, &snapshot.peer) {
            (Phase::Connected, Some(peer)) => peer.peer_info().map(|i| i.capabilities.clone()),
            _ => None,
        }
    }

    /// A live connection newer than `after_generation`, reconnecting (by
    /// asking the supervisor) when there is none.
    async fn peer_for_call(
        &self,
        after_generation: u64,
        deadline: Instant,
    ) -> Result<(Peer<RoleClient>, u64), McpBrokerError> {
        let mut state = self.state.subscribe();
        let now = state.borrow_and_update().clone();
        if let Some(found) = now.usable_peer(after_generation) {
            return Ok(found);
        }
        match &now.phase {
            Phase::Failed {
                permanent: true, ..
            } => return Err(self.unavailable(now.failure())),
            // The first attempt is under way: just wait for it.
            Phase::Connecting => {}
            Phase::Connected => self.report_broken(now.generation),
            Phase::Failed { .. } => self.request_attempt(),
        }
        let seen = now.attempts;
        let next = tokio::time::timeout_at(deadline, state.wait_for(|s| s.attempts > seen))
            .await
            .map_err(|_| self.unavailable(format!("no connection yet ({})", now.failure())))?
            .map_err(|_| self.unavailable("the broker is stopping".to_owned()))?
            .clone();
        next.usable_peer(after_generation)
            .ok_or_else(|| self.unavailable(next.failure()))
    }

    fn unavailable(&self, reason: String) -> McpBrokerError {
        McpBrokerError::Unavailable {
            server: self.definition.name.clone(),
            reason,
        }
    }

    fn request_attempt(&self) {
        self.requests.send_modify(|r| r.wake += 1);
    }

    fn report_broken(&self, generation: u64) {
        self.requests.send_modify(|r| {
            r.broken = r.broken.max(generation);
            r.wake += 1;
        });
    }

    /// The supervisor: connect, serve, and on failure back off and retry,
    /// until stopped.
    async fn supervise(self: Arc<Self>) {
        let mut requests = self.requests.subscribe();
        let mut seen_wake = 0;
        let mut failures: u32 = 0;
        // A server that keeps failing the same way is warned about once.
        let mut warned: Option<String> = None;
        loop {
            let attempt = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                attempt = self.connect_once() => attempt,
            };
            match attempt {
                Ok((service, tools)) => {
                    failures = 0;
                    warned = None;
                    let generation = self.publish_connected(&service, tools);
                    let Some(reason) = self.serve(service, generation, &mut requests).await else {
                        return;
                    };
                    tracing::warn!(server = %self.name(), "MCP server connection lost: {reason}");
                    self.publish_failed(reason, false, false);
                }
                Err(error) => {
                    let wants_login = matches!(error, McpBrokerError::LoginNeeded { .. });
                    self.login_needed.store(wants_login, Ordering::Relaxed);
                    let permanent = error.is_permanent();
                    let shown = error.shown();
                    if warned.as_deref() == Some(shown.as_str()) {
                        tracing::debug!(server = %self.name(), "MCP server failed again: {shown}");
                    } else {
                        tracing::warn!(server = %self.name(), "MCP server failed: {shown}");
                        warned = Some(shown.clone());
                    }
                    self.publish_failed(shown, permanent, true);
                    if permanent {
                        return;
                    }
                }
            }
            failures = failures.saturating_add(1);
            let delay = self.timing.reconnect.delay(failures);
            if !self.back_off(delay, &mut requests, &mut seen_wake).await {
                return;
            }
        }
    }

    async fn connect_once(&self) -> Result<(McpService, Vec<Tool>), McpBrokerError> {
        // Fresh per attempt, so an error quotes only what this attempt printed.
        let stderr = StderrTail::default();
        let events = ClientEvents {
            tools_changed: Arc::clone(&self.tools_changed),
            server: self.name().to_owned(),
            elicitations: Arc::clone(&self.elicitations),
            elicitation: self.processes.elicitation,
        };
        let limit = self.timing.initialize_timeout;
        let service =
            connection::connect(&self.definition, events, limit, &stderr, &self.processes).await?;
        let tools = list_tools(service.peer(), limit).await?;
        Ok((service, tools))
    }

    /// Runs a live connection until it dies (returns why), a caller reports
    /// it broken, or the server is stopped (returns `None`).
    async fn serve(
        &self,
        service: McpService,
        generation: u64,
        requests: &mut watch::Receiver<Requests>,
    ) -> Option<String> {
        let peer = service.peer().clone();
        let close = service.cancellation_token();
        let ended = service.waiting();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    close.cancel();
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut ended).await;
                    return None;
                }
                _ = &mut ended => return Some("the server closed the connection".to_owned()),
                () = self.tools_changed.notified() => self.refresh_tools(&peer).await,
                changed = requests.changed() => {
                    if changed.is_ok() && requests.borrow_and_update().broken >= generation {
                        close.cancel();
                        let _ = tokio::time::timeout(CLOSE_GRACE, &mut ended).await;
                        return Some("the connection stopped answering".to_owned());
                    }
                }
            }
        }
    }

    /// Re-lists tools after `notifications/tools/list_changed`.
    async fn refresh_tools(&self, peer: &Peer<RoleClient>) {
        match list_tools(peer, self.timing.initialize_timeout).await {
            Ok(tools) => {
                tracing::info!(server = %self.name(), tools = tools.len(), "MCP tool list changed");
                self.state.send_modify(|s| s.tools = Arc::new(tools));
            }
            Err(error) => {
                tracing::warn!(server = %self.name(), "re-listing tools failed: {}", error.shown());
            }
        }
    }

    /// Waits `delay`, or less when a caller asks for an attempt now.
    /// Returns false when the server was stopped meanwhile.
    async fn back_off(
        &self,
        delay: Duration,
        requests: &mut watch::Receiver<Requests>,
        seen_wake: &mut u64,
    ) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            let wake = requests.borrow_and_update().wake;
            if wake > *seen_wake {
                *seen_wake = wake;
                return true;
            }
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return false,
                () = &mut sleep => return true,
                changed = requests.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    fn publish_connected(&self, service: &McpService, tools: Vec<Tool>) -> u64 {
        tracing::info!(server = %self.name(), tools = tools.len(), "MCP server connected");
        let mut generation = 0;
        self.state.send_modify(|s| {
            s.generation += 1;
            s.attempts += 1;
            s.phase = Phase::Connected;
            s.tools = Arc::new(tools);
            s.peer = Some(service.peer().clone());
            generation = s.generation;
        });
        generation
    }

    /// `attempt_finished` is false when a live connection died: no attempt
    /// was made, so callers waiting for one keep waiting.
    fn publish_failed(&self, error: String, permanent: bool, attempt_finished: bool) {
        // Whatever failed may quote the server's URL, key and all.
        let error = openheim_config::redact_urls_in(&error).into_owned();
        self.state.send_modify(|s| {
            s.phase = Phase::Failed { error, permanent };
            s.peer = None;
            if attempt_finished {
                s.attempts += 1;
            }
        });
    }
}

async fn list_tools(peer: &Peer<RoleClient>, limit: Duration) -> Result<Vec<Tool>, McpBrokerError> {
    tokio::time::timeout(limit, peer.list_all_tools())
        .await
        .map_err(|_| McpBrokerError::ListToolsTimeout { after: limit })?
        .map_err(|e| McpBrokerError::ListTools(Box::new(e)))
}

/// The connection is gone (as opposed to the server answering with an error).
fn is_connection_error(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Transport;

    /// A server whose every attempt fails at once (its command does not
    /// exist), so attempts happen exactly when the supervisor decides.
    fn unstartable(reconnect: ReconnectPolicy) -> Arc<McpServer> {
        let definition = ServerDefinition {
            name: "ghost".into(),
            transport: Transport::Stdio {
                command: "/nonexistent/openheim-test-no-such-server".into(),
                args: Vec::new(),
                env: Default::default(),
                cwd: None,
            },
            call_timeout: None,
            oauth: None,
            hidden: Vec::new(),
        };
        let timing = Timing {
            initialize_timeout: Duration::from_secs(10),
            startup_grace: Duration::from_secs(5),
            reconnect,
        };
        McpServer::new(
            definition,
            "",
            timing,
            Arc::default(),
            CancellationToken::new(),
        )
    }

    /// Waits for attempt number `n` and returns when it finished.
    async fn attempt(server: &McpServer, n: u64) -> Instant {
        let mut state = server.state.subscribe();
        let _ = state.wait_for(|s| s.attempts >= n).await;
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn failed_attempts_are_retried_with_growing_delays() {
        let server = unstartable(ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
            factor: 2,
        });
        server.start();
        let first = attempt(&server, 1).await;
        let gaps: Vec<Duration> = {
            let mut previous = first;
            let mut gaps = Vec::new();
            for n in 2..=5 {
                let at = attempt(&server, n).await;
                gaps.push(at - previous);
                previous = at;
            }
            gaps
        };
        let secs: Vec<u64> = gaps.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 3, 3], "exponential, capped at max_delay");
        let status = server.status();
        assert_eq!(status.state, ServerState::Failed as i32);
        assert!(
            status.error.starts_with("could not start"),
            "{}",
            status.error
        );
        server.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_to_a_failed_server_make_one_attempt_now() {
        let server = unstartable(ReconnectPolicy {
            initial_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            factor: 1,
        });
        server.start();
        let failed_at = attempt(&server, 1).await;
        let calls = (0..5).map(|_| server.call("x", JsonObject::new(), Duration::from_secs(60)));
        let results = futures::future::join_all(calls).await;
        for result in &results {
            let error = result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                error.starts_with("MCP server `ghost` is unavailable: could not start"),
                "{error}"
            );
        }
        // Single flight: five callers, one attempt, made at once rather than
        // after the hour of backoff.
        assert_eq!(server.snapshot().attempts, 2);
        assert_eq!(Instant::now() - failed_at, Duration::ZERO);
        server.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_server_makes_no_more_attempts() {
        let server = unstartable(ReconnectPolicy::default());
        server.start();
        attempt(&server, 1).await;
        server.stop();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(server.snapshot().attempts, 1);
    }
}
