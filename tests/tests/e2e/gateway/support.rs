//! Driving `openheim serve` over real sockets: the server process with its
//! own install, a REST client, and a WebSocket client that speaks raw ACP
//! JSON-RPC on `/acp` or inside `/ws` envelopes (fs frames kept apart).

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use openheim_e2e::{Install, MockLlm, Reply, ServiceProcess, bin_path};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `openheim serve` on a free port, with the mock as its provider.
pub struct Server {
    pub mock: MockLlm,
    pub install: Install,
    pub process: ServiceProcess,
}

impl Server {
    /// `extra` goes into the config (top-level keys, then tables).
    pub async fn start(script: Vec<Reply>, extra: &str) -> Self {
        let mock = MockLlm::start(script).await;
        let install = Install::new(&mock, "");
        Self::start_with(mock, install, extra, &[]).await
    }

    pub async fn start_with(
        mock: MockLlm,
        install: Install,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        write_config(&install, &mock, extra);
        let config = install.home().join("config.toml");
        let home = install.home();
        let mut vars = vec![
            ("OPENHEIM_HOME", home.to_str().unwrap()),
            ("HOME", install.root.path().to_str().unwrap()),
            ("OPENHEIM_CONFIG", config.to_str().unwrap()),
            ("RUST_LOG", "warn"),
        ];
        vars.extend_from_slice(env);
        let process = ServiceProcess::spawn_program(&bin_path("openheim"), &["serve"], &vars).await;
        Self {
            mock,
            install,
            process,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.addr())
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.process.addr())
    }

    /// GET `path` with an optional bearer token: status and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = tokio::time::timeout(TIMEOUT, request.send())
            .await
            .expect("REST call timed out")
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// DELETE `path` with an optional bearer token: status and JSON body.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = tokio::time::timeout(TIMEOUT, request.send())
            .await
            .expect("REST call timed out")
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn connect(&self, path: &str, framing: Framing) -> WsClient {
        WsClient::connect(&self.ws_url(path), &[], framing)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to {path}: {e}\n{}",
                    self.process.stderr_tail()
                )
            })
    }
}

/// The install's config: the mock provider, the workspace as `work_dir`,
/// and `extra`.
pub fn write_config(install: &Install, mock: &MockLlm, extra: &str) {
    let workspace = install.workspace();
    let top = format!("work_dir = \"{}\"\n{extra}", workspace.display());
    install.write_config(mock, &top);
}

/// How ACP messages travel on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `/acp`: the message is the frame.
    Bare,
    /// `/ws`: `{"channel":"agent","data":…}`.
    Envelope,
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client keeping agent and fs messages apart.
pub struct WsClient {
    stream: Stream,
    framing: Framing,
    agent: VecDeque<Value>,
    fs: VecDeque<Value>,
    next_id: u64,
}

impl WsClient {
    pub async fn connect(
        url: &str,
        headers: &[(&str, &str)],
        framing: Framing,
    ) -> Result<Self, WsError> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self {
            stream,
            framing,
            agent: VecDeque::new(),
            fs: VecDeque::new(),
            next_id: 100,
        })
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// The next text frame, or the close frame that ended the socket.
    pub async fn next_frame(&mut self) -> Result<String, Option<CloseFrame>> {
        let next = tokio::time::timeout(TIMEOUT, async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                    Some(Ok(Message::Close(frame))) => return Err(frame),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Err(None),
                }
            }
        });
        next.await.expect("no frame in time")
    }

    /// Reads one frame into the agent or fs queue.
    async fn pump(&mut self) {
        let text = self
            .next_frame()
            .await
            .unwrap_or_else(|close| panic!("socket closed: {close:?}"));
        let value: Value = serde_json::from_str(&text).unwrap();
        match self.framing {
            Framing::Bare => self.agent.push_back(value),
            Framing::Envelope => {
                let data = value["data"].clone();
                match value["channel"].as_str() {
                    Some("agent") => self.agent.push_back(data),
                    Some("fs") => self.fs.push_back(data),
                    other => panic!("frame on channel {other:?}: {text}"),
                }
            }
        }
    }

    pub async fn next_agent(&mut self) -> Value {
        loop {
            if let Some(message) = self.agent.pop_front() {
                return message;
            }
            self.pump().await;
        }
    }

    pub async fn next_fs(&mut self) -> Value {
        loop {
            if let Some(message) = self.fs.pop_front() {
                return message;
            }
            self.pump().await;
        }
    }

    /// Sends an fs request and returns its reply (the next non-event fs
    /// message; events seen meanwhile stay queued).
    pub async fn fs(&mut self, request: Value) -> Value {
        self.send_fs(request).await;
        let mut skipped = Vec::new();
        let reply = loop {
            let message = self.next_fs().await;
            if message["type"] == "fs_event" {
                skipped.push(message);
            } else {
                break message;
            }
        };
        for event in skipped.into_iter().rev() {
            self.fs.push_front(event);
        }
        reply
    }

    pub async fn send_fs(&mut self, request: Value) {
        let frame = json!({ "channel": "fs", "data": request });
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_agent(&mut self, message: Value) {
        let text = match self.framing {
            Framing::Bare => message.to_string(),
            Framing::Envelope => json!({ "channel": "agent", "data": message }).to_string(),
        };
        self.send_text(text).await;
    }

    /// A JSON-RPC request and its response, answering nothing in between
    /// (for requests that do not call back).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        loop {
            let message = self.next_agent().await;
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    pub async fn send_request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send_agent(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// `initialize` then `session/new` in the workspace: the session id.
    pub async fn open_session(&mut self, cwd: &std::path::Path) -> String {
        let init = self
            .request(
                "initialize",
                json!({"protocolVersion": 1, "clientCapabilities": {}}),
            )
            .await;
        assert_eq!(init["result"]["protocolVersion"], 1, "{init}");
        let new = self
            .request("session/new", json!({"cwd": cwd, "mcpServers": []}))
            .await;
        new["result"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {new}"))
            .to_owned()
    }

    /// Runs one prompt, answering permission questions with `answer` (an
    /// option kind such as `allow_once`): the stop reason, the session
    /// updates and the permission requests seen.
    pub async fn prompt(&mut self, session: &str, text: &str, answer: &str) -> Turn {
        let params = json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]});
        let id = self.send_request("session/prompt", params).await;
        let mut turn = Turn::default();
        loop {
            let message = self.next_agent().await;
            match message["method"].as_str() {
                Some("session/update") => turn.updates.push(message["params"]["update"].clone()),
                Some("session/request_permission") => {
                    let reply = permission_answer(&message, answer);
                    turn.permissions.push(message["params"].clone());
                    self.send_agent(reply).await;
                }
                Some(other) => panic!("unexpected request {other}: {message}"),
                None if message["id"] == id => {
                    turn.stop_reason = message["result"]["stopReason"]
                        .as_str()
                        .unwrap_or_else(|| panic!("prompt failed: {message}"))
                        .to_owned();
                    return turn;
                }
                None => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The answer to a permission request choosing the option of kind `kind`.
pub fn permission_answer(request: &Value, kind: &str) -> Value {
    let options = request["params"]["options"].as_array().unwrap();
    let option = options
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} option in {request}"));
    json!({
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {"outcome": {"outcome": "selected", "optionId": option["optionId"]}},
    })
}

/// What one prompt produced.
#[derive(Debug, Default)]
pub struct Turn {
    pub stop_reason: String,
    pub updates: Vec<Value>,
    pub permissions: Vec<Value>,
}

impl Turn {
    /// The agent's text, chunks joined.
    pub fn text(&self) -> String {
        self.updates
            .iter()
            .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
            .filter_map(|u| u["content"]["text"].as_str())
            .collect()
    }

    /// Statuses reported for tool call `id`, in order.
    pub fn statuses(&self, id: &str) -> Vec<String> {
        self.updates
            .iter()
            .filter(|u| u["toolCallId"] == id)
            .filter_map(
                |u| match (u["status"].as_str(), u["sessionUpdate"].as_str()) {
                    (Some(status), _) => Some(status.to_owned()),
                    // A new tool call's status defaults to pending on the wire.
                    (None, Some("tool_call")) => Some("pending".to_owned()),
                    (None, _) => None,
                },
            )
            .collect()
    }
}
