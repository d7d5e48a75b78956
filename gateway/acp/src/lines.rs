//! Newline-delimited JSON-RPC over any byte stream (stdin/stdout for
//! `openheim acp`).
//!
//! The SDK's own byte-stream adapters end the connection on a line that is
//! not UTF-8; here such a line is decoded lossily, so it reaches the SDK as
//! text that is not JSON and is answered with a parse error like any other
//! malformed line. Lines are bounded: a longer one is dropped (and answered
//! with a parse error) instead of growing a buffer without limit.

use std::io;

use agent_client_protocol::Lines;
use futures::{Sink, Stream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest line accepted; prompts carry base64 images, so it is large.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// A transport reading lines from `reader` and writing lines to `writer`.
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
    let outgoing = futures::sink::unfold(writer, |mut writer, line: String| async move {
        writer.write_all(line.as_bytes()).await?;
        writer.write_all(b"\n").await?;
        writer.flush().await?;
        Ok::<_, io::Error>(writer)
    });
    let incoming = futures::stream::unfold(BufReader::new(reader), move |mut reader| async move {
        match next_line(&mut reader, max_line).await {
            Ok(Some(line)) => Some((Ok(line), reader)),
            Ok(None) => None,
            Err(error) => Some((Err(error), reader)),
        }
    });
    Lines::new(Box::pin(outgoing), Box::pin(incoming))
}

/// The next non-blank line without its line ending; `None` at the end.
async fn next_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max_line: usize,
) -> io::Result<Option<String>> {
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(max_line)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let read = (&mut *reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        if line.len() > max_line && line.last() != Some(&b'\n') {
            skip_rest_of_line(reader).await?;
            return Ok(Some(format!(
                "<a line longer than {max_line} bytes was dropped>"
            )));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

async fn skip_rest_of_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
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
        let input = b"{\"a\":1}\r\n\n  \n\xff\xfe x\n0123456789abc\nlast";
        let got = lines(input, 10).await;
        assert_eq!(got[0], "{\"a\":1}");
        assert_eq!(got[1], "\u{FFFD}\u{FFFD} x");
        assert!(got[2].contains("longer than 10 bytes"), "{got:?}");
        assert_eq!(got[3], "last");
        assert_eq!(got.len(), 4);
    }
}
