//! `openheim acp --connect URL`: a local stdio ACP agent that relays every
//! JSON-RPC message both ways between the editor (stdin/stdout) and a
//! remote openheim's `/acp` WebSocket (docs/acp.md, "Connecting an editor
//! to a remote server").
//!
//! Messages pass through as they are, with two exceptions kept by
//! [`relay::Relay`]: the ids of the server's requests to the editor are
//! the bridge's own, and what is needed to take over from a dropped socket
//! is remembered. When the socket drops, the editor's requests in flight
//! are answered with an error, and a new socket is opened (at once, then
//! backing off up to 30 s) on which the editor's `initialize` is sent again
//! and its sessions are resumed (`session/resume`, or `session/load` with
//! the replay withheld when the server cannot resume). While there is no
//! socket, each request of the editor tries to open one and is answered
//! with the reason when that fails.

mod error;
mod relay;
mod socket;

use std::pin::Pin;
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

pub use error::BridgeError;
use relay::{INTERNAL_ERROR, Message, PARSE_ERROR, Relay, error_answer};
use socket::{Connecter, Socket};
pub use socket::{Endpoint, Token};

/// How often an idle socket is pinged (proxies close quiet connections).
const PING_EVERY: Duration = Duration::from_secs(20);

/// How long the server may take to answer each request of a resumption.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits between attempts to reconnect, the last one repeated.
const BACKOFF_MS: [u64; 8] = [250, 500, 1000, 2000, 4000, 8000, 15000, 30000];

/// Prefix of what the bridge says on stderr.
const SAYS: &str = "openheim acp --connect";

/// What the bridge connects to.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// `wss://HOST/acp`, or `ws://` to a loopback address.
    pub url: String,
    /// The bearer token, read by the binary from the named variable.
    pub token: Option<Token>,
}

type Lines = Pin<Box<dyn Stream<Item = std::io::Result<String>> + Send>>;

/// Relays between `input`/`output` (the editor) and the endpoint until the
/// editor closes `input`.
pub async fn run<R, W>(options: BridgeOptions, input: R, output: W) -> Result<(), BridgeError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Unpin,
{
    let endpoint = Endpoint::parse(&options.url)?;
    let max = openheim_acp::MAX_LINE_BYTES;
    let mut bridge = Bridge {
        connecter: Connecter::new(endpoint, options.token, max)?,
        relay: Relay::default(),
        editor: Editor { writer: output },
        failures: 0,
        retry_at: Instant::now(),
        last_error: None,
        dropped: false,
        calls: 0,
    };
    let mut input: Lines = Box::pin(openheim_acp::line_stream(input, max));
    loop {
        let Some((socket, first)) = bridge.reconnect(&mut input).await? else {
            return Ok(());
        };
        match bridge
            .relay_until_dropped(socket, first, &mut input)
            .await?
        {
            None => return Ok(()),
            Some(reason) => bridge.lost(reason).await?,
        }
    }
}

struct Bridge<W> {
    connecter: Connecter,
    relay: Relay,
    editor: Editor<W>,
    /// Failed attempts since the last socket.
    failures: usize,
    retry_at: Instant,
    /// The last failure reported on stderr (each is said once).
    last_error: Option<String>,
    /// Whether a socket dropped and none has replaced it yet.
    dropped: bool,
    /// Requests the bridge made itself (ids `openheim-bridge-N`).
    calls: u64,
}

impl<W: AsyncWrite + Unpin> Bridge<W> {
    /// Waits for a socket: tries at once, then on each request of the
    /// editor and, once the editor initialized, on a backing-off timer.
    /// Returns the socket and the editor's line that is still to be sent;
    /// `None` when the editor closed its stream.
    async fn reconnect(
        &mut self,
        input: &mut Lines,
    ) -> Result<Option<(Socket, Option<String>)>, BridgeError> {
        loop {
            if Instant::now() >= self.retry_at
                && let Ok(socket) = self.attempt().await
            {
                return Ok(Some((socket, None)));
            }
            let background = self.relay.initialize_params().is_some();
            tokio::select! {
                line = input.next() => {
                    let Some(line) = line.transpose().map_err(BridgeError::Editor)? else {
                        return Ok(None);
                    };
                    match Message::parse(&line) {
                        Message::Request { id, .. } => match self.attempt().await {
                            Ok(socket) => return Ok(Some((socket, Some(line)))),
                            Err(error) => {
                                let code = INTERNAL_ERROR;
                                let answer = error_answer(&id, code, &error.to_string(), error.retryable());
                                self.editor.send(&answer).await?;
                            }
                        },
                        Message::Invalid => self.editor.send(&parse_error()).await?,
                        _ => tracing::debug!("no connection to the server: a message of the editor was dropped"),
                    }
                }
                () = tokio::time::sleep_until(self.retry_at), if background => {}
            }
        }
    }

    /// Opens a socket and restores the editor's connection on it; reports
    /// a failure on stderr (once per distinct failure) and backs off.
    async fn attempt(&mut self) -> Result<Socket, BridgeError> {
        let opened = match self.connecter.open().await {
            Ok(mut socket) => self.restore(&mut socket).await.map(|n| (socket, n)),
            Err(error) => Err(error),
        };
        match opened {
            Ok((socket, resumed)) => {
                if self.dropped {
                    eprintln!(
                        "{SAYS}: reconnected to {}; {resumed} session(s) resumed",
                        self.connecter.endpoint().shown()
                    );
                }
                (self.failures, self.dropped, self.last_error) = (0, false, None);
                Ok(socket)
            }
            Err(error) => {
                let text = error.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    eprintln!("{SAYS}: {text}");
                    self.last_error = Some(text);
                }
                let wait = BACKOFF_MS[self.failures.min(BACKOFF_MS.len() - 1)];
                self.failures += 1;
                self.retry_at = Instant::now() + Duration::from_millis(wait);
                Err(error)
            }
        }
    }

    /// On a new socket: the editor's `initialize` again, then each of its
    /// sessions resumed. A session the server will not resume is
    /// forgotten (said on stderr); the number resumed.
    async fn restore(&mut self, socket: &mut Socket) -> Result<usize, BridgeError> {
        let Some(params) = self.relay.initialize_params().cloned() else {
            return Ok(0);
        };
        let answer = self.call(socket, "initialize", params).await?;
        let can_resume = answer
            .pointer("/agentCapabilities/sessionCapabilities/resume")
            .is_some_and(|v| !v.is_null());
        let method = if can_resume {
            "session/resume"
        } else {
            "session/load"
        };
        let mut resumed = 0;
        for (session, setup) in self.relay.sessions() {
            let params =
                json!({"sessionId": session, "cwd": setup.cwd, "mcpServers": setup.mcp_servers});
            match self.call(socket, method, params).await {
                Ok(_) => resumed += 1,
                Err(BridgeError::Restore { message, .. }) => {
                    eprintln!("{SAYS}: session {session} could not be resumed: {message}");
                    self.relay.forget_session(&session);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(resumed)
    }

    /// A request of the bridge's own on `socket`; its result. Requests of
    /// the server meanwhile go to the editor; its notifications (what the
    /// editor already has: a replay, the session's commands) are withheld.
    async fn call(
        &mut self,
        socket: &mut Socket,
        method: &str,
        params: Value,
    ) -> Result<Value, BridgeError> {
        self.calls += 1;
        let id = Value::from(format!("openheim-bridge-{}", self.calls));
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let endpoint = self.connecter.endpoint().shown().to_owned();
        let dropped = |reason: String| BridgeError::Dropped {
            endpoint: endpoint.clone(),
            reason,
        };
        socket
            .send(Frame::text(request.to_string()))
            .await
            .map_err(|e| dropped(e.to_string()))?;
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| BridgeError::Timeout {
                    endpoint: endpoint.clone(),
                    secs: RESTORE_TIMEOUT.as_secs(),
                })?;
            let text = match next {
                Some(Ok(Frame::Text(text))) => text,
                Some(Ok(Frame::Close(_))) | None => return Err(dropped("closed".to_owned())),
                Some(Err(e)) => return Err(dropped(e.to_string())),
                Some(Ok(_)) => continue,
            };
            match Message::parse(text.as_str()) {
                Message::Response { id: got, value } if got == id => {
                    return match value.get("error") {
                        Some(error) => Err(BridgeError::Restore {
                            method: method.to_owned(),
                            message: error["message"].as_str().unwrap_or("?").to_owned(),
                        }),
                        None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                    };
                }
                Message::Request { id, value, .. } => {
                    let request = self.relay.remote_request(id, value);
                    self.editor.send(&request).await?;
                }
                _ => {}
            }
        }
    }

    /// Relays until the editor closes its stream (`None`) or the socket
    /// drops (`Some(reason)`). `first` is an editor line still to be sent.
    async fn relay_until_dropped(
        &mut self,
        mut socket: Socket,
        first: Option<String>,
        input: &mut Lines,
    ) -> Result<Option<String>, BridgeError> {
        if let Some(line) = first
            && let Err(reason) = self.send_to_server(&mut socket, &line).await?
        {
            return Ok(Some(reason));
        }
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                line = input.next() => {
                    let Some(line) = line.transpose().map_err(BridgeError::Editor)? else {
                        let _ = socket.close(None).await;
                        return Ok(None);
                    };
                    if let Err(reason) = self.send_to_server(&mut socket, &line).await? {
                        return Ok(Some(reason));
                    }
                }
                frame = socket.next() => match frame {
                    Some(Ok(Frame::Text(text))) => self.send_to_editor(text.as_str()).await?,
                    Some(Ok(Frame::Binary(bytes))) => {
                        self.send_to_editor(&String::from_utf8_lossy(&bytes)).await?;
                    }
                    Some(Ok(Frame::Close(frame))) => {
                        let reason = frame
                            .filter(|f| !f.reason.is_empty())
                            .map(|f| format!("the server closed it ({})", f.reason))
                            .unwrap_or_else(|| "the server closed it".to_owned());
                        return Ok(Some(reason));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Ok(Some(error.to_string())),
                    None => return Ok(Some("the server closed it".to_owned())),
                },
                _ = ping.tick() => {
                    if let Err(error) = socket.send(Frame::Ping(Default::default())).await {
                        return Ok(Some(error.to_string()));
                    }
                }
            }
        }
    }

    /// One line of the editor to the server. The outer error is the
    /// editor's; the inner one is why the socket failed.
    async fn send_to_server(
        &mut self,
        socket: &mut Socket,
        line: &str,
    ) -> Result<Result<(), String>, BridgeError> {
        let text = match Message::parse(line) {
            Message::Invalid => {
                self.editor.send(&parse_error()).await?;
                return Ok(Ok(()));
            }
            Message::Request { id, method, value } => {
                self.relay.editor_request(&id, &method, &value);
                line.to_owned()
            }
            Message::Response { id, value } => match self.relay.editor_response(&id, value) {
                Some(answer) => answer.to_string(),
                None => {
                    tracing::debug!(%id, "an answer to a request of a dropped connection was dropped");
                    return Ok(Ok(()));
                }
            },
            Message::Notification(_) | Message::Other(_) => line.to_owned(),
        };
        Ok(socket
            .send(Frame::text(text))
            .await
            .map_err(|e| e.to_string()))
    }

    /// One message of the server to the editor.
    async fn send_to_editor(&mut self, text: &str) -> Result<(), BridgeError> {
        match Message::parse(text) {
            Message::Request { id, value, .. } => {
                let request = self.relay.remote_request(id, value);
                self.editor.send(&request).await
            }
            Message::Response { id, value } => {
                self.relay.remote_response(&id, &value);
                self.editor.send(&Value::Object(value)).await
            }
            Message::Notification(value) => self.editor.send(&Value::Object(value)).await,
            Message::Other(value) => self.editor.send(&value).await,
            Message::Invalid => {
                tracing::warn!("the server sent a message that is not JSON; dropped");
                Ok(())
            }
        }
    }

    /// The socket dropped: the editor's requests in flight are answered,
    /// the server's requests withdrawn, and a new socket is tried at once.
    async fn lost(&mut self, reason: String) -> Result<(), BridgeError> {
        let endpoint = self.connecter.endpoint().shown().to_owned();
        eprintln!("{SAYS}: the connection to {endpoint} dropped ({reason}); reconnecting");
        let what = format!("the connection to {endpoint} dropped");
        for message in self.relay.dropped(&what) {
            self.editor.send(&message).await?;
        }
        (self.dropped, self.failures, self.last_error) = (true, 0, None);
        self.retry_at = Instant::now();
        Ok(())
    }
}

fn parse_error() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": PARSE_ERROR, "message": "Parse error: the line is not a JSON-RPC message"},
    })
}

/// The editor's side: one JSON message per line.
struct Editor<W> {
    writer: W,
}

impl<W: AsyncWrite + Unpin> Editor<W> {
    async fn send(&mut self, message: &Value) -> Result<(), BridgeError> {
        let mut line = message.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(BridgeError::Editor)?;
        self.writer.flush().await.map_err(BridgeError::Editor)
    }
}
