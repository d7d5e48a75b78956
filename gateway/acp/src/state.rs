//! What one ACP connection knows: the client's capabilities, the sessions
//! opened on it and the turn running in each, and the tasks it spawned.
//!
//! Locks are `std` mutexes held for map look-ups only, never across an
//! `.await`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_client_protocol::v1::schema as acp;
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::{
    CancelTurn, ClientCapabilities, TurnInput, agent_loop_client::AgentLoopClient,
    turn_input::Input,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::AcpOptions;
use crate::error::AcpError;

/// Inputs buffered per turn (start, permission answers, client responses,
/// cancel); the agent loop reads them as they come.
const TURN_INPUT_BUFFER: usize = 16;

/// What the client said it can do in `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFeatures {
    pub fs_read: bool,
    pub fs_write: bool,
    /// The client runs commands in terminals it shows (`terminal/*`).
    pub terminal: bool,
    /// The client renders `notice` session updates.
    pub notices: bool,
    /// The client renders `compaction_update` session updates.
    pub compaction: bool,
    /// The client answers `elicitation/create` in form mode.
    pub elicitation: bool,
}

impl ClientFeatures {
    pub fn from_acp(caps: &acp::ClientCapabilities) -> Self {
        Self {
            fs_read: caps.fs.read_text_file,
            fs_write: caps.fs.write_text_file,
            terminal: caps.terminal,
            elicitation: caps.elicitation.as_ref().is_some_and(|e| e.form.is_some()),
            notices: caps.session.as_ref().is_some_and(|s| s.notices.is_some()),
            compaction: caps
                .session
                .as_ref()
                .is_some_and(|s| s.compaction.is_some()),
        }
    }

    /// What a turn may hand back to this client: file tools, shell
    /// commands (which the agent loop may still keep for tool-executor),
    /// MCP servers' elicitation requests.
    pub fn for_turn(self) -> Option<ClientCapabilities> {
        let any = self.fs_read || self.fs_write || self.terminal || self.elicitation;
        any.then_some(ClientCapabilities {
            fs_read: self.fs_read,
            fs_write: self.fs_write,
            terminal: self.terminal,
            elicitation: self.elicitation,
        })
    }
}

/// A session opened (created or loaded) on this connection.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub work_dir: PathBuf,
    pub model: String,
    /// The `thinking` config option; `None` = as configured. Kept by this
    /// connection and sent with each of the session's turns.
    pub thinking: Option<openheim_config::Thinking>,
    /// The session's skills, as the agent loop last reported them.
    pub skills: Vec<String>,
}

struct OpenSession {
    view: SessionView,
    active: Option<ActiveTurn>,
    /// The client was told the session's slash commands.
    commands_sent: bool,
    /// An MCP server of the session was still starting when they were
    /// last sent: its prompts may be missing (`mcp_prompts::refresh`).
    commands_stale: bool,
}

/// Handles of the turn running in a session.
struct ActiveTurn {
    inputs: mpsc::Sender<TurnInput>,
    /// Cancelled by `session/cancel`; aborts questions waiting on the client.
    cancel: CancellationToken,
}

/// A turn slot taken by [`Connection::begin_turn`].
pub struct TurnSlot {
    pub session: SessionView,
    pub inputs: mpsc::Sender<TurnInput>,
    pub input_rx: mpsc::Receiver<TurnInput>,
    pub cancel: CancellationToken,
}

pub struct Connection {
    pub agent_loop: AgentLoopClient<GrpcChannel>,
    pub options: AcpOptions,
    client: Mutex<ClientFeatures>,
    sessions: Mutex<HashMap<String, OpenSession>>,
    /// Prompt turns and slow requests run here, off the dispatch loop, so
    /// that requests back to the client cannot deadlock it; shutdown waits
    /// for them.
    pub tasks: TaskTracker,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the connection; the data stays valid
    // because every critical section is a single map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    pub fn new(agent_loop: AgentLoopClient<GrpcChannel>, options: AcpOptions) -> Arc<Self> {
        Arc::new(Self {
            agent_loop,
            options,
            client: Mutex::default(),
            sessions: Mutex::default(),
            tasks: TaskTracker::new(),
        })
    }

    pub fn set_client(&self, features: ClientFeatures) {
        *locked(&self.client) = features;
    }

    pub fn client(&self) -> ClientFeatures {
        *locked(&self.client)
    }

    /// Records a session as open on this connection (keeping a running turn).
    pub fn open(&self, view: SessionView) {
        let mut sessions = locked(&self.sessions);
        match sessions.get_mut(&view.id) {
            Some(open) => open.view = view,
            None => {
                let open = OpenSession {
                    view,
                    active: None,
                    commands_sent: false,
                    commands_stale: false,
                };
                sessions.insert(open.view.id.clone(), open);
            }
        }
    }

    pub fn session(&self, id: &str) -> Result<SessionView, AcpError> {
        locked(&self.sessions)
            .get(id)
            .map(|s| s.view.clone())
            .ok_or_else(|| AcpError::SessionNotFound(id.to_owned()))
    }

    pub fn set_model(&self, id: &str, model: String) {
        if let Some(open) = locked(&self.sessions).get_mut(id) {
            open.view.model = model;
        }
    }

    /// Whether the session's slash commands still have to be sent to the
    /// client; marks them sent.
    pub fn commands_unsent(&self, id: &str) -> bool {
        locked(&self.sessions)
            .get_mut(id)
            .is_some_and(|open| !std::mem::replace(&mut open.commands_sent, true))
    }

    /// Marks (or clears) the session's slash commands as possibly
    /// missing the prompts of a server that was still starting.
    pub fn set_commands_stale(&self, id: &str, stale: bool) {
        if let Some(open) = locked(&self.sessions).get_mut(id) {
            open.commands_stale = stale;
        }
    }

    pub fn commands_stale(&self, id: &str) -> bool {
        locked(&self.sessions)
            .get(id)
            .is_some_and(|open| open.commands_stale)
    }

    pub fn set_skills(&self, id: &str, skills: Vec<String>) {
        if let Some(open) = locked(&self.sessions).get_mut(id) {
            open.view.skills = skills;
        }
    }

    pub fn set_thinking(&self, id: &str, thinking: Option<openheim_config::Thinking>) {
        if let Some(open) = locked(&self.sessions).get_mut(id) {
            open.view.thinking = thinking;
        }
    }

    /// Takes the session's turn slot: one prompt at a time per session.
    pub fn begin_turn(&self, id: &str) -> Result<TurnSlot, AcpError> {
        let mut sessions = locked(&self.sessions);
        let open = sessions
            .get_mut(id)
            .ok_or_else(|| AcpError::SessionNotFound(id.to_owned()))?;
        if open.active.is_some() {
            return Err(AcpError::SessionBusy(id.to_owned()));
        }
        let (inputs, input_rx) = mpsc::channel(TURN_INPUT_BUFFER);
        let cancel = CancellationToken::new();
        open.active = Some(ActiveTurn {
            inputs: inputs.clone(),
            cancel: cancel.clone(),
        });
        Ok(TurnSlot {
            session: open.view.clone(),
            inputs,
            input_rx,
            cancel,
        })
    }

    pub fn end_turn(&self, id: &str) {
        if let Some(open) = locked(&self.sessions).get_mut(id) {
            open.active = None;
        }
    }

    /// `session/cancel`: stops the session's running turn, if any.
    pub fn cancel(&self, id: &str) {
        let active = locked(&self.sessions).get(id).and_then(|s| {
            s.active
                .as_ref()
                .map(|a| (a.inputs.clone(), a.cancel.clone()))
        });
        if let Some((inputs, cancel)) = active {
            cancel.cancel();
            send_cancel(&self.tasks, inputs);
        }
    }

    /// Whether a prompt of the session runs on this connection.
    pub fn is_running(&self, id: &str) -> bool {
        locked(&self.sessions)
            .get(id)
            .is_some_and(|open| open.active.is_some())
    }

    /// `session/close`: cancels the session's running turn and forgets the
    /// session; the turn's task still ends it (and finds it gone).
    pub fn close(&self, id: &str) -> Result<(), AcpError> {
        self.cancel(id);
        locked(&self.sessions)
            .remove(id)
            .map(drop)
            .ok_or_else(|| AcpError::SessionNotFound(id.to_owned()))
    }

    /// The client went away: cancels every running turn and gives them
    /// `grace` to record their cancellation, so the history stays valid.
    pub async fn shutdown(&self, grace: Duration) {
        let ids: Vec<String> = locked(&self.sessions).keys().cloned().collect();
        for id in ids {
            self.cancel(&id);
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("turns still running after {grace:?}; leaving them");
        }
    }
}

/// Sends `cancel` without waiting on a full input buffer in the caller.
fn send_cancel(tasks: &TaskTracker, inputs: mpsc::Sender<TurnInput>) {
    let cancel = TurnInput {
        input: Some(Input::Cancel(CancelTurn {})),
    };
    if let Err(mpsc::error::TrySendError::Full(cancel)) = inputs.try_send(cancel) {
        tasks.spawn(async move {
            let _ = inputs.send(cancel).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Arc<Connection> {
        // A channel that is never called: these tests do not reach the agent loop.
        let channel = openheim_proto::transport::remote("http://127.0.0.1:9").unwrap();
        Connection::new(AgentLoopClient::new(channel), AcpOptions::default())
    }

    fn view(id: &str) -> SessionView {
        SessionView {
            id: id.into(),
            work_dir: PathBuf::from("/ws"),
            model: String::new(),
            thinking: None,
            skills: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_prompt_at_a_time_per_open_session() {
        let conn = connection();
        assert!(matches!(
            conn.begin_turn("s1"),
            Err(AcpError::SessionNotFound(_))
        ));
        conn.open(view("s1"));
        let mut slot = conn.begin_turn("s1").unwrap();
        assert!(matches!(
            conn.begin_turn("s1"),
            Err(AcpError::SessionBusy(_))
        ));
        conn.cancel("s1");
        assert!(slot.cancel.is_cancelled());
        let input = slot.input_rx.recv().await.unwrap();
        assert!(matches!(input.input, Some(Input::Cancel(_))));
        conn.end_turn("s1");
        assert!(conn.begin_turn("s1").is_ok());
    }

    #[test]
    fn client_features_choose_what_turns_delegate() {
        assert_eq!(ClientFeatures::default().for_turn(), None);
        let fs = ClientFeatures {
            fs_read: true,
            fs_write: true,
            ..ClientFeatures::default()
        };
        let caps = fs.for_turn().unwrap();
        assert!(caps.fs_read && caps.fs_write && !caps.terminal);
        let terminal = ClientFeatures {
            terminal: true,
            ..ClientFeatures::default()
        };
        let caps = terminal.for_turn().unwrap();
        assert!(caps.terminal && !caps.fs_read && !caps.fs_write);
    }
}
