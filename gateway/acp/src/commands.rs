//! The slash commands a session offers (`available_commands_update`) and
//! those answered here when they come back as a prompt: `/model`,
//! `/thinking`, `/skills`, `/memory`, `/tools` and `/mcp` change or show a
//! session setting without asking the model; `/compact` is a turn of the
//! agent loop (`prompt.rs`). A command's answer is an agent message; it is
//! not part of the conversation the model sees.

use agent_client_protocol::v1::schema::{
    AvailableCommand, AvailableCommandInput, AvailableCommandsUpdate, ConfigOptionUpdate,
    SessionUpdate, UnstructuredCommandInput,
};
use openheim_proto::agent_loop::v1::{
    ForgetMemoryRequest, ListMemoryRequest, ListSkillsRequest, ListToolsRequest,
    SetSessionSkillsRequest,
};

use crate::error::AcpError;
use crate::state::{Connection, SessionView};
use crate::thinking::{self, COMPACT_COMMAND};

/// Every slash command of a session, with the hint of its input. The one
/// list: extend it here (or append to what it returns) so clients see one
/// `available_commands_update`.
pub fn available() -> Vec<AvailableCommand> {
    let command = |name: &str, description: &str, hint: &str| {
        let command = AvailableCommand::new(name, description);
        match hint {
            "" => command,
            hint => command.input(Some(AvailableCommandInput::Unstructured(
                UnstructuredCommandInput::new(hint),
            ))),
        }
    };
    vec![
        command(
            COMPACT_COMMAND,
            "Summarise the conversation so far to free the context window",
            "what the summary should keep above all (optional)",
        ),
        command(
            "model",
            "Show or switch the session's model",
            "provider/model (optional)",
        ),
        command(
            "thinking",
            "Show or set how hard the model reasons",
            "default, off, low, medium, high or a token budget (optional)",
        ),
        command(
            "skills",
            "List the session's skills, or add or remove one",
            "add NAME | remove NAME (optional)",
        ),
        command(
            "memory",
            "List or search long-term memory notes, or forget one",
            "QUERY | forget ID (optional)",
        ),
        command(
            "tools",
            "The tools the model is offered in this session",
            "",
        ),
        command("mcp", "The MCP servers and their status", ""),
    ]
}

/// The `available_commands_update` of a session.
pub fn update(commands: Vec<AvailableCommand>) -> SessionUpdate {
    SessionUpdate::AvailableCommandsUpdate(AvailableCommandsUpdate::new(commands))
}

/// A command answered by the adapter itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Model(String),
    Thinking(String),
    Skills(String),
    Memory(String),
    Tools,
    Mcp,
}

/// The local command a one-text-block prompt is, if any (`/compact` and
/// unknown names are prompts).
pub fn parse(text: &str) -> Option<Local> {
    let rest = text.trim().strip_prefix('/')?;
    let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim().to_owned();
    Some(match name {
        "model" => Local::Model(arg),
        "thinking" => Local::Thinking(arg),
        "skills" => Local::Skills(arg),
        "memory" => Local::Memory(arg),
        "tools" if arg.is_empty() => Local::Tools,
        "mcp" if arg.is_empty() => Local::Mcp,
        _ => return None,
    })
}

/// What a command answers: the text to show, and updates to send first
/// (the config options after a change).
pub struct Answer {
    pub text: String,
    pub updates: Vec<SessionUpdate>,
}

impl Answer {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            updates: Vec::new(),
        }
    }
}

/// Runs a local command in `session`. A command the user got wrong is
/// answered with its usage, not an error.
pub async fn run(
    conn: &Connection,
    session: &SessionView,
    command: Local,
) -> Result<Answer, AcpError> {
    match command {
        Local::Model(model) => model_command(conn, session, &model).await,
        Local::Thinking(level) => thinking_command(conn, session, &level),
        Local::Skills(arg) => skills_command(conn, session, &arg).await,
        Local::Memory(arg) => memory_command(conn, session, &arg).await,
        Local::Tools => tools_command(conn, session).await,
        Local::Mcp => mcp_command(conn, session).await,
    }
}

/// The session's config options after a change, for the client's selectors.
fn options_changed(conn: &Connection, session_id: &str) -> Result<SessionUpdate, AcpError> {
    let view = conn.session(session_id)?;
    let options = crate::sessions::config_options(conn, &view);
    Ok(SessionUpdate::ConfigOptionUpdate(ConfigOptionUpdate::new(
        options,
    )))
}

async fn model_command(
    conn: &Connection,
    session: &SessionView,
    model: &str,
) -> Result<Answer, AcpError> {
    if model.is_empty() {
        let current = match session.model.as_str() {
            "" => "the configured default",
            model => model,
        };
        let models = conn.options.models.models.join(", ");
        return Ok(Answer::text(format!(
            "Model: {current}. Available: {models}. Switch with /model provider/model."
        )));
    }
    let now = crate::sessions::switch_model(conn, &session.id, model).await?;
    let now = if now.is_empty() {
        "the configured default".to_owned()
    } else {
        now
    };
    Ok(Answer {
        text: format!("Model switched to {now}."),
        updates: vec![options_changed(conn, &session.id)?],
    })
}

fn thinking_command(
    conn: &Connection,
    session: &SessionView,
    level: &str,
) -> Result<Answer, AcpError> {
    if level.is_empty() {
        let current = session
            .thinking
            .map_or_else(|| "default".to_owned(), |t| t.to_string());
        return Ok(Answer::text(format!(
            "Thinking: {current}. Set it with /thinking default|off|low|medium|high|TOKENS."
        )));
    }
    match thinking::parse(level) {
        Ok(setting) => {
            conn.set_thinking(&session.id, setting);
            Ok(Answer {
                text: format!("Thinking set to {level}."),
                updates: vec![options_changed(conn, &session.id)?],
            })
        }
        Err(error) => Ok(Answer::text(format!(
            "{error}. Use default, off, low, medium, high or a number of tokens."
        ))),
    }
}

async fn skills_command(
    conn: &Connection,
    session: &SessionView,
    arg: &str,
) -> Result<Answer, AcpError> {
    const USAGE: &str = "Usage: /skills [add NAME | remove NAME]";
    let mut skills = session.skills.clone();
    match arg
        .split_once(char::is_whitespace)
        .map(|(a, n)| (a, n.trim()))
    {
        None if arg.is_empty() => {
            let available = conn
                .agent_loop
                .clone()
                .list_skills(ListSkillsRequest {})
                .await
                .map_err(|s| AcpError::from_status(&session.id, &s))?
                .into_inner()
                .names;
            return Ok(Answer::text(format!(
                "Skills: {}. Available: {}.",
                list_or_none(&skills),
                list_or_none(&available)
            )));
        }
        Some(("add", name)) if !name.is_empty() => skills.push(name.to_owned()),
        Some(("remove", name)) if !name.is_empty() => {
            if !skills.iter().any(|s| s == name) {
                return Ok(Answer::text(format!(
                    "{name} is not one of this session's skills."
                )));
            }
            skills.retain(|s| s != name);
        }
        _ => return Ok(Answer::text(USAGE)),
    }
    let request = SetSessionSkillsRequest {
        session_id: session.id.clone(),
        skills,
        caller: conn.options.caller.clone(),
    };
    let info = match conn.agent_loop.clone().set_session_skills(request).await {
        Ok(info) => info.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            return Ok(Answer::text(status.message().to_owned()));
        }
        Err(status) => return Err(AcpError::from_status(&session.id, &status)),
    };
    conn.set_skills(&session.id, info.skills.clone());
    Ok(Answer::text(format!(
        "Skills: {} (from the next prompt).",
        list_or_none(&info.skills)
    )))
}

async fn memory_command(
    conn: &Connection,
    session: &SessionView,
    arg: &str,
) -> Result<Answer, AcpError> {
    if let Some(id) = arg.strip_prefix("forget") {
        let id = id.trim();
        if id.is_empty() {
            return Ok(Answer::text("Usage: /memory [QUERY | forget ID]"));
        }
        let request = ForgetMemoryRequest {
            id: id.to_owned(),
            owner: owner(conn),
        };
        return Ok(match conn.agent_loop.clone().forget_memory(request).await {
            Ok(note) => Answer::text(format!("Forgot: {}", note.into_inner().text)),
            Err(status) => Answer::text(status.message().to_owned()),
        });
    }
    let request = ListMemoryRequest {
        query: arg.to_owned(),
        work_dir: session.work_dir.display().to_string(),
        owner: owner(conn),
        ..ListMemoryRequest::default()
    };
    let notes = match conn.agent_loop.clone().list_memory(request).await {
        Ok(list) => list.into_inner().notes,
        // Memory off or unreachable: say so, as the TUI does.
        Err(status) => return Ok(Answer::text(status.message().to_owned())),
    };
    if notes.is_empty() {
        return Ok(Answer::text("No memory notes."));
    }
    let lines: Vec<String> = notes
        .iter()
        .map(|n| format!("- `{}` {}", n.id, n.text))
        .collect();
    Ok(Answer::text(lines.join("\n")))
}

/// Whose notes `/memory` shows and forgets: the connection's user ("" =
/// the local user).
fn owner(conn: &Connection) -> String {
    conn.options
        .caller
        .as_ref()
        .map(|caller| caller.user.clone())
        .unwrap_or_default()
}

async fn tools_command(conn: &Connection, session: &SessionView) -> Result<Answer, AcpError> {
    let request = ListToolsRequest {
        session_id: session.id.clone(),
        caller: conn.options.caller.clone(),
    };
    let tools = conn
        .agent_loop
        .clone()
        .list_tools(request)
        .await
        .map_err(|s| AcpError::from_status(&session.id, &s))?
        .into_inner()
        .tools;
    let names: Vec<String> = tools.into_iter().map(|t| t.name).collect();
    Ok(Answer::text(format!("Tools: {}.", list_or_none(&names))))
}

async fn mcp_command(conn: &Connection, session: &SessionView) -> Result<Answer, AcpError> {
    let mut servers = crate::mcp::statuses(conn, "").await?;
    servers.extend(crate::mcp::statuses(conn, &session.id).await?);
    if servers.is_empty() {
        return Ok(Answer::text("No MCP servers."));
    }
    let lines: Vec<String> = servers.iter().map(crate::mcp::describe).collect();
    Ok(Answer::text(lines.join("\n")))
}

fn list_or_none(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_commands_are_told_from_prompts() {
        assert_eq!(
            parse("/model mock/big"),
            Some(Local::Model("mock/big".into()))
        );
        assert_eq!(
            parse(" /thinking  high "),
            Some(Local::Thinking("high".into()))
        );
        assert_eq!(parse("/skills"), Some(Local::Skills(String::new())));
        assert_eq!(parse("/tools"), Some(Local::Tools));
        assert_eq!(parse("/compact"), None);
        assert_eq!(parse("/tools are great"), None);
        assert_eq!(parse("/etc/passwd is a file"), None);
        assert_eq!(parse("model"), None);
        let names: Vec<String> = available().into_iter().map(|c| c.name).collect();
        for name in [
            "compact", "model", "thinking", "skills", "memory", "tools", "mcp",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not offered");
        }
    }
}
