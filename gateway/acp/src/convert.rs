//! Pure conversions between ACP v1 types and the agent-loop wire: prompt
//! content, MCP server specs, tool kinds and statuses, stop reasons and
//! timestamps. No I/O here, so every mapping is unit-tested.

use std::path::{Path, PathBuf};

use agent_client_protocol::v1::schema::{
    self as acp, ContentBlock, EmbeddedResourceResource, McpServer,
};
use openheim_proto::agent_loop::v1::ToolCallStatus;
use openheim_proto::common::v1::{
    ContentBlock as WireBlock, Image, StopReason, ToolKind, content_block::Block,
};
use openheim_proto::mcp_broker::v1::{HttpTransport, ServerSpec, StdioTransport, server_spec};

use crate::error::AcpError;

/// Converts an ACP prompt into the agent loop's prompt blocks.
///
/// Text and images pass through; embedded text resources (the editor's
/// "context" of a file or selection) and resource links become text the model
/// can read, with the URI so it can fetch more with its tools. Audio is not
/// advertised and is refused.
pub fn prompt_blocks(prompt: &[ContentBlock]) -> Result<Vec<WireBlock>, AcpError> {
    let mut blocks = Vec::with_capacity(prompt.len());
    for block in prompt {
        let converted = match block {
            ContentBlock::Text(text) => Block::Text(text.text.clone()),
            ContentBlock::Image(image) => Block::Image(Image {
                mime_type: image.mime_type.clone(),
                data: decode_base64(&image.data).ok_or_else(|| {
                    AcpError::InvalidParams("an image is not valid base64".into())
                })?,
            }),
            ContentBlock::ResourceLink(link) => Block::Text(resource_link_text(link)),
            ContentBlock::Resource(resource) => embedded_resource(&resource.resource)?,
            ContentBlock::Audio(_) => {
                return Err(AcpError::InvalidParams(
                    "audio prompts are not supported".into(),
                ));
            }
            _ => {
                return Err(AcpError::InvalidParams(
                    "this kind of prompt content is not supported".into(),
                ));
            }
        };
        blocks.push(WireBlock {
            block: Some(converted),
        });
    }
    if blocks.is_empty() {
        return Err(AcpError::InvalidParams("the prompt is empty".into()));
    }
    Ok(blocks)
}

fn resource_link_text(link: &acp::ResourceLink) -> String {
    let mut text = format!("[Resource: {}]({})", link.name, link.uri);
    if let Some(description) = &link.description {
        text.push_str(" — ");
        text.push_str(description);
    }
    text
}

fn embedded_resource(resource: &EmbeddedResourceResource) -> Result<Block, AcpError> {
    match resource {
        EmbeddedResourceResource::TextResourceContents(text) => Ok(Block::Text(format!(
            "<context uri=\"{}\">\n{}\n</context>",
            text.uri, text.text
        ))),
        EmbeddedResourceResource::BlobResourceContents(blob) => {
            let mime = blob.mime_type.clone().unwrap_or_default();
            if !mime.starts_with("image/") {
                return Err(AcpError::InvalidParams(format!(
                    "embedded binary resource {} ({mime}) is not supported; send text or an image",
                    blob.uri
                )));
            }
            let data = decode_base64(&blob.blob)
                .ok_or_else(|| AcpError::InvalidParams("a resource is not valid base64".into()))?;
            Ok(Block::Image(Image {
                mime_type: mime,
                data,
            }))
        }
        _ => Err(AcpError::InvalidParams(
            "this kind of embedded resource is not supported".into(),
        )),
    }
}

fn decode_base64(data: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
}

/// Encodes bytes for ACP image content.
pub fn encode_base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// ACP MCP servers as mcp-broker specs. Stdio servers start in the session's
/// workspace. SSE servers are not advertised (`mcpCapabilities.sse = false`)
/// and are skipped with a warning rather than failing the whole session.
pub fn mcp_servers(servers: &[McpServer], work_dir: &Path) -> Vec<ServerSpec> {
    servers
        .iter()
        .filter_map(|server| match server {
            McpServer::Stdio(stdio) => Some(ServerSpec {
                name: stdio.name.clone(),
                transport: Some(server_spec::Transport::Stdio(StdioTransport {
                    command: stdio.command.display().to_string(),
                    args: stdio.args.clone(),
                    env: stdio
                        .env
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone()))
                        .collect(),
                    cwd: work_dir.display().to_string(),
                    ..StdioTransport::default()
                })),
            }),
            McpServer::Http(http) => Some(ServerSpec {
                name: http.name.clone(),
                transport: Some(server_spec::Transport::Http(HttpTransport {
                    url: http.url.clone(),
                    headers: http
                        .headers
                        .iter()
                        .map(|h| (h.name.clone(), h.value.clone()))
                        .collect(),
                })),
            }),
            McpServer::Sse(sse) => {
                tracing::warn!(server = %sse.name, "SSE MCP servers are not supported; skipped");
                None
            }
            _ => {
                tracing::warn!("an MCP server of an unsupported transport was skipped");
                None
            }
        })
        .collect()
}

pub fn tool_kind(kind: ToolKind) -> acp::ToolKind {
    match kind {
        ToolKind::Read => acp::ToolKind::Read,
        ToolKind::Edit => acp::ToolKind::Edit,
        ToolKind::Delete => acp::ToolKind::Delete,
        ToolKind::Move => acp::ToolKind::Move,
        ToolKind::Search => acp::ToolKind::Search,
        ToolKind::Execute => acp::ToolKind::Execute,
        ToolKind::Think => acp::ToolKind::Think,
        ToolKind::Fetch => acp::ToolKind::Fetch,
        ToolKind::Other | ToolKind::Unspecified => acp::ToolKind::Other,
    }
}

/// The kind of a built-in tool by name, for replayed history (which stores
/// calls without their definition).
pub fn kind_of_tool(name: &str) -> acp::ToolKind {
    match name {
        "read_file" | "list_dir" => acp::ToolKind::Read,
        "write_file" | "edit_file" => acp::ToolKind::Edit,
        "execute_command" => acp::ToolKind::Execute,
        "web_fetch" => acp::ToolKind::Fetch,
        "web_search" | "grep" | "glob" | "search" => acp::ToolKind::Search,
        "delegate_task" => acp::ToolKind::Think,
        _ => acp::ToolKind::Other,
    }
}

pub fn tool_status(status: ToolCallStatus) -> acp::ToolCallStatus {
    match status {
        ToolCallStatus::Pending | ToolCallStatus::Unspecified => acp::ToolCallStatus::Pending,
        ToolCallStatus::InProgress => acp::ToolCallStatus::InProgress,
        ToolCallStatus::Completed => acp::ToolCallStatus::Completed,
        ToolCallStatus::Failed => acp::ToolCallStatus::Failed,
    }
}

pub fn stop_reason(stop: StopReason) -> acp::StopReason {
    match stop {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::Unspecified => {
            acp::StopReason::EndTurn
        }
        StopReason::MaxTokens => acp::StopReason::MaxTokens,
        StopReason::MaxTurnRequests => acp::StopReason::MaxTurnRequests,
        StopReason::Refusal => acp::StopReason::Refusal,
        StopReason::Cancelled => acp::StopReason::Cancelled,
    }
}

/// A location the client can open: workspace-relative paths are joined to
/// the session's workspace, since ACP locations are absolute.
pub fn absolute(work_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    match path.is_absolute() {
        true => path.to_path_buf(),
        false => work_dir.join(path),
    }
}

/// Parses a JSON text for `rawInput` / `rawOutput`; text that is not JSON
/// (a model may produce broken arguments) is passed on as a string.
pub fn raw_json(text: &str) -> Option<serde_json::Value> {
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned())))
}

/// Milliseconds since the Unix epoch as ISO 8601 UTC (`session/list`'s
/// `updatedAt`), without pulling a date crate in for one format.
pub fn iso8601(ms: i64) -> String {
    let t = openheim_time::UtcTime::from_unix_ms(ms);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        t.date(),
        t.hour,
        t.minute,
        t.second,
        t.millisecond
    )
}

#[cfg(test)]
mod tests {
    use agent_client_protocol::v1::schema::{
        EmbeddedResource, ImageContent, McpServerHttp, McpServerStdio, ResourceLink, TextContent,
        TextResourceContents,
    };

    use super::*;

    #[test]
    fn prompts_keep_text_images_and_context() {
        let prompt = vec![
            ContentBlock::Text(TextContent::new("hi")),
            ContentBlock::Image(ImageContent::new(encode_base64(b"PNG"), "image/png")),
            ContentBlock::ResourceLink(ResourceLink::new("a.rs", "file:///w/a.rs")),
            ContentBlock::Resource(EmbeddedResource::new(
                EmbeddedResourceResource::TextResourceContents(TextResourceContents::new(
                    "fn main() {}",
                    "file:///w/main.rs",
                )),
            )),
        ];
        let blocks = prompt_blocks(&prompt).unwrap();
        assert_eq!(blocks[0].block, Some(Block::Text("hi".into())));
        match &blocks[1].block {
            Some(Block::Image(image)) => assert_eq!(image.data, b"PNG"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            blocks[2].block,
            Some(Block::Text("[Resource: a.rs](file:///w/a.rs)".into()))
        );
        assert_eq!(
            blocks[3].block,
            Some(Block::Text(
                "<context uri=\"file:///w/main.rs\">\nfn main() {}\n</context>".into()
            ))
        );
        assert!(prompt_blocks(&[]).is_err());
        let bad = ContentBlock::Image(ImageContent::new("%%%", "image/png"));
        assert!(prompt_blocks(&[bad]).is_err());
    }

    #[test]
    fn mcp_servers_map_to_broker_specs() {
        let servers = vec![
            McpServer::Stdio(McpServerStdio::new("fs", "/bin/fs-server").args(vec!["-v".into()])),
            McpServer::Http(McpServerHttp::new("web", "http://127.0.0.1:1/mcp")),
        ];
        let specs = mcp_servers(&servers, Path::new("/ws"));
        assert_eq!(specs.len(), 2);
        match &specs[0].transport {
            Some(server_spec::Transport::Stdio(s)) => {
                assert_eq!(s.command, "/bin/fs-server");
                assert_eq!(s.cwd, "/ws");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(specs[1].name, "web");
    }

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn raw_json_keeps_broken_text() {
        assert_eq!(raw_json(""), None);
        assert_eq!(raw_json("{\"a\":1}"), Some(serde_json::json!({"a": 1})));
        assert_eq!(raw_json("{oops"), Some(serde_json::json!("{oops")));
    }

    #[test]
    fn stop_reasons_map_one_to_one() {
        assert_eq!(stop_reason(StopReason::ToolUse), acp::StopReason::EndTurn);
        assert_eq!(
            stop_reason(StopReason::Cancelled),
            acp::StopReason::Cancelled
        );
        assert_eq!(
            stop_reason(StopReason::MaxTurnRequests),
            acp::StopReason::MaxTurnRequests
        );
    }
}
