//! MCP prompts as slash commands: every session's `available_commands`
//! carries the prompts of its MCP servers as `/{server}:{prompt}` next to
//! openheim's own commands, and a prompt that starts with one of them is
//! filled in by the server (through the agent loop's `GetMcpPrompt`)
//! before it is sent. What follows the command is its input: `name=value`
//! pairs, or the value of the prompt's first argument.

use agent_client_protocol::v1::schema::{
    AvailableCommand, AvailableCommandInput, SessionUpdate, UnstructuredCommandInput,
};
use openheim_proto::agent_loop::v1::{
    GetMcpPromptRequest, ListMcpPromptsRequest, ListMcpServersRequest,
};
use openheim_proto::common::v1::ContentBlock;
use openheim_proto::common::v1::content_block::Block;
use openheim_proto::mcp_broker::v1::{McpPrompt, ServerState};

use crate::error::AcpError;
use crate::state::Connection;

/// The `available_commands_update` of a session: openheim's commands
/// (`commands.rs`) plus the session's MCP prompts. A broker that
/// cannot list prompts costs only the prompts.
pub async fn commands_update(conn: &Connection, session_id: &str) -> SessionUpdate {
    let mut commands = crate::commands::available();
    let request = ListMcpPromptsRequest {
        session_id: session_id.to_owned(),
    };
    match conn.agent_loop.clone().list_mcp_prompts(request).await {
        Ok(listed) => commands.extend(listed.into_inner().prompts.iter().map(command)),
        Err(status) => {
            tracing::warn!(error = %status.message(), "MCP prompts are unavailable; offering openheim's commands only");
        }
    }
    crate::commands::update(commands)
}

/// The session's commands again, when an MCP server was still starting
/// the last time they were sent (a turn said so with an MCP notice): the
/// prompts of servers that joined since are added. They stay stale while
/// any server is still starting, so the next turn sends them once more.
pub async fn refresh(conn: &Connection, session_id: &str) -> Option<SessionUpdate> {
    if !conn.commands_stale(session_id) {
        return None;
    }
    let request = ListMcpServersRequest {
        session_id: session_id.to_owned(),
        caller: conn.options.caller.clone(),
    };
    let starting = match conn.agent_loop.clone().list_mcp_servers(request).await {
        Ok(listed) => listed
            .into_inner()
            .servers
            .iter()
            .any(|s| s.state() == ServerState::Connecting),
        Err(_) => true,
    };
    conn.set_commands_stale(session_id, starting);
    Some(commands_update(conn, session_id).await)
}

/// One prompt as a command; its arguments make the input hint.
fn command(prompt: &McpPrompt) -> AvailableCommand {
    let description = match prompt.description.as_str() {
        "" => format!("MCP prompt {} of {}", prompt.name, prompt.server),
        text => text.to_owned(),
    };
    let command = AvailableCommand::new(prompt.command.clone(), description);
    if prompt.arguments.is_empty() {
        return command;
    }
    command.input(Some(AvailableCommandInput::Unstructured(
        UnstructuredCommandInput::new(argument_hint(prompt)),
    )))
}

/// What a prompt command takes, as its input hint: `city=… [state=…]`
/// (optional arguments in brackets); "" when it takes nothing.
pub fn argument_hint(prompt: &McpPrompt) -> String {
    let hint: Vec<String> = prompt
        .arguments
        .iter()
        .map(|a| match a.required {
            true => format!("{}=…", a.name),
            false => format!("[{}=…]", a.name),
        })
        .collect();
    hint.join(" ")
}

/// `/{server}:{prompt} input` as (command, input); `None` for anything
/// else (openheim's own commands have no `:`).
pub fn split(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (command, input) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (server, prompt) = command.split_once(':')?;
    (!server.is_empty() && !prompt.is_empty()).then_some((command, input.trim()))
}

/// The prompt to send: `blocks` as they are (also when no server has the
/// prompt named), or, when the first block is an MCP prompt command, the
/// filled-in prompt (its text and images) in
/// its place, followed by the other blocks.
pub async fn expand(
    conn: &Connection,
    session_id: &str,
    mut blocks: Vec<ContentBlock>,
) -> Result<Vec<ContentBlock>, AcpError> {
    let Some(Block::Text(first)) = blocks.first().and_then(|b| b.block.as_ref()) else {
        return Ok(blocks);
    };
    let Some((command, input)) = split(first) else {
        return Ok(blocks);
    };
    let request = GetMcpPromptRequest {
        session_id: session_id.to_owned(),
        command: command.to_owned(),
        input: input.to_owned(),
        arguments: Default::default(),
    };
    let filled = match conn.agent_loop.clone().get_mcp_prompt(request).await {
        Ok(filled) => filled.into_inner(),
        // No such prompt: the text was not meant as one (`/etc/hosts:3 …`).
        Err(status) if status.code() == tonic::Code::NotFound => return Ok(blocks),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            return Err(AcpError::InvalidParams(status.message().to_owned()));
        }
        Err(status) => return Err(AcpError::from_status(session_id, &status)),
    };
    let mut expanded = vec![ContentBlock {
        block: Some(Block::Text(filled.text)),
    }];
    expanded.extend(filled.images.into_iter().map(|image| ContentBlock {
        block: Some(Block::Image(image)),
    }));
    expanded.extend(blocks.drain(1..));
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use openheim_proto::mcp_broker::v1::McpPromptArgument;

    use super::*;

    #[test]
    fn prompt_commands_are_recognised() {
        assert_eq!(
            split("/everything:args-prompt city=Paris"),
            Some(("everything:args-prompt", "city=Paris"))
        );
        assert_eq!(split("/srv:p"), Some(("srv:p", "")));
        assert_eq!(split("/compact keep the plan"), None);
        assert_eq!(split("what is 2:3?"), None);
        assert_eq!(split("/:p"), None);
    }

    #[test]
    fn arguments_make_the_input_hint() {
        let prompt = McpPrompt {
            server: "everything".into(),
            name: "args-prompt".into(),
            command: "everything:args-prompt".into(),
            description: String::new(),
            arguments: vec![
                McpPromptArgument {
                    name: "city".into(),
                    description: String::new(),
                    required: true,
                },
                McpPromptArgument {
                    name: "state".into(),
                    description: String::new(),
                    required: false,
                },
            ],
        };
        let value = serde_json::to_value(command(&prompt)).unwrap_or_default();
        assert_eq!(value["name"], "everything:args-prompt");
        assert_eq!(value["description"], "MCP prompt args-prompt of everything");
        assert_eq!(value["input"]["hint"], "city=… [state=…]");
    }
}
