//! The session lifecycle besides creation and loading: `session/resume`
//! (attach to a stored session without replaying it), `session/close`
//! (release it on this connection) and `session/delete` (remove it from
//! the store).

use agent_client_protocol::Client;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    CloseSessionRequest, CloseSessionResponse, DeleteSessionRequest, DeleteSessionResponse,
    ResumeSessionRequest, ResumeSessionResponse, SessionNotification,
};
use openheim_proto::agent_loop::v1 as wire;

use crate::error::AcpError;
use crate::modes::mode_state;
use crate::sessions::{admit_servers, config_options, session_meta, view};
use crate::state::Connection;

/// Opens a stored session on this connection without replaying its
/// history (the client still shows it). Its slash commands come with the
/// answer's updates, as for `session/load`, and so does its plan.
pub async fn resume_session(
    conn: &Connection,
    request: ResumeSessionRequest,
    cx: &ConnectionTo<Client>,
) -> Result<ResumeSessionResponse, AcpError> {
    let session_id = request.session_id.0.to_string();
    let (specs, refused) = admit_servers(conn, &request.mcp_servers, &request.cwd);
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
    let mut updates = crate::updates::resumed(&loaded.messages);
    updates.push(crate::mcp_prompts::commands_update(conn, &session_id).await);
    for update in updates {
        cx.send_notification(SessionNotification::new(session_id.clone(), update))
            .map_err(|e| AcpError::Connection(e.message))?;
    }
    let options = config_options(conn, &view);
    conn.open(view);
    conn.commands_unsent(&session_id);
    let meta = session_meta(conn, &session_id, attached, refused).await;
    Ok(ResumeSessionResponse::new()
        .config_options(options)
        .modes(mode_state(&info))
        .meta(meta))
}

/// Cancels the session's running prompt, forgets it on this connection and
/// stops the MCP servers the client attached to it. Its history stays.
pub async fn close_session(
    conn: &Connection,
    request: CloseSessionRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<CloseSessionResponse, AcpError> {
    let session_id = request.session_id.0.to_string();
    conn.close(&session_id)?;
    let close = wire::CloseSessionRequest {
        session_id: session_id.clone(),
    };
    conn.agent_loop
        .clone()
        .close_session(close)
        .await
        .map_err(|s| AcpError::from_status(&session_id, &s))?;
    Ok(CloseSessionResponse::new())
}

/// Deletes a stored session (open on this connection or not). A session
/// whose prompt runs is refused: cancel it first.
pub async fn delete_session(
    conn: &Connection,
    request: DeleteSessionRequest,
    _cx: &ConnectionTo<Client>,
) -> Result<DeleteSessionResponse, AcpError> {
    let session_id = request.session_id.0.to_string();
    if conn.is_running(&session_id) {
        return Err(AcpError::SessionBusy(session_id));
    }
    let delete = wire::DeleteSessionRequest {
        session_id: session_id.clone(),
        caller: conn.options.caller.clone(),
    };
    conn.agent_loop
        .clone()
        .delete_session(delete)
        .await
        .map_err(|s| AcpError::from_status(&session_id, &s))?;
    // Forgotten only once it is gone: a refused deletion leaves it usable.
    let _ = conn.close(&session_id);
    Ok(DeleteSessionResponse::new())
}
