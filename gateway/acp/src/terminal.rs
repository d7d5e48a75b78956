//! Shell commands in the client's terminal (ACP `terminal/*`).
//!
//! A `RunCommand` client request becomes `terminal/create` (`sh -c COMMAND`
//! in the session's workspace, keeping at most the tool result cap of
//! output), embedded in its tool call so the editor shows it live, then
//! `terminal/wait_for_exit` under the command's timeout — `terminal/kill`
//! when it expires or the turn is cancelled — and `terminal/output`.
//!
//! Release comes last: after the tool call's final update was relayed (that
//! update still shows the terminal) or, at the latest, when the turn ends.
//! A terminal is released only once its command is over or was killed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_client_protocol::Client;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    CreateTerminalRequest, KillTerminalRequest, ReleaseTerminalRequest, SessionNotification,
    TerminalExitStatus, TerminalId, TerminalOutputRequest, TerminalOutputResponse,
    WaitForTerminalExitRequest,
};
use openheim_proto::agent_loop::v1::{CommandResult, RunCommand};
use tokio_util::sync::CancellationToken;

use crate::updates;

/// The program a command line is given to, as tool-executor runs it.
const SHELL: &str = "sh";

/// How long killing or releasing a terminal may take: a client that stopped
/// answering must not hold up the end of a turn.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(5);

/// How long reading a finished command's output may take.
const OUTPUT_DEADLINE: Duration = Duration::from_secs(30);

/// The terminals of one turn that are not released yet, by tool call id.
#[derive(Default)]
pub struct Terminals {
    open: Mutex<HashMap<String, OpenTerminal>>,
}

#[derive(Debug, Clone)]
struct OpenTerminal {
    id: TerminalId,
    /// The command exited or was killed: the terminal may be released.
    settled: bool,
}

impl Terminals {
    fn locked(&self) -> MutexGuard<'_, HashMap<String, OpenTerminal>> {
        // Every critical section is one map operation, so the data stays
        // valid even if a holder panicked.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, tool_call_id: &str, id: TerminalId) {
        let open = OpenTerminal { id, settled: false };
        self.locked().insert(tool_call_id.to_owned(), open);
    }

    fn settle(&self, tool_call_id: &str) {
        if let Some(open) = self.locked().get_mut(tool_call_id) {
            open.settled = true;
        }
    }

    /// The terminal of a tool call, if it ran in one.
    pub fn of(&self, tool_call_id: &str) -> Option<TerminalId> {
        self.locked().get(tool_call_id).map(|t| t.id.clone())
    }

    /// Removes and returns the tool call's terminal if its command is over.
    pub fn take_settled(&self, tool_call_id: &str) -> Option<TerminalId> {
        let mut open = self.locked();
        match open.get(tool_call_id) {
            Some(t) if t.settled => open.remove(tool_call_id).map(|t| t.id),
            _ => None,
        }
    }

    /// Removes every terminal; the flag says whether its command is over.
    fn take_all(&self) -> Vec<(TerminalId, bool)> {
        self.locked()
            .drain()
            .map(|(_, t)| (t.id, t.settled))
            .collect()
    }
}

/// How waiting for a command ended.
enum Ended {
    Exited(TerminalExitStatus),
    TimedOut,
    Cancelled,
    WaitFailed(String),
}

/// Why a command could not be run in the client's terminal or waited for.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cancelled")]
    Cancelled,
    /// A `terminal/*` request failed: the method and the client's message.
    #[error("terminal/{0} failed: {1}")]
    Client(&'static str, String),
    #[error("the client did not send the command's output in time")]
    OutputTimeout,
}

/// The `terminal/*` methods of one session's client.
pub struct Shell<'a> {
    pub cx: &'a ConnectionTo<Client>,
    pub session_id: &'a str,
    pub terminals: &'a Terminals,
}

impl Shell<'_> {
    /// Runs `run` for tool call `tool_call_id` in a terminal of the client.
    /// Errors are for commands that could not be run or waited for.
    pub async fn run(
        &self,
        tool_call_id: &str,
        run: RunCommand,
        cancel: &CancellationToken,
    ) -> Result<CommandResult, TerminalError> {
        let create = self.create(&run);
        tokio::pin!(create);
        let id = tokio::select! {
            created = &mut create => created?,
            () = cancel.cancelled() => {
                // The client may already have started the command: wait
                // (bounded) for its terminal id, then kill and release it,
                // so a cancelled turn never leaves a command running.
                if let Ok(Ok(id)) = tokio::time::timeout(CLEANUP_DEADLINE, create).await {
                    self.terminals.add(tool_call_id, id.clone());
                    self.kill(&id).await;
                    self.terminals.settle(tool_call_id);
                }
                return Err(TerminalError::Cancelled);
            }
        };
        self.terminals.add(tool_call_id, id.clone());
        let embed = updates::terminal_embed(tool_call_id, &id);
        if let Err(error) = self
            .cx
            .send_notification(SessionNotification::new(self.session_id.to_owned(), embed))
        {
            tracing::debug!(%error, "terminal not embedded in its tool call");
        }
        let ended = self.wait(&id, run.timeout_secs, cancel).await;
        if !matches!(ended, Ended::Exited(_)) {
            self.kill(&id).await;
        }
        let result = match ended {
            Ended::Cancelled => Err(TerminalError::Cancelled),
            Ended::WaitFailed(error) => Err(TerminalError::Client("wait_for_exit", error)),
            Ended::Exited(status) => self
                .output(&id)
                .await
                .map(|o| result(o, Some(status), false)),
            Ended::TimedOut => self.output(&id).await.map(|o| result(o, None, true)),
        };
        self.terminals.settle(tool_call_id);
        result
    }

    async fn create(&self, run: &RunCommand) -> Result<TerminalId, TerminalError> {
        let request = CreateTerminalRequest::new(self.session_id.to_owned(), SHELL)
            .args(vec!["-c".to_owned(), run.command.clone()])
            .cwd(PathBuf::from(&run.cwd))
            .output_byte_limit(Some(run.output_byte_limit).filter(|l| *l > 0));
        let created = self.cx.send_request(request).block_task().await;
        created
            .map(|c| c.terminal_id)
            .map_err(|e| TerminalError::Client("create", e.message))
    }

    /// Waits for the command to exit, at most `timeout_secs` (0 = no limit).
    async fn wait(&self, id: &TerminalId, timeout_secs: u32, cancel: &CancellationToken) -> Ended {
        let request = WaitForTerminalExitRequest::new(self.session_id.to_owned(), id.clone());
        let wait = self.cx.send_request(request).block_task();
        let deadline = async {
            match timeout_secs {
                0 => std::future::pending().await,
                secs => tokio::time::sleep(Duration::from_secs(u64::from(secs))).await,
            }
        };
        tokio::select! {
            exited = wait => match exited {
                Ok(response) => Ended::Exited(response.exit_status),
                Err(error) => Ended::WaitFailed(error.message),
            },
            () = deadline => Ended::TimedOut,
            () = cancel.cancelled() => Ended::Cancelled,
        }
    }

    async fn output(&self, id: &TerminalId) -> Result<TerminalOutputResponse, TerminalError> {
        let request = TerminalOutputRequest::new(self.session_id.to_owned(), id.clone());
        match tokio::time::timeout(OUTPUT_DEADLINE, self.cx.send_request(request).block_task())
            .await
        {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(TerminalError::Client("output", error.message)),
            Err(_) => Err(TerminalError::OutputTimeout),
        }
    }

    /// Kills the command; the terminal stays (with its output) until released.
    async fn kill(&self, id: &TerminalId) {
        let request = KillTerminalRequest::new(self.session_id.to_owned(), id.clone());
        let killed =
            tokio::time::timeout(CLEANUP_DEADLINE, self.cx.send_request(request).block_task())
                .await;
        if !matches!(killed, Ok(Ok(_))) {
            tracing::debug!(terminal = %id, "terminal/kill failed or timed out");
        }
    }

    pub async fn release(&self, id: &TerminalId) {
        let request = ReleaseTerminalRequest::new(self.session_id.to_owned(), id.clone());
        let released =
            tokio::time::timeout(CLEANUP_DEADLINE, self.cx.send_request(request).block_task())
                .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::debug!(terminal = %id, "terminal/release failed or timed out");
        }
    }

    /// Releases every terminal still open at the end of a turn, killing the
    /// commands that are not over.
    pub async fn release_all(&self) {
        for (id, settled) in self.terminals.take_all() {
            if !settled {
                self.kill(&id).await;
            }
            self.release(&id).await;
        }
    }
}

/// The agent loop's view of a finished command. `exited` is the status
/// `wait_for_exit` reported; without one, the output's is used.
fn result(
    output: TerminalOutputResponse,
    exited: Option<TerminalExitStatus>,
    timed_out: bool,
) -> CommandResult {
    let status = exited.or(output.exit_status).unwrap_or_default();
    CommandResult {
        exit_code: status.exit_code.and_then(|c| i32::try_from(c).ok()),
        signal: status.signal.unwrap_or_default(),
        output: output.output,
        truncated: output.truncated,
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_are_released_only_once_settled() {
        let terminals = Terminals::default();
        terminals.add("c1", TerminalId::new("t1"));
        assert_eq!(terminals.of("c1"), Some(TerminalId::new("t1")));
        assert_eq!(terminals.take_settled("c1"), None, "still running");
        terminals.settle("c1");
        assert_eq!(terminals.take_settled("c1"), Some(TerminalId::new("t1")));
        assert_eq!(terminals.of("c1"), None);
        terminals.add("c2", TerminalId::new("t2"));
        assert_eq!(terminals.take_all(), [(TerminalId::new("t2"), false)]);
    }

    #[test]
    fn results_prefer_the_status_wait_reported() {
        let output = TerminalOutputResponse::new("out", true)
            .exit_status(TerminalExitStatus::new().signal("SIGKILL".to_owned()));
        let timed_out = result(output.clone(), None, true);
        assert_eq!(
            (timed_out.exit_code, timed_out.signal.as_str()),
            (None, "SIGKILL")
        );
        assert!(timed_out.truncated && timed_out.timed_out);
        let exited = result(output, Some(TerminalExitStatus::new().exit_code(2)), false);
        assert_eq!((exited.exit_code, exited.timed_out), (Some(2), false));
    }
}
