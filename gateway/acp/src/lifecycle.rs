//! The session lifecycle besides creation and loading: `session/resume`
//! (attach to a stored session without replaying it), `session/close`
//! (release it on this connection) and `session/delete` (remove it from
//! the store).

use agent_client_protocol::Client;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    CloseSessionRequest, CloseSessionResponse, DeleteSessionRequest, DeleteSessionResponse,
    ResumeSessionRequest, ResumeSessionResponse,
};
use openheim_proto::agent_loop::v1 as wire;

use crate::error::AcpError;
use crate::modes::mode_state;
use crate::sessions::{StoredSession, open_stored};
use crate::state::Connection;

/// Opens a stored session on this connection without replaying its
/// history (the client still shows it). Its slash commands come with the
/// answer's updates, as for `session/load`, and so does its plan.
pub async fn resume_session(
    conn: &Connection,
    request: ResumeSessionRequest,
    cx: &ConnectionTo<Client>,
) -> Result<ResumeSessionResponse, AcpError> {
    let stored = StoredSession {
        session_id: request.session_id.0.to_string(),
        servers: &request.mcp_servers,
        cwd: &request.cwd,
        replay: false,
    };
    let opened = open_stored(conn, stored, cx).await?;
    Ok(ResumeSessionResponse::new()
        .config_options(opened.options)
        .modes(mode_state(&opened.info))
        .meta(opened.meta))
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
