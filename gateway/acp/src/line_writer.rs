//! The output half of a line transport: messages are handed to one writer
//! task, which writes every message waiting at that moment in one write and
//! one flush.
//!
//! The SDK sends and flushes each message on its own. On `tokio::io::stdout`
//! every write and every flush is a trip through the blocking thread pool,
//! so a reply streamed in small chunks cost two such trips per chunk (about
//! 0.4 ms each on a loaded two-core machine: most of a turn's time in
//! `openheim acp`, docs/performance.md). Now a message counts as sent once
//! the writer task has it; the writer writes as fast as the output takes
//! them, and messages that arrive meanwhile go out together.
//!
//! Order is kept (one queue, one writer). At most [`QUEUED_LINES`] messages
//! wait; past that, sending waits for the writer (a client that stops
//! reading slows the agent down instead of growing its memory). Closing the
//! sink waits until everything queued is written and flushed, so the last
//! answer is out before the process exits. A write error ends the writer;
//! the next send or the close reports it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::channel::mpsc;
use futures::{Sink, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Messages waiting for the writer at most.
pub const QUEUED_LINES: usize = 256;

/// A batch stops growing past this many bytes (a written batch is one
/// buffer; an image-sized message is a batch of its own).
const BATCH_BYTES: usize = 256 * 1024;

/// A sink of lines (without their newline) written to `writer` by a task of
/// its own; call within a Tokio runtime.
pub fn line_writer<W>(writer: W) -> LineWriter
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (queue, lines) = mpsc::channel(QUEUED_LINES);
    LineWriter {
        queue,
        task: Some(tokio::spawn(write_lines(writer, lines))),
    }
}

/// Writes what arrives on `lines`, everything waiting at once, until the
/// queue closes; then flushes.
async fn write_lines<W>(mut writer: W, mut lines: mpsc::Receiver<String>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    while let Some(line) = lines.next().await {
        batch.clear();
        push_line(&mut batch, &line);
        while batch.len() < BATCH_BYTES {
            match lines.try_recv() {
                Ok(line) => push_line(&mut batch, &line),
                // Nothing waiting, or closed: write what there is.
                Err(_) => break,
            }
        }
        writer.write_all(&batch).await?;
        writer.flush().await?;
    }
    writer.flush().await
}

fn push_line(batch: &mut Vec<u8>, line: &str) {
    batch.extend_from_slice(line.as_bytes());
    batch.push(b'\n');
}

/// See [`line_writer`].
pub struct LineWriter {
    queue: mpsc::Sender<String>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl LineWriter {
    /// The writer's end: its error, or a broken pipe if it ended without
    /// one (it only ends early on an error).
    fn poll_writer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let ended = ready!(Pin::new(task).poll(cx));
        self.task = None;
        Poll::Ready(match ended {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(format!(
                "the output writer failed: {join}"
            ))),
        })
    }

    fn writer_gone(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_writer(cx))?;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the output is closed",
        )))
    }
}

impl Sink<String> for LineWriter {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.queue.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) => this.writer_gone(cx),
            Poll::Pending => Poll::Pending,
        }
    }

    fn start_send(self: Pin<&mut Self>, line: String) -> io::Result<()> {
        self.get_mut()
            .queue
            .start_send(line)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the output is closed"))
    }

    /// Handed to the writer is sent: see the module's documentation.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue.close_channel();
        this.poll_writer(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_arrive_in_order_and_all_are_out_once_closed() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut sink = line_writer(ours);
        for i in 0..1000 {
            sink.send(format!("{{\"n\":{i}}}")).await.unwrap();
        }
        sink.close().await.unwrap();
        let mut out = String::new();
        theirs.read_to_string(&mut out).await.unwrap();
        let expected: String = (0..1000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_holds_the_sender_back() {
        // A tiny pipe nobody reads: the writer blocks, the queue fills, and
        // sending then waits instead of buffering without end.
        let (ours, theirs) = tokio::io::duplex(64);
        let mut sink = line_writer(ours);
        let mut sent = 0;
        let stuck = tokio::time::timeout(std::time::Duration::from_millis(300), async {
            loop {
                sink.send("x".repeat(100)).await.unwrap();
                sent += 1;
            }
        })
        .await;
        assert!(stuck.is_err(), "sending never waited");
        // What waits: the queue, plus one batch the writer took out of it.
        let line = 101;
        assert!(
            sent * line <= BATCH_BYTES + line + (QUEUED_LINES + 2) * line,
            "{sent} messages accepted with nobody reading"
        );
        drop(theirs);
    }

    #[tokio::test]
    async fn a_closed_output_is_reported_to_the_sender() {
        let (ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let mut sink = line_writer(ours);
        let mut failed = None;
        for _ in 0..10 {
            if let Err(error) = sink.send("{}".to_owned()).await {
                failed = Some(error);
                break;
            }
            tokio::task::yield_now().await;
        }
        let error = match failed {
            Some(error) => error,
            None => sink.close().await.unwrap_err(),
        };
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
    }
}
