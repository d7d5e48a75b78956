//! Session methods: `session/new`, `session/load` (with history replay),
//! `session/list`, and model selection (`session/set_config_option`,
//! `session/set_model`). Each is a few agent-loop RPCs. Modes are in
//! `modes.rs`.

use std::path::PathBuf;

use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    self as acp, ListSessionsRequest, ListSessionsResponse, LoadSessionRequest,
    LoadSessionResponse, NewSessionRequest, NewSessionResponse, SessionNotification,
    SetSessionConfigOptionRequest, SetSessionConfigOptionResponse,
};
use agent_client_protocol::{Client, JsonRpcRequest, JsonRpcResponse};
use openheim_proto::agent_loop::v1::{
    self as wire, ApprovalMode, CreateSessionRequest, SessionInfo, SetSessionModelRequest,
};
use serde::{Deserialize, Serialize};

use crate::convert::{iso8601, mcp_servers};
use crate::error::AcpError;
use crate::models::{MODEL_OPTION, ModelCatalog};
use crate::modes::mode_state;
use crate::state::{Connection, SessionView};
use crate::thinking::{self, THINKING_OPTION};
use openheim_proto::mcp_broker::v1::{ServerSpec, ServerState, ServerStatus};

/// `session/set_model` (the model selector of Zed and other clients that
/// predate session config options): `{sessionId, modelId}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonRpcRequest)]
#[request(method = "session/set_model", response = SetSessionModelResponse)]
#[serde(rename_all = "camelCase")]
pub struct SetModelRequest {
    pub session_id: String,
    pub model_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonRpcResponse)]
pub struct SetSessionModelResponse {}

/// What `session/new` reads from `_meta`: `skills` (a list or a
/// comma-separated string), `model`, and `readOnly` (plan mode).
#[derive(Debug, Default, PartialEq)]
struct NewSessionMeta {
    skills: Vec<String>,
    model: String,
    read_only: bool,
}

impl NewSessionMeta {
    fn parse(meta: Option<&acp::Meta>) -> Result<Self, AcpError> {
        let Some(meta) = meta else {
            return Ok(Self::default());
        };
        let skills = match meta.get("skills") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(list)) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AcpError::InvalidParams("_meta.skills must list strings".into()))?,
            Some(_) => {
                return Err(AcpError::InvalidParams(
                    "_meta.skills must list strings".into(),
                ));
            }
        };
        let model = match meta.get("model") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(model)) => model.clone(),
            Some(_) => {
                return Err(AcpError::InvalidParams(
                    "_meta.model must be a string".into(),
                ));
            }
        };
        let read_only = meta
            .get("readOnly")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok(Self {
            skills,
            model,
            read_only,
        })
    }
}

/// What this connection knows of a session the agent loop returned; the
/// thinking setting is this connection's (kept when the session was
/// already open here).
pub(crate) fn view(conn: &Connection, info: &SessionInfo) -> SessionView {
    SessionView {
        id: info.id.clone(),
        work_dir: PathBuf::from(&info.work_dir),
        model: info.model.clone(),
        thinking: conn.session(&info.id).ok().and_then(|v| v.thinking),
        skills: info.skills.clone(),
    }
}

/// Every config option of a session: the model, then thinking.
pub(crate) fn config_options(
    conn: &Connection,
    view: &SessionView,
) -> Vec<acp::SessionConfigOption> {
    let mut options = conn.options.models.config_options(&view.model);
    options.push(thinking::option(view.thinking));
    options
}

/// `_meta` of a session's response: the statuses of the servers the client
/// attached to it (none asked for, none listed), and of those refused.
pub(crate) async fn session_meta(
    conn: &Connection,
    session_id: &str,
    attached: bool,
    refused: Vec<ServerStatus>,
) -> acp::Meta {
    let statuses = match attached {
        true => crate::mcp::statuses(conn, session_id).await,
        false => Ok(Vec::new()),
    };
    crate::mcp::meta(statuses.map(|mut list| {
        list.extend(refused);
        list
    }))
}

/// The client's MCP servers this connection starts, as specs, and a failed
/// status for each one it refuses: stdio servers (commands on this machine)
/// when the connection does not accept them.
pub(crate) fn admit_servers(
    conn: &Connection,
    servers: &[acp::McpServer],
    cwd: &std::path::Path,
) -> (Vec<ServerSpec>, Vec<ServerStatus>) {
    let (stdio, other): (Vec<_>, Vec<_>) = servers
        .iter()
        .cloned()
        .partition(|s| matches!(s, acp::McpServer::Stdio(_)));
    if conn.options.client_stdio_mcp {
        return (mcp_servers(servers, cwd), Vec::new());
    }
    let refused = stdio
        .iter()
        .filter_map(|server| match server {
            acp::McpServer::Stdio(stdio) => Some(stdio.name.clone()),
            _ => None,
        })
        .map(|name| {
            tracing::info!(server = %name, "refused a client's stdio MCP server");
            ServerStatus {
                name,
                state: ServerState::Failed as i32,
                error: "this server does not start stdio MCP servers for its clients (server.allow_client_stdio_mcp = false); use an HTTP MCP server".to_owned(),
                ..ServerStatus::default()
            }
        })
        .collect();
    (mcp_servers(&other, cwd), refused)
}

pub async fn new_session(
    conn: &Connection,
    request: NewSessionRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<NewSessionResponse, AcpError> {
    let meta = NewSessionMeta::parse(request.meta.as_ref())?;
    let (specs, refused) = admit_servers(conn, &request.mcp_servers, &request.cwd);
    let attached = !specs.is_empty();
    let create = CreateSessionRequest {
        work_dir: request.cwd.display().to_string(),
        skills: meta.skills,
        model: meta.model,
        mcp_servers: specs,
        // An ACP client is there to answer permission questions.
        approval_mode: ApprovalMode::Ask as i32,
        read_only: meta.read_only,
        parent: None,
        agent: None,
        caller: conn.options.caller.clone(),
    };
    let info = conn
        .agent_loop
        .clone()
        .create_session(create)
        .await
        .map_err(|s| AcpError::from_status("", &s))?
        .into_inner();
    let view = view(conn, &info);
    let options = config_options(conn, &view);
    conn.open(view);
    let meta = session_meta(conn, &info.id, attached, refused).await;
    Ok(NewSessionResponse::new(info.id.clone())
        .config_options(options)
        .modes(mode_state(&info))
        .meta(meta))
}

/// Loads a stored session, replays its history as session updates, then
/// answers (ACP requires the replay to come before the response).
pub async fn load_session(
    conn: &Connection,
    request: LoadSessionRequest,
    cx: &ConnectionTo<Client>,
) -> Result<LoadSessionResponse, AcpError> {
    let stored = StoredSession {
        session_id: request.session_id.0.to_string(),
        servers: &request.mcp_servers,
        cwd: &request.cwd,
        replay: true,
    };
    let opened = open_stored(conn, stored, cx).await?;
    Ok(LoadSessionResponse::new()
        .config_options(opened.options)
        .modes(mode_state(&opened.info))
        .meta(opened.meta))
}

/// A stored session a client asks to open (`session/load`, `session/resume`).
pub(crate) struct StoredSession<'a> {
    pub session_id: String,
    pub servers: &'a [acp::McpServer],
    pub cwd: &'a std::path::Path,
    /// Replay the history as updates (`load`), or only the plan (`resume`).
    pub replay: bool,
}

/// What the answer to opening a stored session carries.
pub(crate) struct Opened {
    pub info: SessionInfo,
    pub options: Vec<acp::SessionConfigOption>,
    pub meta: acp::Meta,
}

/// Opens a stored session on this connection, for `session/load` and
/// `session/resume` alike: loads it for this caller with the client's MCP
/// servers attached, sends its updates (the replay or only the plan, then
/// its slash commands: a loaded conversation can be compacted at once)
/// before the answer, and opens it on the connection.
pub(crate) async fn open_stored(
    conn: &Connection,
    stored: StoredSession<'_>,
    cx: &ConnectionTo<Client>,
) -> Result<Opened, AcpError> {
    let session_id = stored.session_id;
    let (specs, refused) = admit_servers(conn, stored.servers, stored.cwd);
    let attached = !specs.is_empty();
    let load = wire::LoadSessionRequest {
        session_id: session_id.clone(),
        mcp_servers: specs,
        caller: conn.options.caller.clone(),
    };
    let loaded = conn
        .agent_loop
        .clone()
        .load_session(load)
        .await
        .map_err(|s| AcpError::from_status(&session_id, &s))?
        .into_inner();
    let info = loaded
        .session
        .ok_or_else(|| AcpError::AgentLoop("the agent loop sent no session".into()))?;
    let view = view(conn, &info);
    let mut updates = match stored.replay {
        true => crate::updates::replay(&loaded.messages, &view.work_dir),
        false => crate::updates::resumed(&loaded.messages),
    };
    updates.push(crate::mcp_prompts::commands_update(conn, &session_id).await);
    for update in updates {
        cx.send_notification(SessionNotification::new(session_id.clone(), update))
            .map_err(|e| AcpError::Connection(e.message))?;
    }
    let options = config_options(conn, &view);
    conn.open(view);
    conn.commands_unsent(&session_id);
    let meta = session_meta(conn, &session_id, attached, refused).await;
    Ok(Opened {
        info,
        options,
        meta,
    })
}

/// Newest first; the agent loop's cursor is passed through. A `cwd` filter
/// applies per page, so a page may come back short with a cursor to go on.
pub async fn list_sessions(
    conn: &Connection,
    request: ListSessionsRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<ListSessionsResponse, AcpError> {
    let list = wire::ListSessionsRequest {
        page_size: 0,
        cursor: request.cursor.unwrap_or_default(),
        caller: conn.options.caller.clone(),
        all_users: false,
    };
    let page = conn
        .agent_loop
        .clone()
        .list_sessions(list)
        .await
        .map_err(|s| AcpError::from_status("", &s))?
        .into_inner();
    let sessions = page
        .sessions
        .iter()
        .filter(|s| {
            request
                .cwd
                .as_ref()
                .is_none_or(|cwd| std::path::Path::new(&s.work_dir) == cwd)
        })
        .map(|s| {
            acp::SessionInfo::new(s.id.clone(), PathBuf::from(&s.work_dir))
                .title(Some(s.title.clone()).filter(|t| !t.is_empty()))
                .updated_at(iso8601(s.updated_at_ms))
        })
        .collect();
    let next = Some(page.next_cursor).filter(|c| !c.is_empty());
    Ok(ListSessionsResponse::new(sessions).next_cursor(next))
}

/// Switches the model of an open session; returns the new model.
pub(crate) async fn switch_model(
    conn: &Connection,
    session_id: &str,
    value: &str,
) -> Result<String, AcpError> {
    conn.session(session_id)?;
    let request = SetSessionModelRequest {
        session_id: session_id.to_owned(),
        model: ModelCatalog::model_for(value),
        caller: conn.options.caller.clone(),
    };
    let info = conn
        .agent_loop
        .clone()
        .set_session_model(request)
        .await
        .map_err(|s| AcpError::from_status(session_id, &s))?
        .into_inner();
    conn.set_model(session_id, info.model.clone());
    Ok(info.model)
}

pub async fn set_config_option(
    conn: &Connection,
    request: SetSessionConfigOptionRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<SetSessionConfigOptionResponse, AcpError> {
    let session_id = request.session_id.0.to_string();
    let option = &*request.config_id.0;
    if option != MODEL_OPTION && option != THINKING_OPTION {
        return Err(AcpError::InvalidParams(format!(
            "unknown config option {option:?}; this agent has \"{MODEL_OPTION}\" and \"{THINKING_OPTION}\""
        )));
    }
    let value = request
        .value
        .as_value_id()
        .ok_or_else(|| AcpError::InvalidParams(format!("the {option} option takes a value id")))?;
    if option == MODEL_OPTION {
        switch_model(conn, &session_id, &value.0).await?;
    } else {
        conn.session(&session_id)?;
        let setting =
            thinking::parse(&value.0).map_err(|e| AcpError::InvalidParams(e.to_string()))?;
        conn.set_thinking(&session_id, setting);
    }
    let view = conn.session(&session_id)?;
    Ok(SetSessionConfigOptionResponse::new(config_options(
        conn, &view,
    )))
}

pub async fn set_model(
    conn: &Connection,
    request: SetModelRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<SetSessionModelResponse, AcpError> {
    switch_model(conn, &request.session_id, &request.model_id).await?;
    Ok(SetSessionModelResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_session_meta_reads_skills_model_and_read_only() {
        let meta: acp::Meta = serde_json::from_value(serde_json::json!({
            "skills": ["a", "b"], "model": "mock/m", "readOnly": true
        }))
        .unwrap();
        let parsed = NewSessionMeta::parse(Some(&meta)).unwrap();
        assert_eq!(parsed.skills, ["a", "b"]);
        assert_eq!(parsed.model, "mock/m");
        assert!(parsed.read_only);
        let meta: acp::Meta =
            serde_json::from_value(serde_json::json!({"skills": "a, b,"})).unwrap();
        assert_eq!(
            NewSessionMeta::parse(Some(&meta)).unwrap().skills,
            ["a", "b"]
        );
        let meta: acp::Meta = serde_json::from_value(serde_json::json!({"skills": [1]})).unwrap();
        assert!(NewSessionMeta::parse(Some(&meta)).is_err());
        assert_eq!(
            NewSessionMeta::parse(None).unwrap(),
            NewSessionMeta::default()
        );
    }
}
