//! The test client's terminals (ACP `terminal/*`): each runs its command as
//! a real child process in its own process group, stdout and stderr into one
//! pipe (as a terminal interleaves them), and every call the agent makes is
//! recorded. Children see [`MARKER_VAR`], so a test can tell that a command
//! ran here and not in openheim's tool-executor.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agent_client_protocol::Error as RpcError;
use agent_client_protocol::v1::schema::{
    CreateTerminalRequest, CreateTerminalResponse, KillTerminalResponse, ReleaseTerminalResponse,
    TerminalExitStatus, TerminalOutputResponse, WaitForTerminalExitResponse,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::{Notify, watch};

/// Set in the environment of every command a client terminal runs.
pub const MARKER_VAR: &str = "OPENHEIM_E2E_TERMINAL";
pub const MARKER: &str = "client-terminal";

/// A `terminal/*` call the agent made, with the terminal id it named.
#[derive(Debug, Clone, PartialEq)]
pub enum TerminalCall {
    Create(CreateTerminalRequest),
    Output(String),
    WaitForExit(String),
    Kill(String),
    Release(String),
}

struct Running {
    pgid: Pid,
    output: Arc<Mutex<Vec<u8>>>,
    limit: Option<usize>,
    exit: watch::Receiver<Option<TerminalExitStatus>>,
}

#[derive(Default)]
pub struct ClientTerminals {
    next_id: AtomicU64,
    open: Mutex<HashMap<String, Arc<Running>>>,
    pub calls: Mutex<Vec<TerminalCall>>,
    /// Notified once per created terminal.
    pub created: Notify,
}

fn unknown(id: &str) -> RpcError {
    RpcError::new(-32002, format!("no terminal {id}"))
}

impl ClientTerminals {
    pub fn calls(&self) -> Vec<TerminalCall> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: TerminalCall) {
        self.calls.lock().unwrap().push(call);
    }

    fn running(&self, id: &str) -> Result<Arc<Running>, RpcError> {
        self.open
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| unknown(id))
    }

    pub fn create(
        &self,
        request: CreateTerminalRequest,
    ) -> Result<CreateTerminalResponse, RpcError> {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut command = Command::new(&request.command);
        command
            .args(&request.args)
            .env(MARKER_VAR, MARKER)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &request.cwd {
            command.current_dir(cwd);
        }
        let limit = request.output_byte_limit.map(|l| l as usize);
        self.record(TerminalCall::Create(request));
        let mut child = command
            .spawn()
            .map_err(|e| RpcError::new(-32603, e.to_string()))?;
        // The pipe's write ends now live only in the child (and its children).
        drop(command);
        let pgid = Pid::from_raw(child.id().unwrap() as i32);
        let output = Arc::new(Mutex::new(Vec::new()));
        let pump = {
            let output = Arc::clone(&output);
            tokio::task::spawn_blocking(move || {
                let mut reader = reader;
                let mut chunk = [0_u8; 4096];
                while let Ok(n @ 1..) = reader.read(&mut chunk) {
                    output.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            })
        };
        let (exited, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.unwrap();
            let _ = pump.await;
            let _ = exited.send(Some(exit_status(status)));
        });
        let id = format!("term-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let running = Running {
            pgid,
            output,
            limit,
            exit,
        };
        self.open
            .lock()
            .unwrap()
            .insert(id.clone(), Arc::new(running));
        self.created.notify_one();
        Ok(CreateTerminalResponse::new(id))
    }

    pub fn output(&self, id: &str) -> Result<TerminalOutputResponse, RpcError> {
        self.record(TerminalCall::Output(id.to_owned()));
        let running = self.running(id)?;
        let bytes = running.output.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // A terminal keeps the end of the output; cut on a character boundary.
        let (text, truncated) = match running.limit {
            Some(limit) if text.len() > limit => {
                let mut start = text.len() - limit;
                while !text.is_char_boundary(start) {
                    start += 1;
                }
                (text[start..].to_owned(), true)
            }
            _ => (text, false),
        };
        let status = running.exit.borrow().clone();
        Ok(TerminalOutputResponse::new(text, truncated).exit_status(status))
    }

    /// Resolves when the command exits; to be awaited off the dispatch loop.
    pub fn wait_for_exit(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<WaitForTerminalExitResponse, RpcError>> + use<> {
        self.record(TerminalCall::WaitForExit(id.to_owned()));
        let running = self.running(id);
        async move {
            let mut exit = running?.exit.clone();
            let status = exit
                .wait_for(Option::is_some)
                .await
                .map_err(|_| RpcError::new(-32603, "the terminal went away"))?
                .clone()
                .unwrap_or_default();
            Ok(WaitForTerminalExitResponse::new(status))
        }
    }

    pub fn kill(&self, id: &str) -> Result<KillTerminalResponse, RpcError> {
        self.record(TerminalCall::Kill(id.to_owned()));
        let running = self.running(id)?;
        let _ = killpg(running.pgid, Signal::SIGKILL);
        Ok(KillTerminalResponse::new())
    }

    pub fn release(&self, id: &str) -> Result<ReleaseTerminalResponse, RpcError> {
        self.record(TerminalCall::Release(id.to_owned()));
        let running = self
            .open
            .lock()
            .unwrap()
            .remove(id)
            .ok_or_else(|| unknown(id))?;
        if running.exit.borrow().is_none() {
            let _ = killpg(running.pgid, Signal::SIGKILL);
        }
        Ok(ReleaseTerminalResponse::new())
    }
}

fn exit_status(status: ExitStatus) -> TerminalExitStatus {
    let signal = status
        .signal()
        .and_then(|s| Signal::try_from(s).ok())
        .map(|s| s.as_str().to_owned());
    TerminalExitStatus::new()
        .exit_code(status.code().map(|c| c as u32))
        .signal(signal)
}
