//! `session/update` payloads: live turn events and replayed history, both
//! turned into ACP `SessionUpdate`s, and permission questions into ACP
//! permission requests. Pure functions; the I/O is in `prompt.rs`.

use std::path::Path;

use agent_client_protocol::v1::schema::{
    self as acp, ContentBlock, ContentChunk, Diff, ImageContent, PermissionOption,
    PermissionOptionKind, RequestPermissionOutcome, SessionUpdate, Terminal, TerminalId,
    TextContent, ToolCallContent, ToolCallLocation, ToolCallUpdateFields,
};
use openheim_proto::agent_loop::v1::{
    Decision, PermissionRequest, ToolCallStarted, ToolCallStatus, ToolCallUpdate,
};
use openheim_proto::common::v1::{Message, Role, ToolKind, Usage, content_block::Block};
use serde_json::json;

use crate::convert::{absolute, encode_base64, kind_of_tool, raw_json, tool_kind, tool_status};

/// `usage_update` after one LLM call: `used` is what the call put in the
/// context (its input and output tokens), `size` the model's window, `cost`
/// the session's total in USD when every price was known. The exact totals
/// go in `_meta.openheim.usage` (the cost in picodollars, 10^-12 USD).
pub fn usage_update(call: &Usage, session_total: &Usage, context_window: u64) -> SessionUpdate {
    let used = call.input_tokens + call.output_tokens;
    let cost = session_total
        .cost_pico_usd
        .map(|pico| acp::Cost::new(pico as f64 / 1e12, "USD"));
    let totals = json!({
        "usage": {
            "inputTokens": session_total.input_tokens,
            "outputTokens": session_total.output_tokens,
            "cacheReadTokens": session_total.cache_read_tokens,
            "cacheWriteTokens": session_total.cache_write_tokens,
            "reasoningTokens": session_total.reasoning_tokens,
            "costPicoUsd": session_total.cost_pico_usd,
        }
    });
    let mut meta = acp::Meta::new();
    meta.insert(crate::mcp::META_KEY.to_owned(), totals);
    SessionUpdate::UsageUpdate(
        acp::UsageUpdate::new(used, context_window)
            .cost(cost)
            .meta(meta),
    )
}

pub fn text_chunk(text: String) -> SessionUpdate {
    SessionUpdate::AgentMessageChunk(ContentChunk::new(ContentBlock::Text(TextContent::new(
        text,
    ))))
}

/// The text that separates a reply shown in part from its redone version
/// when the provider's stream broke and the redo differs (docs/acp.md).
pub fn restart_marker(reason: &str) -> String {
    format!("\n\n---\n*(the reply was interrupted: {reason}; it restarts here)*\n\n")
}

pub fn thought_chunk(text: String) -> SessionUpdate {
    SessionUpdate::AgentThoughtChunk(ContentChunk::new(ContentBlock::Text(TextContent::new(
        text,
    ))))
}

fn locations(work_dir: &Path, paths: &[String]) -> Vec<ToolCallLocation> {
    paths
        .iter()
        .map(|p| ToolCallLocation::new(absolute(work_dir, p)))
        .collect()
}

/// A tool call the model issued, announced before it is gated and run.
pub fn tool_call(started: &ToolCallStarted, work_dir: &Path) -> SessionUpdate {
    let call = acp::ToolCall::new(started.id.clone(), started.title.clone())
        .name(started.name.clone())
        .kind(tool_kind(started.kind()))
        .status(acp::ToolCallStatus::Pending)
        .locations(locations(work_dir, &started.locations))
        .raw_input(raw_json(&started.raw_input_json));
    SessionUpdate::ToolCall(call)
}

/// Progress or result of a tool call: the result text as content, each
/// file change as a `diff` block, the structured result as `rawOutput`.
pub fn tool_call_update(update: &ToolCallUpdate) -> SessionUpdate {
    let status = update.status();
    let mut fields = ToolCallUpdateFields::new().status(tool_status(status));
    if matches!(status, ToolCallStatus::Completed | ToolCallStatus::Failed) {
        let mut content: Vec<ToolCallContent> = Vec::new();
        if !update.content.is_empty() {
            content.push(ContentBlock::Text(TextContent::new(update.content.clone())).into());
        }
        for diff in &update.diffs {
            let diff =
                Diff::new(diff.path.clone(), diff.new_text.clone()).old_text(diff.old_text.clone());
            content.push(diff.into());
        }
        fields = fields
            .content(content)
            .raw_output(raw_json(&update.raw_output_json));
    } else if !update.content.is_empty() {
        // Progress of a running call (a sub-agent's tool calls so far).
        let text = ContentBlock::Text(TextContent::new(update.content.clone()));
        fields = fields.content(vec![text.into()]);
    }
    SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(update.id.clone(), fields))
}

/// Shows a running command's terminal in its tool call, so the client
/// renders its output live.
pub fn terminal_embed(tool_call_id: &str, terminal_id: &TerminalId) -> SessionUpdate {
    let content = vec![ToolCallContent::Terminal(Terminal::new(
        terminal_id.clone(),
    ))];
    let fields = ToolCallUpdateFields::new().content(content);
    SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(tool_call_id.to_owned(), fields))
}

/// The final update of a command that ran in the client's terminal: the
/// terminal stays the content (it holds the output); a failure (timeout,
/// cancellation) adds the result text, which says why.
pub fn finished_in_terminal(update: &ToolCallUpdate, terminal_id: &TerminalId) -> SessionUpdate {
    let status = update.status();
    let mut content = vec![ToolCallContent::Terminal(Terminal::new(
        terminal_id.clone(),
    ))];
    if status == ToolCallStatus::Failed && !update.content.is_empty() {
        content.push(ContentBlock::Text(TextContent::new(update.content.clone())).into());
    }
    let fields = ToolCallUpdateFields::new()
        .status(tool_status(status))
        .content(content)
        .raw_output(raw_json(&update.raw_output_json));
    SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(update.id.clone(), fields))
}

/// Option ids of a permission request; the decision is read back by id.
const ALLOW_ONCE: &str = "allow_once";
const ALLOW_ALWAYS: &str = "allow_always";
const REJECT_ONCE: &str = "reject_once";
const REJECT_ALWAYS: &str = "reject_always";

/// The ACP question for a permission request of the agent loop.
pub fn permission_request(
    session_id: &str,
    request: &PermissionRequest,
    work_dir: &Path,
) -> acp::RequestPermissionRequest {
    let args = raw_json(&request.raw_input_json);
    let paths: Vec<String> = args
        .as_ref()
        .and_then(|a| a.get("path"))
        .and_then(|p| p.as_str())
        .map(|p| vec![p.to_owned()])
        .unwrap_or_default();
    let fields = ToolCallUpdateFields::new()
        .title(request.title.clone())
        .name(request.tool_name.clone())
        .kind(tool_kind(request.kind()))
        .status(acp::ToolCallStatus::Pending)
        .locations(locations(work_dir, &paths))
        .raw_input(args);
    let tool_call = acp::ToolCallUpdate::new(request.tool_call_id.clone(), fields);
    let options = vec![
        PermissionOption::new(ALLOW_ONCE, "Allow once", PermissionOptionKind::AllowOnce),
        PermissionOption::new(
            ALLOW_ALWAYS,
            "Always allow",
            PermissionOptionKind::AllowAlways,
        ),
        PermissionOption::new(REJECT_ONCE, "Reject", PermissionOptionKind::RejectOnce),
        PermissionOption::new(
            REJECT_ALWAYS,
            "Always reject",
            PermissionOptionKind::RejectAlways,
        ),
    ];
    acp::RequestPermissionRequest::new(session_id.to_owned(), tool_call, options)
}

/// The decision for the client's answer; no answer (cancelled, failed,
/// unknown option) counts as a reject.
pub fn decision(outcome: Option<&RequestPermissionOutcome>) -> Decision {
    match outcome {
        Some(RequestPermissionOutcome::Selected(selected)) => match &*selected.option_id.0 {
            ALLOW_ONCE => Decision::AllowOnce,
            ALLOW_ALWAYS => Decision::AllowAlways,
            REJECT_ALWAYS => Decision::RejectAlways,
            _ => Decision::RejectOnce,
        },
        _ => Decision::RejectOnce,
    }
}

/// A stored conversation as the updates a client would have seen live.
/// What a client attaching to a stored session without its replay
/// (`session/resume`) is told of its history: the session's plan, if it
/// has one (its slash commands follow, `mcp_prompts::commands_update`).
pub fn resumed(messages: &[Message]) -> Vec<SessionUpdate> {
    crate::plan::latest(messages).into_iter().collect()
}

pub fn replay(messages: &[Message], work_dir: &Path) -> Vec<SessionUpdate> {
    let mut updates = Vec::new();
    for message in messages {
        let role = message.role();
        for block in message.content.iter().filter_map(|b| b.block.as_ref()) {
            if let Some(update) = replay_block(role, block, work_dir) {
                updates.push(update);
            }
            updates.extend(crate::plan::replayed(block));
        }
    }
    updates
}

fn replay_block(role: Role, block: &Block, work_dir: &Path) -> Option<SessionUpdate> {
    let update = match (role, block) {
        (Role::User, Block::Text(text)) => SessionUpdate::UserMessageChunk(ContentChunk::new(
            ContentBlock::Text(TextContent::new(text.clone())),
        )),
        (Role::User, Block::Image(image)) => {
            SessionUpdate::UserMessageChunk(ContentChunk::new(ContentBlock::Image(
                ImageContent::new(encode_base64(&image.data), image.mime_type.clone()),
            )))
        }
        (Role::Assistant, Block::Text(text)) => text_chunk(text.clone()),
        (Role::Assistant, Block::Thinking(thinking)) if !thinking.text.is_empty() => {
            thought_chunk(thinking.text.clone())
        }
        (Role::Assistant, Block::ToolCall(call)) => {
            let started = describe(&call.id, &call.name, &call.arguments_json);
            let update = tool_call(&started, work_dir);
            match update {
                SessionUpdate::ToolCall(c) => {
                    SessionUpdate::ToolCall(c.kind(kind_of_tool(&call.name)))
                }
                other => other,
            }
        }
        (Role::Tool, Block::ToolResult(result)) => {
            let status = match result.is_error {
                true => ToolCallStatus::Failed,
                false => ToolCallStatus::Completed,
            };
            tool_call_update(&ToolCallUpdate {
                id: result.tool_call_id.clone(),
                status: status as i32,
                content: result.content.clone(),
                ..ToolCallUpdate::default()
            })
        }
        _ => return None,
    };
    Some(update)
}

/// Title and locations of a stored call, as the agent loop describes live
/// ones: the command for the shell, "tool path" for file tools.
fn describe(id: &str, name: &str, arguments_json: &str) -> ToolCallStarted {
    let args = raw_json(arguments_json).unwrap_or_default();
    let path = args.get("path").and_then(|p| p.as_str());
    let command = args.get("command").and_then(|c| c.as_str());
    let title = match (name, command, path) {
        ("execute_command", Some(command), _) => command.to_owned(),
        (name, _, Some(path)) => format!("{name} {path}"),
        (name, _, None) => name.to_owned(),
    };
    ToolCallStarted {
        id: id.to_owned(),
        name: name.to_owned(),
        title,
        kind: ToolKind::Unspecified as i32,
        raw_input_json: arguments_json.to_owned(),
        locations: path.map(|p| vec![p.to_owned()]).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use agent_client_protocol::v1::schema::SelectedPermissionOutcome;
    use openheim_proto::common::v1::{
        ContentBlock as WireBlock, FileDiff, Thinking, ToolCall, ToolResult,
    };

    use super::*;

    fn message(role: Role, blocks: Vec<Block>) -> Message {
        Message {
            role: role as i32,
            content: blocks
                .into_iter()
                .map(|b| WireBlock { block: Some(b) })
                .collect(),
        }
    }

    #[test]
    fn history_replays_in_order() {
        let messages = vec![
            message(Role::User, vec![Block::Text("write it".into())]),
            message(
                Role::Assistant,
                vec![
                    Block::Thinking(Thinking {
                        text: "hmm".into(),
                        signature: String::new(),
                        redacted: false,
                    }),
                    Block::Text("ok".into()),
                    Block::ToolCall(ToolCall {
                        id: "c1".into(),
                        name: "write_file".into(),
                        arguments_json: r#"{"path":"a.txt","content":"x"}"#.into(),
                    }),
                ],
            ),
            message(
                Role::Tool,
                vec![Block::ToolResult(ToolResult {
                    tool_call_id: "c1".into(),
                    content: "Wrote 1 bytes to a.txt".into(),
                    is_error: false,
                    images: Vec::new(),
                })],
            ),
        ];
        let updates = replay(&messages, Path::new("/ws"));
        let kinds: Vec<&str> = updates
            .iter()
            .map(|u| match u {
                SessionUpdate::UserMessageChunk(_) => "user",
                SessionUpdate::AgentThoughtChunk(_) => "thought",
                SessionUpdate::AgentMessageChunk(_) => "agent",
                SessionUpdate::ToolCall(_) => "call",
                SessionUpdate::ToolCallUpdate(_) => "update",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["user", "thought", "agent", "call", "update"]);
        let SessionUpdate::ToolCall(call) = &updates[3] else {
            panic!()
        };
        assert_eq!(call.title, "write_file a.txt");
        assert_eq!(call.kind, acp::ToolKind::Edit);
        assert_eq!(call.locations[0].path, Path::new("/ws/a.txt"));
    }

    /// The ACP mapping of each kind of turn event and of a replayed
    /// history, as clients receive it: a wire change shows up as a snapshot
    /// diff in review.
    #[test]
    fn updates_as_clients_see_them() {
        let started = ToolCallStarted {
            id: "c1".into(),
            name: "write_file".into(),
            title: "write_file a.txt".into(),
            kind: ToolKind::Edit as i32,
            raw_input_json: r#"{"path":"a.txt","content":"x"}"#.into(),
            locations: vec!["a.txt".into()],
        };
        let finished = ToolCallUpdate {
            id: "c1".into(),
            status: ToolCallStatus::Completed as i32,
            content: "Wrote 1 bytes to a.txt".into(),
            raw_output_json: r#"{"bytes":1}"#.into(),
            diffs: vec![FileDiff {
                path: "/ws/a.txt".into(),
                old_text: Some("y".into()),
                new_text: "x".into(),
            }],
        };
        let running = ToolCallUpdate {
            id: "c1".into(),
            status: ToolCallStatus::InProgress as i32,
            ..ToolCallUpdate::default()
        };
        let terminal = TerminalId::new("t1");
        let mut updates = vec![
            text_chunk("Hello".into()),
            thought_chunk("thinking".into()),
            text_chunk(restart_marker("network error")),
            tool_call(&started, Path::new("/ws")),
            tool_call_update(&running),
            tool_call_update(&finished),
            terminal_embed("c2", &terminal),
            finished_in_terminal(&finished, &terminal),
        ];
        let history = [
            message(Role::User, vec![Block::Text("write it".into())]),
            message(Role::Assistant, vec![Block::Text("ok".into())]),
        ];
        updates.extend(replay(&history, Path::new("/ws")));
        let shown: Vec<String> = updates
            .iter()
            .map(|u| serde_json::to_string(u).unwrap())
            .collect();
        insta::assert_snapshot!(shown.join("\n"));
    }

    #[test]
    fn finished_updates_carry_text_diffs_and_raw_output() {
        let update = ToolCallUpdate {
            id: "c1".into(),
            status: ToolCallStatus::Completed as i32,
            content: "Wrote 1 bytes to a.txt".into(),
            raw_output_json: r#"{"bytes":1}"#.into(),
            diffs: vec![FileDiff {
                path: "/ws/a.txt".into(),
                old_text: None,
                new_text: "x".into(),
            }],
        };
        let SessionUpdate::ToolCallUpdate(u) = tool_call_update(&update) else {
            panic!()
        };
        assert_eq!(u.fields.status, Some(acp::ToolCallStatus::Completed));
        let content = u.fields.content.unwrap();
        assert!(matches!(content[1], ToolCallContent::Diff(_)));
        assert_eq!(u.fields.raw_output, Some(serde_json::json!({"bytes": 1})));
    }

    #[test]
    fn commands_in_a_terminal_keep_showing_it() {
        let terminal = TerminalId::new("t1");
        let SessionUpdate::ToolCallUpdate(embed) = terminal_embed("c1", &terminal) else {
            panic!()
        };
        assert_eq!(
            embed.fields.status, None,
            "embedding does not change the status"
        );
        let update = |status: ToolCallStatus| ToolCallUpdate {
            id: "c1".into(),
            status: status as i32,
            content: "Cancelled by user.".into(),
            ..ToolCallUpdate::default()
        };
        let SessionUpdate::ToolCallUpdate(done) =
            finished_in_terminal(&update(ToolCallStatus::Completed), &terminal)
        else {
            panic!()
        };
        let content = done.fields.content.unwrap();
        assert!(
            matches!(&content[..], [ToolCallContent::Terminal(t)] if t.terminal_id == terminal)
        );
        let SessionUpdate::ToolCallUpdate(failed) =
            finished_in_terminal(&update(ToolCallStatus::Failed), &terminal)
        else {
            panic!()
        };
        let content = failed.fields.content.unwrap();
        assert!(matches!(
            &content[..],
            [ToolCallContent::Terminal(_), ToolCallContent::Content(_)]
        ));
    }

    #[test]
    fn unanswered_permission_requests_reject() {
        let selected = |id: &'static str| {
            RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(id))
        };
        assert_eq!(decision(Some(&selected(ALLOW_ONCE))), Decision::AllowOnce);
        assert_eq!(
            decision(Some(&selected(ALLOW_ALWAYS))),
            Decision::AllowAlways
        );
        assert_eq!(
            decision(Some(&selected(REJECT_ALWAYS))),
            Decision::RejectAlways
        );
        assert_eq!(decision(Some(&selected("bogus"))), Decision::RejectOnce);
        assert_eq!(
            decision(Some(&RequestPermissionOutcome::Cancelled)),
            Decision::RejectOnce
        );
        assert_eq!(decision(None), Decision::RejectOnce);
    }
}
