//! The JSON the REST API answers with, built from the services' protobuf
//! messages. Field names are snake_case; enums are lower-case words.

use base64::Engine;
use openheim_proto::agent_loop::v1::{
    ApprovalMode, ChildSession, MemoryNote, MemoryScope, SessionInfo,
};
use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Image, Message, Role, ToolDefinition, ToolKind, Usage};
use openheim_proto::llm_proxy::v1::ListModelsResponse;
use openheim_proto::mcp_broker::v1::{ServerState, ServerStatus};
use serde_json::{Value, json};

/// A note of the long-term memory; `score` only for search results.
pub fn memory_note(note: &MemoryNote) -> Value {
    let scope = match note.scope() {
        MemoryScope::User => "user",
        MemoryScope::Project => "project",
        MemoryScope::Unspecified => "unknown",
    };
    json!({
        "id": note.id,
        "text": note.text,
        "tags": note.tags,
        "scope": scope,
        "project": (!note.project.is_empty()).then_some(&note.project),
        "created_at_ms": note.created_at_ms,
        "updated_at_ms": note.updated_at_ms,
        "score": (note.score != 0.0).then_some(note.score),
    })
}

pub fn session(s: &SessionInfo) -> Value {
    json!({
        "id": s.id,
        "title": s.title,
        "work_dir": s.work_dir,
        "model": s.model,
        "skills": s.skills,
        "created_at_ms": s.created_at_ms,
        "updated_at_ms": s.updated_at_ms,
        "message_count": s.message_count,
        "approval_mode": approval_mode(s.approval_mode()),
        "read_only": s.read_only,
        "parent": s.parent.as_ref().map(|p| json!({
            "session_id": p.session_id,
            "tool_call_id": p.tool_call_id,
        })),
        "agent": (!s.agent.is_empty()).then_some(&s.agent),
        "depth": s.depth,
        "usage": usage(&s.usage.unwrap_or_default()),
        "llm_calls": s.llm_calls,
        "owner": openheim_access::owner_or_local(&s.owner),
    })
}

/// A sub-agent session started by one of a session's turns.
pub fn child(c: &ChildSession) -> Value {
    json!({
        "session_id": c.session_id,
        "tool_call_id": c.tool_call_id,
        "agent": (!c.agent.is_empty()).then_some(&c.agent),
        "created_at_ms": c.created_at_ms,
    })
}

/// Token counts and cost; `cost_pico_usd` is exact (10^-12 USD) and null
/// when a price is unknown.
pub fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cost_pico_usd": u.cost_pico_usd,
    })
}

fn approval_mode(mode: ApprovalMode) -> &'static str {
    match mode {
        ApprovalMode::Unspecified | ApprovalMode::Ask => "ask",
        ApprovalMode::Auto => "auto",
        ApprovalMode::Deny => "deny",
    }
}

pub fn message(m: &Message) -> Value {
    let role = match m.role() {
        Role::Unspecified => "unspecified",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let content: Vec<Value> = m
        .content
        .iter()
        .filter_map(|b| b.block.as_ref())
        .map(block)
        .collect();
    json!({ "role": role, "content": content })
}

fn block(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({ "type": "text", "text": text }),
        // The signature is an opaque provider token, of no use to a reader.
        Block::Thinking(t) => json!({ "type": "thinking", "text": t.text }),
        Block::ToolCall(call) => json!({
            "type": "tool_call",
            "id": call.id,
            "name": call.name,
            "arguments": parse_or_string(&call.arguments_json),
        }),
        Block::ToolResult(result) => {
            let mut value = json!({
                "type": "tool_result",
                "tool_call_id": result.tool_call_id,
                "content": result.content,
                "is_error": result.is_error,
            });
            if !result.images.is_empty() {
                value["images"] = result.images.iter().map(image).collect();
            }
            value
        }
        Block::Image(i) => image(i),
    }
}

fn image(image: &Image) -> Value {
    json!({
        "type": "image",
        "mime_type": image.mime_type,
        "data": base64::engine::general_purpose::STANDARD.encode(&image.data),
    })
}

/// JSON text as a value; text that is not JSON (a model may produce broken
/// arguments) as a string, so nothing is lost.
fn parse_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

pub fn tool(t: &ToolDefinition) -> Value {
    json!({
        "name": t.name,
        "description": t.description,
        "kind": tool_kind(t.kind()),
        "read_only": t.read_only,
        "source": t.source,
        "input_schema": parse_or_string(&t.input_schema_json),
    })
}

fn tool_kind(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Read => "read",
        ToolKind::Edit => "edit",
        ToolKind::Delete => "delete",
        ToolKind::Move => "move",
        ToolKind::Search => "search",
        ToolKind::Execute => "execute",
        ToolKind::Think => "think",
        ToolKind::Fetch => "fetch",
        ToolKind::Unspecified | ToolKind::Other => "other",
    }
}

pub fn mcp_server(s: &ServerStatus) -> Value {
    let state = match s.state() {
        ServerState::Unspecified => "unknown",
        ServerState::Connecting => "connecting",
        ServerState::Connected => "connected",
        ServerState::Failed => "failed",
    };
    json!({
        "name": s.name,
        "state": state,
        "tool_count": s.tool_count,
        "error": (!s.error.is_empty()).then_some(&s.error),
        "session_id": (!s.session_id.is_empty()).then_some(&s.session_id),
        "auth": (!s.auth.is_empty()).then_some(&s.auth),
    })
}

pub fn models(m: &ListModelsResponse) -> Value {
    let providers: Vec<Value> = m
        .providers
        .iter()
        .map(|p| {
            json!({
                "provider": p.provider,
                "kind": p.kind,
                "default_model": p.default_model,
                "models": p.models,
                "context_window": (p.context_window > 0).then_some(p.context_window),
            })
        })
        .collect();
    json!({
        "default_provider": (!m.default_provider.is_empty()).then_some(&m.default_provider),
        "providers": providers,
    })
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{ContentBlock, ToolCall, ToolResult};

    use super::*;

    #[test]
    fn messages_keep_tool_calls_and_results() {
        let call = ToolCall {
            id: "c1".into(),
            name: "read_file".into(),
            arguments_json: r#"{"path":"a.txt"}"#.into(),
        };
        let assistant = Message {
            role: Role::Assistant as i32,
            content: vec![
                ContentBlock {
                    block: Some(Block::Text("Reading.".into())),
                },
                ContentBlock {
                    block: Some(Block::ToolCall(call)),
                },
            ],
        };
        assert_eq!(
            message(&assistant),
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_call", "id": "c1", "name": "read_file", "arguments": {"path": "a.txt"}},
            ]})
        );
        let result = Message {
            role: Role::Tool as i32,
            content: vec![ContentBlock {
                block: Some(Block::ToolResult(ToolResult {
                    tool_call_id: "c1".into(),
                    content: "hi".into(),
                    is_error: false,
                    images: vec![Image {
                        mime_type: "image/png".into(),
                        data: vec![1, 2, 3],
                    }],
                })),
            }],
        };
        assert_eq!(message(&result)["content"][0]["tool_call_id"], "c1");
        assert_eq!(
            message(&result)["content"][0]["images"],
            json!([{"type": "image", "mime_type": "image/png", "data": "AQID"}])
        );
        assert_eq!(parse_or_string("{broken"), json!("{broken"));
    }
}
