//! Driving the real `openheim acp` binary: as an ACP client (the SDK's
//! client side, recording what the agent sends) or line by line (raw
//! JSON-RPC, for malformed input).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    ClientCapabilities, ContentBlock, CreateTerminalRequest, CreateTerminalResponse,
    FileSystemCapabilities, InitializeRequest, InitializeResponse, KillTerminalRequest,
    KillTerminalResponse, NewSessionRequest, PermissionOptionKind, PromptRequest, PromptResponse,
    ReadTextFileRequest, ReadTextFileResponse, ReleaseTerminalRequest, ReleaseTerminalResponse,
    RequestPermissionOutcome, RequestPermissionRequest, RequestPermissionResponse,
    SelectedPermissionOutcome, SessionNotification, SessionUpdate, TerminalOutputRequest,
    TerminalOutputResponse, TextContent, WaitForTerminalExitRequest, WaitForTerminalExitResponse,
    WriteTextFileRequest, WriteTextFileResponse,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Client, Error as RpcError, Lines};
use futures::{Sink, Stream};
use openheim_e2e::{Install, bin_path};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::client_terminal::ClientTerminals;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A running `openheim acp` in the install's workspace, with its own home.
pub struct AcpProcess {
    pub child: Child,
}

impl AcpProcess {
    pub fn spawn(install: &Install, stderr: Stdio) -> Self {
        let child = Command::new(bin_path("openheim"))
            .arg("acp")
            .current_dir(install.workspace())
            .env("OPENHEIM_HOME", install.home())
            .env("HOME", install.root.path())
            .env_remove("OPENHEIM_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("openheim acp could not be started");
        Self { child }
    }

    /// The agent as an SDK transport: lines to its stdin, lines from its stdout.
    pub fn transport(
        &mut self,
    ) -> Lines<
        impl Sink<String, Error = std::io::Error> + Send + 'static,
        impl Stream<Item = std::io::Result<String>> + Send + 'static,
    > {
        let stdin = self.child.stdin.take().unwrap();
        let stdout = self.child.stdout.take().unwrap();
        let outgoing = futures::sink::unfold(stdin, |mut stdin, line: String| async move {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await?;
            Ok::<_, std::io::Error>(stdin)
        });
        let incoming =
            futures::stream::unfold(BufReader::new(stdout).lines(), |mut lines| async move {
                lines
                    .next_line()
                    .await
                    .transpose()
                    .map(|line| (line, lines))
            });
        Lines::new(Box::pin(outgoing), Box::pin(incoming))
    }

    /// Waits for the process to exit on its own; its exit code.
    pub async fn exit_code(mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("openheim acp did not exit after its stdin closed")
            .unwrap();
        status.code().expect("killed by a signal")
    }
}

/// What the test client saw, and how it answers the agent's requests.
pub struct Recorder {
    pub updates: Mutex<Vec<SessionUpdate>>,
    pub permissions: Mutex<Vec<RequestPermissionRequest>>,
    /// The option kind picked for permission requests; `None` cancels them.
    pub answer: Mutex<Option<PermissionOptionKind>>,
    /// Unsaved editor buffers, served to `fs/read_text_file`.
    pub buffers: Mutex<HashMap<PathBuf, String>>,
    pub writes: Mutex<Vec<(PathBuf, String)>>,
    pub reads: Mutex<Vec<PathBuf>>,
    /// Serves `terminal/*` (used when the client advertises `terminal`).
    pub terminals: ClientTerminals,
}

impl Recorder {
    pub fn answering(answer: Option<PermissionOptionKind>) -> Arc<Self> {
        Arc::new(Self {
            updates: Mutex::default(),
            permissions: Mutex::default(),
            answer: Mutex::new(answer),
            buffers: Mutex::default(),
            writes: Mutex::default(),
            reads: Mutex::default(),
            terminals: ClientTerminals::default(),
        })
    }

    pub fn updates(&self) -> Vec<SessionUpdate> {
        self.updates.lock().unwrap().clone()
    }

    pub fn take_updates(&self) -> Vec<SessionUpdate> {
        std::mem::take(&mut *self.updates.lock().unwrap())
    }

    fn permission(&self, request: RequestPermissionRequest) -> RequestPermissionResponse {
        let answer = *self.answer.lock().unwrap();
        let chosen = answer.and_then(|kind| request.options.iter().find(|o| o.kind == kind));
        let outcome = match chosen {
            Some(option) => RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(
                option.option_id.clone(),
            )),
            None => RequestPermissionOutcome::Cancelled,
        };
        self.permissions.lock().unwrap().push(request);
        RequestPermissionResponse::new(outcome)
    }

    fn read(&self, request: &ReadTextFileRequest) -> Result<ReadTextFileResponse, RpcError> {
        self.reads.lock().unwrap().push(request.path.clone());
        match self.buffers.lock().unwrap().get(&request.path) {
            Some(text) => Ok(ReadTextFileResponse::new(text.clone())),
            None => Err(RpcError::new(-32002, "no such file")),
        }
    }

    fn write(&self, request: WriteTextFileRequest) -> WriteTextFileResponse {
        let mut buffers = self.buffers.lock().unwrap();
        buffers.insert(request.path.clone(), request.content.clone());
        self.writes
            .lock()
            .unwrap()
            .push((request.path, request.content));
        WriteTextFileResponse::new()
    }
}

/// A client request handler answering with `$answer(&recorder, request)`,
/// a `Result` of the response.
macro_rules! answer {
    ($recorder:expr, $request:ty, $response:ty, $answer:expr) => {{
        let r = Arc::clone($recorder);
        async move |request: $request, responder: Responder<$response>, _cx: ConnectionTo<Agent>| {
            responder.respond_with_result($answer(&r, request))
        }
    }};
}

/// Connects an ACP client to `process` and runs `body` with it. Returns
/// when `body` does; the agent's stdin is closed then.
pub async fn run_client<R>(
    process: &mut AcpProcess,
    recorder: &Arc<Recorder>,
    body: impl AsyncFnOnce(ConnectionTo<Agent>) -> Result<R, RpcError>,
) -> R {
    let (updates, waits) = (Arc::clone(recorder), Arc::clone(recorder));
    let terminal_id = |r: &TerminalOutputRequest| r.terminal_id.0.to_string();
    let client = Client
        .v1()
        .name("openheim-e2e")
        .on_receive_notification(
            async move |n: SessionNotification, _cx: ConnectionTo<Agent>| {
                updates.updates.lock().unwrap().push(n.update);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                RequestPermissionRequest,
                RequestPermissionResponse,
                |r: &Arc<Recorder>, q| Ok(r.permission(q))
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                ReadTextFileRequest,
                ReadTextFileResponse,
                |r: &Arc<Recorder>, q: ReadTextFileRequest| r.read(&q)
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                WriteTextFileRequest,
                WriteTextFileResponse,
                |r: &Arc<Recorder>, q| Ok(r.write(q))
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                CreateTerminalRequest,
                CreateTerminalResponse,
                |r: &Arc<Recorder>, q| r.terminals.create(q)
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                TerminalOutputRequest,
                TerminalOutputResponse,
                |r: &Arc<Recorder>, q: TerminalOutputRequest| r.terminals.output(&terminal_id(&q))
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: WaitForTerminalExitRequest,
                        responder: Responder<WaitForTerminalExitResponse>,
                        _cx: ConnectionTo<Agent>| {
                // Answered from a task: awaiting the exit here would stall
                // the client's dispatch loop.
                let exited = waits.terminals.wait_for_exit(&request.terminal_id.0);
                tokio::spawn(async move {
                    let _ = responder.respond_with_result(exited.await);
                });
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                KillTerminalRequest,
                KillTerminalResponse,
                |r: &Arc<Recorder>, q: KillTerminalRequest| r.terminals.kill(&q.terminal_id.0)
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            answer!(
                recorder,
                ReleaseTerminalRequest,
                ReleaseTerminalResponse,
                |r: &Arc<Recorder>, q: ReleaseTerminalRequest| r
                    .terminals
                    .release(&q.terminal_id.0)
            ),
            agent_client_protocol::on_receive_request!(),
        )
        .connect_with(process.transport(), body);
    tokio::time::timeout(TIMEOUT, client)
        .await
        .expect("the ACP scenario did not finish in time")
        .expect("the ACP connection failed")
}

/// `initialize`, advertising the client's file system when `fs` is set.
pub async fn initialize(cx: &ConnectionTo<Agent>, fs: bool) -> Result<(), RpcError> {
    let fs = FileSystemCapabilities::new()
        .read_text_file(fs)
        .write_text_file(fs);
    initialize_with(cx, ClientCapabilities::new().fs(fs)).await?;
    Ok(())
}

/// `initialize` with the given client capabilities; the agent's answer.
pub async fn initialize_with(
    cx: &ConnectionTo<Agent>,
    capabilities: ClientCapabilities,
) -> Result<InitializeResponse, RpcError> {
    let request = InitializeRequest::new(ProtocolVersion::V1).client_capabilities(capabilities);
    let response = cx.send_request(request).block_task().await?;
    assert_eq!(response.protocol_version, ProtocolVersion::V1);
    assert!(response.agent_capabilities.load_session);
    Ok(response)
}

pub async fn new_session(cx: &ConnectionTo<Agent>, cwd: &Path) -> Result<String, RpcError> {
    let response = cx
        .send_request(NewSessionRequest::new(cwd))
        .block_task()
        .await?;
    Ok(response.session_id.0.to_string())
}

pub fn prompt_text(
    cx: &ConnectionTo<Agent>,
    session_id: &str,
    text: &str,
) -> impl Future<Output = Result<PromptResponse, RpcError>> + use<> {
    let request = PromptRequest::new(
        session_id.to_owned(),
        vec![ContentBlock::Text(TextContent::new(text))],
    );
    cx.send_request(request).block_task()
}

/// The text of every chunk of one kind, concatenated.
pub fn chunks(updates: &[SessionUpdate], pick: fn(&SessionUpdate) -> bool) -> String {
    updates
        .iter()
        .filter(|u| pick(u))
        .filter_map(|u| match u {
            SessionUpdate::UserMessageChunk(c)
            | SessionUpdate::AgentMessageChunk(c)
            | SessionUpdate::AgentThoughtChunk(c) => match &c.content {
                ContentBlock::Text(t) => Some(t.text.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Tool call ids and result ids of a session log, in order, to check that
/// every issued call got exactly one result.
pub fn calls_and_results(history: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for record in openheim_e2e::install::history(history) {
        let message = &record["message"];
        if let Some(content) = message["content"].as_array() {
            for block in content.iter().filter(|b| b["type"] == "tool_call") {
                calls.push(block["id"].as_str().unwrap().to_owned());
            }
        }
        if message["role"] == "tool" {
            results.push((
                message["tool_call_id"].as_str().unwrap().to_owned(),
                message["content"].as_str().unwrap().to_owned(),
            ));
        }
    }
    (calls, results)
}

/// Waits until `path` holds a pid, then returns it.
pub async fn wait_for_pid(path: &Path) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match std::fs::read_to_string(path) {
                Ok(pid) if !pid.trim().is_empty() => return pid.trim().to_owned(),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the shell never started")
}

/// Waits until process `pid` is gone (or a zombie).
pub async fn wait_until_gone(pid: &str) {
    let proc_dir = format!("/proc/{pid}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while Path::new(&proc_dir).exists()
            && !std::fs::read_to_string(format!("{proc_dir}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cancelled shell is still running");
}

/// `openheim acp` driven line by line.
pub struct RawAgent {
    pub process: AcpProcess,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl RawAgent {
    /// Starts the agent; its stderr is dropped (malformed input is logged).
    pub fn spawn(install: &Install) -> Self {
        let mut process = AcpProcess::spawn(install, Stdio::null());
        let stdin = process.child.stdin.take();
        let stdout = process.child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        // Read all the time: a full stdout pipe would stall the agent.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            process,
            stdin,
            lines,
        }
    }

    pub async fn send_line(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(line).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
    }

    /// Writes `bytes` as they are, in one write.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next message the agent writes, whatever it is.
    pub async fn next_message(&mut self) -> Value {
        let line = tokio::time::timeout(TIMEOUT, self.lines.recv())
            .await
            .expect("no message from the agent")
            .expect("the agent closed stdout");
        serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the agent wrote a line that is not JSON: {line}"))
    }

    pub async fn send(&mut self, message: Value) {
        self.send_line(message.to_string().as_bytes()).await;
    }

    /// The response with `id`, skipping every other line.
    pub async fn response(&mut self, id: &Value) -> Value {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let line = self.lines.recv().await.expect("the agent closed stdout");
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    panic!("the agent wrote a line that is not JSON: {line}");
                };
                if message.get("id") == Some(id) && message.get("method").is_none() {
                    return message;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no response with id {id}"))
    }

    /// Sends a request and returns its response.
    pub async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        let message =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(message).await;
        self.response(&id).await
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}
