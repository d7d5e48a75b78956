//! Newline-delimited JSON-RPC over any byte stream (stdin/stdout for
//! `openheim acp`).
//!
//! The SDK's own byte-stream adapters end the connection on a line that is
//! not UTF-8; here such a line is decoded lossily, so it reaches the SDK as
//! text that is not JSON and is answered with a parse error like any other
//! malformed line. Hostile input costs little (docs/acp.md, "Limits"): a
//! line that cannot be a JSON-RPC message (its first byte is not `{` or
//! `[`) is skipped as it streams by, never buffered; a line longer than the
//! cap is dropped once the cap is reached; a long line that is not JSON is
//! replaced by a short note before the SDK sees it (the SDK quotes the whole
//! line in its parse error). Each of these is answered with a parse error.

use std::io;

use agent_client_protocol::Lines;
use futures::{Sink, Stream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};

use crate::gate;
use crate::line_writer::line_writer;

/// The longest line accepted, the same as a `/acp` WebSocket frame; prompts
/// carry base64 images, so it is large.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Lines at most this long reach the SDK as they are, even when they are
/// not JSON: its parse error may quote them.
const QUOTABLE_LINE_BYTES: usize = 64 * 1024;

/// Read buffer of the input.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A transport reading lines from `reader` and writing lines to `writer`
/// (through a writer task: [`line_writer`]); call within a Tokio runtime.
pub fn transport<R, W>(
    reader: R,
    writer: W,
    max_line: usize,
) -> Lines<
    impl Sink<String, Error = io::Error> + Send + 'static,
    impl Stream<Item = io::Result<String>> + Send + 'static,
>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    gate::lines(
        Box::pin(line_writer(writer)),
        Box::pin(line_stream(reader, max_line)),
    )
}

/// The lines of `reader` under the same caps as [`transport`]'s input (a
/// line that cannot be a message, or is too long, arrives as a short note
/// that is not JSON); for relays of the stream such as `openheim acp
/// --connect`.
pub fn line_stream<R>(
    reader: R,
    max_line: usize,
) -> impl Stream<Item = io::Result<String>> + Send + 'static
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    futures::stream::unfold(reader, move |mut reader| async move {
        match next_line(&mut reader, max_line).await {
            Ok(Some(line)) => Some((Ok(line), reader)),
            Ok(None) => None,
            Err(error) => Some((Err(error), reader)),
        }
    })
}

/// The next non-blank line without its line ending (and without leading
/// blanks); `None` at the end.
async fn next_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max_line: usize,
) -> io::Result<Option<String>> {
    let Some(first) = skip_blanks(reader).await? else {
        return Ok(None);
    };
    if first != b'{' && first != b'[' {
        let skipped = skip_rest_of_line(reader).await?;
        return Ok(Some(format!(
            "<a line of {skipped} bytes that is not a JSON-RPC message was dropped>"
        )));
    }
    let mut line = Vec::new();
    let limit = u64::try_from(max_line)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?;
    if line.len() > max_line && line.last() != Some(&b'\n') {
        skip_rest_of_line(reader).await?;
        return Ok(Some(format!(
            "<a line longer than {max_line} bytes was dropped>"
        )));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    if line.len() > QUOTABLE_LINE_BYTES
        && serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err()
    {
        return Ok(Some(format!(
            "<a line of {} bytes that is not JSON was dropped>",
            line.len()
        )));
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Consumes blanks and blank lines; the first other byte, left unread, or
/// `None` at the end.
async fn skip_blanks<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<Option<u8>> {
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(None);
        }
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let first = buffer[at];
                reader.consume(at);
                return Ok(Some(first));
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

/// Consumes the rest of the line, its newline included; the bytes skipped.
async fn skip_rest_of_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(skipped);
        }
        let (used, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        reader.consume(used);
        skipped += u64::try_from(used).unwrap_or(u64::MAX);
        if done {
            return Ok(skipped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut reader = BufReader::new(input);
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader, max).await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn bad_utf8_blank_and_long_lines_do_not_end_the_stream() {
        let input = b"{\"a\":1}\r\n\n  \n{\xff\xfe x\n{123456789abc\nlast\n[1]";
        let got = lines(input, 10).await;
        assert_eq!(got[0], "{\"a\":1}");
        assert_eq!(got[1], "{\u{FFFD}\u{FFFD} x");
        assert!(got[2].contains("longer than 10 bytes"), "{got:?}");
        assert!(got[3].contains("5 bytes that is not a JSON-RPC"), "{got:?}");
        assert_eq!(got[4], "[1]");
        assert_eq!(got.len(), 5);
    }

    #[tokio::test]
    async fn long_lines_that_are_not_json_are_not_passed_on() {
        let mut input = b"{".to_vec();
        input.extend(std::iter::repeat_n(b'x', QUOTABLE_LINE_BYTES + 1));
        input.extend(b"\n{\"ok\":true}\n");
        let got = lines(&input, MAX_LINE_BYTES).await;
        assert!(
            got[0].contains("is not JSON was dropped"),
            "{}",
            &got[0][..80]
        );
        assert_eq!(got[1], "{\"ok\":true}");
    }

    #[tokio::test]
    async fn garbage_is_skipped_without_being_buffered() {
        // Far over the cap, never held: only the read buffer is used.
        let garbage = vec![b'g'; 3 * READ_BUFFER_BYTES];
        let mut input = garbage.clone();
        input.extend(b"\n{}\n");
        let got = lines(&input, 16).await;
        assert_eq!(
            got,
            [
                format!(
                    "<a line of {} bytes that is not a JSON-RPC message was dropped>",
                    garbage.len() + 1
                ),
                "{}".to_owned()
            ]
        );
    }
}
