//! One WebSocket: a writer task draining a bounded outbox, and the reader
//! loop that owns the socket's channels.
//!
//! Producers (the ACP connection, fs replies, watch events) put frames in
//! the socket's own [`Outbox`]; when it stays full for the slow-client
//! timeout, or the network does not take a frame within it, the client is
//! considered stuck and disconnected. Other sockets are never affected.
//!
//! The reader closes the socket when the client closes it, on a frame over
//! the size limit (1009), when nothing (not even a pong) arrived within the
//! idle timeout, when the client is stuck (1008), and when the server
//! drains (1001). Dropping the channels then ends the ACP connection, which
//! cancels its turns, and stops the fs watches. A socket the server closes
//! stays open (reading and dropping frames) until the client answers the
//! close frame, for at most [`CLOSE_HANDSHAKE`], so that nothing the client
//! sent late turns the end of the connection into a reset.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::drain::Drain;
use crate::options::Limits;

/// The socket is gone (or going): nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the socket is closed")]
pub struct Closed;

/// The sending side of a socket, cheap to clone. Bounded twice: in frames
/// (the channel) and in bytes (a semaphore whose permits travel with each
/// queued frame and are returned once it is written).
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    stuck: CancellationToken,
    patience: Duration,
}

/// A frame waiting for the writer, holding its share of the byte budget.
struct Queued {
    message: Message,
    _bytes: OwnedSemaphorePermit,
}

impl Outbox {
    /// Queues a text frame, waiting (bounded) for room.
    pub async fn send_text(&self, text: String) -> Result<(), Closed> {
        let deadline = Instant::now() + self.patience;
        // A frame larger than the whole budget waits for all of it.
        let cost = u32::try_from(text.len().clamp(1, self.max_bytes)).unwrap_or(u32::MAX);
        let bytes = Arc::clone(&self.bytes).acquire_many_owned(cost);
        let permit = match tokio::time::timeout_at(deadline, bytes).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Closed),
            Err(_) => return Err(self.give_up()),
        };
        let queued = Queued {
            message: Message::text(text),
            _bytes: permit,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.tx.send_timeout(queued, wait).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(self.give_up()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Closed),
        }
    }

    fn give_up(&self) -> Closed {
        tracing::info!("a WebSocket client is not reading; disconnecting it");
        self.stuck.cancel();
        Closed
    }
}

/// An outbox without a socket, for tests: its frames are taken from the
/// returned queue.
#[cfg(test)]
pub struct Detached(mpsc::Receiver<Queued>);

#[cfg(test)]
impl Detached {
    /// The next queued text frame, if any.
    pub fn try_next(&mut self) -> Option<String> {
        match self.0.try_recv().ok()?.message {
            Message::Text(text) => Some(text.as_str().to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
impl Outbox {
    /// An outbox of `frames` slots (and ample bytes) with no socket.
    pub fn detached(frames: usize) -> (Self, Detached) {
        let (tx, rx) = mpsc::channel(frames);
        let max_bytes = 1 << 20;
        let outbox = Self {
            tx,
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            stuck: CancellationToken::new(),
            patience: Duration::from_secs(10),
        };
        (outbox, Detached(rx))
    }
}

/// What the reader does with the frames of one kind of socket.
pub trait Frames: Send {
    /// Handles a text frame; `Err` closes the socket.
    fn text(&mut self, text: String) -> impl Future<Output = Result<(), Closed>> + Send;
    /// Handles a binary frame.
    fn binary(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), Closed>> + Send;
    /// Unanswered prompts of the socket's ACP connection, if it has one.
    fn prompts(&self) -> Option<watch::Receiver<usize>>;
}

/// Why the reader stopped.
enum End {
    /// The client closed the socket, or the connection broke.
    Gone,
    /// The server closes it, telling the client why.
    Close(u16, &'static str),
}

/// Runs a socket until it closes. `channels` builds the socket's channels
/// around its outbox.
pub async fn run<F: Frames>(
    socket: WebSocket,
    limits: &Limits,
    drain: &Drain,
    channels: impl FnOnce(Outbox) -> F,
) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(limits.socket_queue);
    let stuck = CancellationToken::new();
    let max_bytes = limits.socket_queue_bytes.clamp(1, Semaphore::MAX_PERMITS);
    let outbox = Outbox {
        tx,
        bytes: Arc::new(Semaphore::new(max_bytes)),
        max_bytes,
        stuck: stuck.clone(),
        patience: limits.slow_client_timeout,
    };
    let (close_tx, close_rx) = oneshot::channel();
    let writer = Writer {
        rx,
        close: close_rx,
        stuck: stuck.clone(),
        ping_interval: limits.ping_interval,
        patience: limits.slow_client_timeout,
    };
    let writer = tokio::spawn(writer.run(sink));
    let mut frames = channels(outbox);
    let end = read(&mut stream, &mut frames, limits.idle_timeout, &stuck, drain).await;
    let frame = match end {
        End::Gone => None,
        End::Close(code, reason) => Some(CloseFrame {
            code,
            reason: reason.into(),
        }),
    };
    let ours = frame.is_some();
    let _ = close_tx.send(frame);
    // The channels go first: that ends the ACP connection and the watches.
    drop(frames);
    if ours {
        // The connection ends once both halves are gone.
        let (_, ()) = tokio::join!(writer, await_close(stream));
    } else {
        let _ = writer.await;
    }
}

/// How long a socket the server closes waits for the client's close frame.
pub const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// After the server's close frame, reads (and drops) what the client still
/// sends until its close frame answers, the connection ends, or
/// [`CLOSE_HANDSHAKE`] passes (RFC 6455 section 7.1.1). A connection closed
/// with unread data in it is reset instead, and a reset can destroy the
/// close frame (and the last messages) before the client reads them.
async fn await_close(mut stream: SplitStream<WebSocket>) {
    let answered = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, answered).await;
}

async fn read<F: Frames>(
    stream: &mut SplitStream<WebSocket>,
    frames: &mut F,
    idle_timeout: Duration,
    stuck: &CancellationToken,
    drain: &Drain,
) -> End {
    let mut draining = false;
    let mut deadline = Instant::now() + idle_timeout;
    loop {
        let prompts = frames.prompts();
        tokio::select! {
            biased;
            () = stuck.cancelled() => return End::Close(close_code::POLICY, "client is not reading"),
            () = drain.forced() => return End::Close(close_code::AWAY, "server shutting down"),
            () = drain.stopping(), if !draining => draining = true,
            () = prompts_done(prompts), if draining => {
                return End::Close(close_code::AWAY, "server shutting down");
            }
            () = tokio::time::sleep_until(deadline) => return End::Close(close_code::NORMAL, "idle timeout"),
            frame = stream.next() => {
                deadline = Instant::now() + idle_timeout;
                let handled = match frame {
                    Some(Ok(Message::Text(text))) => frames.text(text.as_str().to_owned()).await,
                    Some(Ok(Message::Binary(bytes))) => frames.binary(bytes.to_vec()).await,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => return End::Gone,
                    Some(Err(error)) => return read_error(&error),
                };
                if handled.is_err() {
                    return End::Close(close_code::ERROR, "the connection failed");
                }
            }
        }
    }
}

/// Resolves when no prompt is running (at once without an ACP connection).
async fn prompts_done(prompts: Option<watch::Receiver<usize>>) {
    if let Some(mut prompts) = prompts
        && prompts.wait_for(|open| *open == 0).await.is_err()
    {
        // The connection is gone, so nothing runs.
    }
}

/// The close a read error calls for (RFC 6455 section 7.4.1): 1009 for a
/// message over the limit, 1002 for a frame that breaks the protocol, 1007
/// for text that is not UTF-8; a broken connection gets none.
fn read_error(error: &axum::Error) -> End {
    let source = std::error::Error::source(error);
    let cause = source.and_then(|e| e.downcast_ref::<tungstenite::Error>());
    tracing::debug!(%error, "WebSocket read failed");
    match cause {
        Some(tungstenite::Error::Capacity(_)) => End::Close(close_code::SIZE, "message too big"),
        Some(tungstenite::Error::Protocol(_)) => {
            End::Close(close_code::PROTOCOL, "protocol violation")
        }
        Some(tungstenite::Error::Utf8(_)) => End::Close(close_code::INVALID, "text is not UTF-8"),
        _ => End::Gone,
    }
}

/// The task that owns the sending half.
struct Writer {
    rx: mpsc::Receiver<Queued>,
    close: oneshot::Receiver<Option<CloseFrame>>,
    stuck: CancellationToken,
    ping_interval: Duration,
    patience: Duration,
}

impl Writer {
    async fn run(mut self, mut sink: SplitSink<WebSocket, Message>) {
        let start = Instant::now() + self.ping_interval;
        let mut ping = tokio::time::interval_at(start, self.ping_interval);
        loop {
            tokio::select! {
                biased;
                frame = &mut self.close => {
                    self.finish(&mut sink, frame.ok().flatten()).await;
                    return;
                }
                () = self.stuck.cancelled() => return,
                queued = self.rx.recv() => {
                    let Some(queued) = queued else { return };
                    if !self.write(&mut sink, queued.message).await {
                        return;
                    }
                }
                _ = ping.tick() => {
                    if !self.write(&mut sink, Message::Ping(Default::default())).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends what was already queued (say, the error reply that explains
    /// the close), then the close frame.
    async fn finish(
        &mut self,
        sink: &mut SplitSink<WebSocket, Message>,
        frame: Option<CloseFrame>,
    ) {
        while let Ok(queued) = self.rx.try_recv() {
            if !self.write(sink, queued.message).await {
                return;
            }
        }
        if let Some(frame) = frame {
            let _ = self.write(sink, Message::Close(Some(frame))).await;
        }
        let _ = tokio::time::timeout(self.patience, sink.close()).await;
    }

    /// `false` when the socket is broken or the client does not take the
    /// frame in time (then it is marked stuck).
    async fn write(&self, sink: &mut SplitSink<WebSocket, Message>, message: Message) -> bool {
        match tokio::time::timeout(self.patience, sink.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "WebSocket write failed");
                self.stuck.cancel();
                false
            }
            Err(_) => {
                tracing::info!("a WebSocket client stopped reading; disconnecting it");
                self.stuck.cancel();
                false
            }
        }
    }
}
