//! Translation between MCP's vocabulary (rmcp model types) and openheim's:
//! tool definitions offered to the model, and tool results as text.
//!
//! Every content block becomes text: text as is, embedded resources as their
//! text (or a line naming them when binary), and images or audio as a
//! placeholder line saying what was there. Images that pass the image rules
//! (`openheim_proto::image`) also go along as images, for models that see —
//! image blocks and embedded blob resources of an image type alike, at most
//! [`MAX_RESULT_IMAGES`] per result. Structured content (`structuredContent`)
//! reaches the model as JSON text, unless a text block already carries the
//! same JSON (what the MCP specification asks servers to do).

use base64::Engine as _;
use openheim_proto::common::v1::{Image, ToolDefinition, ToolKind};
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents, Tool};

/// Where a tool runs, as `ToolDefinition.source` spells it.
pub fn source(server: &str) -> String {
    format!("mcp:{server}")
}

/// The definition of `tool` of `server`, offered under `exposed_name`.
pub fn definition(server: &str, exposed_name: &str, tool: &Tool) -> ToolDefinition {
    let schema = serde_json::Value::Object(tool.input_schema.as_ref().clone());
    ToolDefinition {
        name: exposed_name.to_owned(),
        description: tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_owned(),
        input_schema_json: schema.to_string(),
        kind: ToolKind::Other as i32,
        read_only: tool
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false),
        source: source(server),
    }
}

/// What the model gets back from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub text: String,
    pub is_error: bool,
    /// The whole MCP result as JSON, for clients that render it themselves.
    pub raw_json: String,
    /// The result's images a model can be shown.
    pub images: Vec<Image>,
}

/// Images of one result that go to the model; more are named only.
pub const MAX_RESULT_IMAGES: usize = 4;

/// Maps a result: blocks joined by newlines; `isError` makes it a tool error.
/// Structured content is added as JSON text unless a text block holds it.
pub fn output(result: &CallToolResult) -> ToolOutput {
    let mut images = Vec::new();
    let mut parts: Vec<String> = Vec::with_capacity(result.content.len() + 1);
    for block in &result.content {
        let mut text = block_text(block);
        if let Some(data) = image_data(block) {
            match usable_image(data) {
                Some(image) if images.len() < MAX_RESULT_IMAGES => images.push(image),
                Some(_) => text.push_str(&format!(
                    " (not attached: at most {MAX_RESULT_IMAGES} images per result)"
                )),
                None => {}
            }
        }
        parts.push(text);
    }
    if let Some(structured) = &result.structured_content
        && !already_in_text(structured, &result.content)
    {
        parts.push(format!("Structured content: {structured}"));
    }
    ToolOutput {
        text: parts.join("\n"),
        is_error: result.is_error.unwrap_or(false),
        raw_json: serde_json::to_string(result).unwrap_or_default(),
        images,
    }
}

/// Whether a text block is the structured content serialized (servers
/// are asked to send both, for clients without structured content).
fn already_in_text(structured: &serde_json::Value, content: &[ContentBlock]) -> bool {
    content.iter().any(|block| match block {
        ContentBlock::Text(text) => {
            serde_json::from_str::<serde_json::Value>(&text.text).is_ok_and(|v| &v == structured)
        }
        _ => false,
    })
}

/// The base64 data of a block that may be an image a model can see: an
/// image block, or an embedded blob resource of an `image/*` type.
fn image_data(block: &ContentBlock) -> Option<&str> {
    match block {
        ContentBlock::Image(image) => Some(&image.data),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::BlobResourceContents {
                mime_type: Some(mime),
                blob,
                ..
            } if mime.starts_with("image/") => Some(blob),
            _ => None,
        },
        _ => None,
    }
}

/// An MCP image as an image part, when it decodes and passes the image
/// rules; otherwise only its placeholder line reaches the model.
fn usable_image(base64: &str) -> Option<Image> {
    let data = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .ok()?;
    openheim_proto::image::image_from_bytes(data).ok()
}

fn block_text(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => placeholder("image", &image.mime_type, &image.data),
        ContentBlock::Audio(audio) => placeholder("audio", &audio.mime_type, &audio.data),
        ContentBlock::Resource(embedded) => resource_text(&embedded.resource),
        ContentBlock::ResourceLink(link) => format!("[resource: {}]", link.uri),
        // rmcp's enum is non-exhaustive; a future kind is at least named.
        other => format!("[unsupported content: {}]", kind_name(other)),
    }
}

fn resource_text(resource: &ResourceContents) -> String {
    match resource {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        ResourceContents::BlobResourceContents {
            uri,
            mime_type,
            blob,
            ..
        } => {
            let mime = mime_type.as_deref().unwrap_or("application/octet-stream");
            format!("[resource: {uri}, {mime}, {} bytes]", base64_len(blob))
        }
        // Non-exhaustive as well.
        _ => "[unsupported resource]".to_owned(),
    }
}

fn kind_name(block: &ContentBlock) -> String {
    serde_json::to_value(block)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `[image: image/png, 1234 bytes]`: the model learns something was there
/// without megabytes of base64 in its context.
fn placeholder(kind: &str, mime_type: &str, base64: &str) -> String {
    format!("[{kind}: {mime_type}, {} bytes]", base64_len(base64))
}

/// Decoded size of base64 text, without decoding it.
fn base64_len(data: &str) -> usize {
    let data = data.trim_end();
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    (data.len() / 4 * 3 + (data.len() % 4).saturating_sub(1)).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rmcp::model::{ContentBlock, ResourceContents};
    use serde_json::json;

    use super::*;

    #[test]
    fn text_blocks_are_joined() {
        let result =
            CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("two")]);
        let out = output(&result);
        assert_eq!(out.text, "one\ntwo");
        assert!(!out.is_error);
        let raw: serde_json::Value = serde_json::from_str(&out.raw_json).unwrap_or_default();
        assert_eq!(raw["content"][1]["text"], "two");
    }

    #[test]
    fn is_error_makes_a_tool_error() {
        let out = output(&CallToolResult::error(vec![ContentBlock::text("bad")]));
        assert_eq!(out.text, "bad");
        assert!(out.is_error);
    }

    #[test]
    fn images_become_a_placeholder_line() {
        // "aGVsbG8=" is base64 for the five bytes of "hello".
        let result = CallToolResult::success(vec![ContentBlock::image("aGVsbG8=", "image/png")]);
        assert_eq!(output(&result).text, "[image: image/png, 5 bytes]");
        // "hello" is no image: only the line goes to the model.
        assert!(output(&result).images.is_empty());
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nxyz");
        let result = CallToolResult::success(vec![ContentBlock::image(png, "image/jpeg")]);
        let out = output(&result);
        assert_eq!(out.text, "[image: image/jpeg, 11 bytes]");
        assert_eq!(out.images[0].mime_type, "image/png");
        let audio = CallToolResult::success(vec![ContentBlock::audio("aGk=", "audio/wav")]);
        assert_eq!(output(&audio).text, "[audio: audio/wav, 2 bytes]");
    }

    #[test]
    fn resources_give_their_text_or_their_uri() {
        let text = ContentBlock::resource(ResourceContents::text("inside", "file:///a.txt"));
        let blob = ContentBlock::resource(ResourceContents::BlobResourceContents {
            uri: "file:///b.bin".into(),
            mime_type: None,
            blob: "AAAA".into(),
            meta: None,
        });
        let link = ContentBlock::ResourceLink(rmcp::model::Resource::new("file:///c", "c"));
        let out = output(&CallToolResult::success(vec![text, blob, link]));
        assert_eq!(
            out.text,
            "inside\n[resource: file:///b.bin, application/octet-stream, 3 bytes]\n[resource: file:///c]"
        );
    }

    #[test]
    fn structured_content_is_added_unless_a_text_block_holds_it() {
        let mut result = CallToolResult::success(Vec::new());
        result.structured_content = Some(json!({"sum": 3}));
        assert_eq!(output(&result).text, r#"Structured content: {"sum":3}"#);
        // The backward-compatible text block: not repeated.
        let mut result = CallToolResult::success(vec![ContentBlock::text(r#"{ "sum": 3 }"#)]);
        result.structured_content = Some(json!({"sum": 3}));
        assert_eq!(output(&result).text, r#"{ "sum": 3 }"#);
        // A prose text block: the data comes along.
        let mut result = CallToolResult::success(vec![ContentBlock::text("The sum is ready.")]);
        result.structured_content = Some(json!({"sum": 3}));
        assert_eq!(
            output(&result).text,
            "The sum is ready.\nStructured content: {\"sum\":3}"
        );
    }

    #[test]
    fn image_resources_are_images_and_the_count_is_capped() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nxyz");
        let blob = ContentBlock::resource(ResourceContents::BlobResourceContents {
            uri: "file:///shot.png".into(),
            mime_type: Some("image/png".into()),
            blob: png.clone(),
            meta: None,
        });
        let out = output(&CallToolResult::success(vec![blob]));
        assert_eq!(out.images.len(), 1);
        assert_eq!(
            out.text,
            "[resource: file:///shot.png, image/png, 11 bytes]"
        );
        let many = vec![ContentBlock::image(png, "image/png"); MAX_RESULT_IMAGES + 1];
        let out = output(&CallToolResult::success(many));
        assert_eq!(out.images.len(), MAX_RESULT_IMAGES);
        let last = out.text.lines().last().unwrap_or_default();
        assert!(
            last.ends_with("(not attached: at most 4 images per result)"),
            "{last}"
        );
    }

    #[test]
    fn base64_sizes() {
        assert_eq!(base64_len(""), 0);
        assert_eq!(base64_len("QQ=="), 1);
        assert_eq!(base64_len("QUI="), 2);
        assert_eq!(base64_len("QUJD"), 3);
        // Unpadded input is measured too.
        assert_eq!(base64_len("QUI"), 2);
    }

    #[test]
    fn definitions_carry_schema_description_and_source() {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let serde_json::Value::Object(schema) = schema else {
            unreachable!("literal object")
        };
        let tool = Tool::new("echo", "Echoes text", Arc::new(schema));
        let def = definition("testserver", "testserver__echo", &tool);
        assert_eq!(def.name, "testserver__echo");
        assert_eq!(def.description, "Echoes text");
        assert_eq!(def.source, "mcp:testserver");
        assert_eq!(def.kind, ToolKind::Other as i32);
        let parsed: serde_json::Value =
            serde_json::from_str(&def.input_schema_json).unwrap_or_default();
        assert_eq!(parsed["properties"]["text"]["type"], "string");
    }
}
