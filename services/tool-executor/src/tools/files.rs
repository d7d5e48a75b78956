//! `read_file` and `write_file`: the model's basic file tools, every path
//! resolved through the workspace sandbox.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use openheim_proto::common::v1::{FileDiff, Image, ToolDefinition, ToolKind};
use openheim_proto::image;
use openheim_tool_rules::args::{READ_FILE as READ, ReadArgs, WRITE_FILE as WRITE, WriteArgs};
use openheim_tool_rules::truncate::without_partial_char_at_end;

use super::window::{End, PastEnd, Window, read_window};
use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::sandbox::Access;

/// Room kept below the output budget for the continuation note, so the
/// registry's cap does not cut the middle out of a file we already cut.
const NOTE_ROOM: usize = 128;
/// A NUL byte in this many leading bytes marks a file as binary.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Reads lines of a text file, up to the output budget.
pub(crate) struct ReadFile;

#[async_trait::async_trait]
impl ToolHandler for ReadFile {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            READ,
            "Read a text or image file. Paths are relative to the workspace root. offset (1-based line) and limit (lines) select a part.",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"}
                },
                "required": ["path"]
            }),
            ToolKind::Read,
            true,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: ReadArgs = parse_args(READ, args)?;
        let real = ctx.workspace.resolve(&args.path, Access::Read)?;
        let budget = ctx.max_result_bytes.saturating_sub(NOTE_ROOM);
        let (path, offset, limit) = (args.path.clone(), args.offset, args.limit);
        let read =
            tokio::task::spawn_blocking(move || read_file(&path, &real, offset, limit, budget))
                .await
                .map_err(|e| ToolError::Failed(format!("reading {:?} failed: {e}", args.path)))??;
        Ok(match read {
            FileRead::Text(read) => text_output(ctx, read),
            FileRead::Image(read) => image_output(ctx, read),
        })
    }
}

fn text_output(ctx: &ToolContext, read: TextRead) -> ToolOutput {
    let window = read.window;
    let mut text = String::from_utf8_lossy(&window.text).into_owned();
    if let Some(note) = continuation_note(&window, read.size) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&note);
    }
    let raw_output = serde_json::json!({
        "path": ctx.workspace.relative(&read.real),
        "size": read.size,
        "first_line": window.first_line,
        "lines": window.lines,
        "next_offset": window.next_offset(),
        "truncated": window.end != End::Eof,
    });
    ToolOutput {
        text,
        raw_output,
        diffs: Vec::new(),
        images: Vec::new(),
    }
}

/// An image goes to the model as an image part; the text names it, so a
/// model without vision (which gets a note in place of the image) and the
/// user's transcript still know what was read.
fn image_output(ctx: &ToolContext, read: ImageRead) -> ToolOutput {
    let path = ctx.workspace.relative(&read.real);
    let size = read.image.data.len();
    let text = format!(
        "Image {path} ({}, {size} bytes), attached.",
        read.image.mime_type
    );
    let raw_output = serde_json::json!({
        "path": path,
        "size": size,
        "mime_type": read.image.mime_type,
    });
    ToolOutput {
        text,
        raw_output,
        diffs: Vec::new(),
        images: vec![read.image],
    }
}

/// What [`read_file`] found: lines of text, or a whole image.
enum FileRead {
    Text(TextRead),
    Image(ImageRead),
}

struct ImageRead {
    real: PathBuf,
    image: Image,
}

/// The lines [`read_file`] read of a text file.
struct TextRead {
    real: PathBuf,
    size: u64,
    window: Window,
}

/// Reads the file at `real` (blocking): the whole of an image (PNG, JPEG,
/// GIF, WebP by their first bytes), else the requested lines of text.
fn read_file(
    shown: &str,
    real: &Path,
    offset: Option<u64>,
    limit: Option<u64>,
    budget: usize,
) -> Result<FileRead, ToolError> {
    let io_err = |e: io::Error| ToolError::io("read", shown, e);
    let mut file = std::fs::File::open(real).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(ToolError::invalid_arguments(
            READ,
            format!(
                "argument `path`: expected a file, but {shown:?} is a directory (use list_dir)"
            ),
        ));
    }
    let mut head = [0_u8; BINARY_SNIFF_BYTES];
    let sniffed = read_up_to(&mut file, &mut head).map_err(io_err)?;
    if image::sniff_mime(&head[..sniffed]).is_some() {
        let image = read_image(shown, file, meta.len(), &head[..sniffed])?;
        return Ok(FileRead::Image(ImageRead {
            real: real.to_path_buf(),
            image,
        }));
    }
    if head[..sniffed].contains(&0) {
        return Err(ToolError::Failed(format!(
            "{shown:?} is a binary file ({} bytes); read_file shows text only",
            meta.len()
        )));
    }
    let reader = io::BufReader::new(io::Cursor::new(&head[..sniffed]).chain(file));
    let window = match read_window(reader, offset.unwrap_or(1), limit, budget).map_err(io_err)? {
        Ok(window) => window,
        Err(PastEnd { lines_in_file }) => {
            return Err(ToolError::invalid_arguments(
                READ,
                format!(
                    "argument `offset`: line {} is past the end of {shown:?}, which has {lines_in_file} lines",
                    offset.unwrap_or(1)
                ),
            ));
        }
    };
    Ok(FileRead::Text(TextRead {
        real: real.to_path_buf(),
        size: meta.len(),
        window: without_cut_char(window),
    }))
}

/// The rest of an image file of `len` bytes whose first bytes, `head`,
/// were read already; refused past the image size limit.
fn read_image(
    shown: &str,
    mut file: std::fs::File,
    len: u64,
    head: &[u8],
) -> Result<Image, ToolError> {
    let size = usize::try_from(len).unwrap_or(usize::MAX);
    image::check_size(size).map_err(|e| ToolError::Failed(format!("{shown:?}: {e}")))?;
    let mut data = head.to_vec();
    // Bounded even if the file grows after its size was checked.
    let rest = (image::MAX_IMAGE_BYTES + 1).saturating_sub(head.len()) as u64;
    (&mut file)
        .take(rest)
        .read_to_end(&mut data)
        .map_err(|e| ToolError::io("read", shown, e))?;
    image::image_from_bytes(data).map_err(|e| ToolError::Failed(format!("{shown:?}: {e}")))
}

/// Fills `buf` as far as the file allows.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A cut line must not end in the middle of a character.
fn without_cut_char(mut window: Window) -> Window {
    if window.end == End::LineCut {
        let keep = without_partial_char_at_end(&window.text).len();
        window.text.truncate(keep);
    }
    window
}

/// Tells the model how to read on, when the window did not reach the end.
fn continuation_note(window: &Window, size: u64) -> Option<String> {
    let next = window.next_offset()?;
    let last = next - 1;
    Some(match window.end {
        End::LineCut => format!(
            "[… line {last} is longer than the output cap and was cut; use offset={next} to read on …]"
        ),
        End::Budget => format!(
            "[… output cap reached after line {last} ({size}-byte file); use offset={next} to read more …]"
        ),
        End::Limit | End::Eof => format!("[… more lines follow; use offset={next} to read more …]"),
    })
}

/// Creates or overwrites a file (and its missing parent directories).
pub(crate) struct WriteFile;

#[async_trait::async_trait]
impl ToolHandler for WriteFile {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            WRITE,
            "Create or overwrite a file with content. Creates missing directories.",
            serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"]
            }),
            ToolKind::Edit,
            false,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: WriteArgs = parse_args(WRITE, args)?;
        let real = ctx.workspace.resolve(&args.path, Access::Write)?;
        let old_text = match tokio::fs::read(&real).await {
            Ok(old) => Some(String::from_utf8_lossy(&old).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(ToolError::io("read", &args.path, e)),
        };
        if let Some(parent) = real.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ToolError::io("create the directories of", &args.path, e))?;
        }
        tokio::fs::write(&real, &args.content)
            .await
            .map_err(|e| ToolError::io("write", &args.path, e))?;
        let raw_output = serde_json::json!({
            "path": ctx.workspace.relative(&real),
            "bytes": args.content.len(),
            "created": old_text.is_none(),
        });
        let text = format!("Wrote {} bytes to {}", args.content.len(), args.path);
        let diff = FileDiff {
            // Absolute, as ACP clients expect for diff locations.
            path: real.display().to_string(),
            old_text,
            new_text: args.content,
        };
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: vec![diff],
            images: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::sandbox::WorkspaceRoot;

    fn context(dir: &tempfile::TempDir, max_result_bytes: usize) -> ToolContext {
        ToolContext {
            workspace: WorkspaceRoot::new(dir.path()).unwrap(),
            cancel: CancellationToken::new(),
            shell_timeout: Duration::from_secs(5),
            max_result_bytes,
            builtins: crate::tools::BuiltinSettings::for_tests(),
        }
    }

    #[tokio::test]
    async fn write_reports_a_diff_and_read_returns_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir, 1024);
        let args = serde_json::json!({"path": "sub/a.txt", "content": "one"});
        let first = WriteFile.execute(&ctx, args).await.unwrap();
        assert_eq!(first.text, "Wrote 3 bytes to sub/a.txt");
        assert_eq!(first.diffs[0].old_text, None);
        let args = serde_json::json!({"path": "sub/a.txt", "content": "two"});
        let second = WriteFile.execute(&ctx, args).await.unwrap();
        assert_eq!(second.diffs[0].old_text.as_deref(), Some("one"));
        assert_eq!(second.diffs[0].new_text, "two");
        let read = ReadFile
            .execute(&ctx, serde_json::json!({"path": "sub/a.txt"}))
            .await
            .unwrap();
        assert_eq!(read.text, "two");
    }

    async fn read(ctx: &ToolContext, args: serde_json::Value) -> ToolOutput {
        ReadFile.execute(ctx, args).await.unwrap()
    }

    #[tokio::test]
    async fn a_line_longer_than_the_cap_is_cut_on_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.txt"), "€".repeat(1000)).unwrap();
        let ctx = context(&dir, 300);
        let out = read(&ctx, serde_json::json!({"path": "big.txt"})).await;
        assert!(!out.text.contains('\u{FFFD}'));
        assert!(
            out.text.ends_with(
                "€\n[… line 1 is longer than the output cap and was cut; use offset=2 to read on …]"
            ),
            "{}",
            out.text
        );
        assert!(out.text.len() <= 300);
        assert_eq!(out.raw_output["truncated"], true);
    }

    #[tokio::test]
    async fn the_cap_ends_at_a_whole_line_and_says_how_to_continue() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(dir.path().join("f.txt"), &lines).unwrap();
        let ctx = context(&dir, 228);
        let first = read(&ctx, serde_json::json!({"path": "f.txt"})).await;
        let note =
            "[… output cap reached after line 13 (792-byte file); use offset=14 to read more …]";
        assert!(first.text.starts_with("line 1\nline 2\n"), "{}", first.text);
        assert!(
            first.text.ends_with(&format!("line 13\n{note}")),
            "{}",
            first.text
        );
        assert_eq!(first.raw_output["next_offset"], 14);
        let next = read(
            &ctx,
            serde_json::json!({"path": "f.txt", "offset": 14, "limit": 2}),
        )
        .await;
        assert_eq!(
            next.text,
            "line 14\nline 15\n[… more lines follow; use offset=16 to read more …]"
        );
        let last = read(&ctx, serde_json::json!({"path": "f.txt", "offset": 99})).await;
        assert_eq!(last.text, "line 99\nline 100\n");
        let past = ReadFile
            .execute(&ctx, serde_json::json!({"path": "f.txt", "offset": 101}))
            .await
            .unwrap_err();
        assert_eq!(
            past.to_string(),
            "invalid arguments for read_file: argument `offset`: line 101 is past the end of \"f.txt\", which has 100 lines"
        );
    }

    #[tokio::test]
    async fn binary_files_are_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.bin"), b"\x7fELF\0\0\x01").unwrap();
        let ctx = context(&dir, 1024);
        let err = ReadFile
            .execute(&ctx, serde_json::json!({"path": "b.bin"}))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"b.bin\" is a binary file (7 bytes); read_file shows text only"
        );
    }

    #[tokio::test]
    async fn images_come_back_whole_as_an_image_part_within_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-rest".to_vec();
        // The bytes decide, not the name.
        std::fs::write(dir.path().join("shot.dat"), &png).unwrap();
        let ctx = context(&dir, 1024);
        let out = read(&ctx, serde_json::json!({"path": "shot.dat"})).await;
        assert_eq!(out.images.len(), 1);
        assert_eq!(out.images[0].mime_type, "image/png");
        assert_eq!(out.images[0].data, png);
        assert_eq!(
            out.text,
            format!("Image shot.dat (image/png, {} bytes), attached.", png.len())
        );

        let mut big = b"GIF89a".to_vec();
        big.resize(image::MAX_IMAGE_BYTES + 1, 7);
        std::fs::write(dir.path().join("big.gif"), &big).unwrap();
        let err = ReadFile
            .execute(&ctx, serde_json::json!({"path": "big.gif"}))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"big.gif\": the image is 5.0 MB (5242881 bytes); the limit is 5 MB (5242880 bytes) per image: shrink or crop it first"
        );
    }

    #[tokio::test]
    async fn directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let ctx = context(&dir, 1024);
        let err = ReadFile
            .execute(&ctx, serde_json::json!({"path": "d"}))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid arguments for read_file: argument `path`: expected a file, but \"d\" is a directory (use list_dir)"
        );
    }
}
