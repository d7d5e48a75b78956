//! Session modes (ACP `modes`, `session/set_mode`): how much a session may
//! do without asking. Each mode is a pair of agent-loop session settings —
//! the approval mode and the read-only flag — so the agent loop, not this
//! adapter, enforces it, and a mode outlives the connection.

use agent_client_protocol::Client;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    CurrentModeUpdate, SessionMode, SessionModeState, SessionNotification, SessionUpdate,
    SetSessionModeRequest, SetSessionModeResponse,
};
use openheim_proto::agent_loop::v1::{self as wire, ApprovalMode, SessionInfo};

use crate::error::AcpError;
use crate::state::Connection;

/// Edits, commands and fetches ask first, as `[permissions]` says.
pub const ASK: &str = "ask";
/// Only read-only tools are offered (plan mode).
pub const READ_ONLY: &str = "read-only";
/// No permission questions.
pub const AUTO: &str = "auto";
/// Every call that would ask is refused (`openheim run --deny`); shown only
/// for sessions that are in it, not offered.
pub const DENY: &str = "deny";

/// The agent-loop settings of a mode a client may pick.
fn settings(mode_id: &str) -> Result<(ApprovalMode, bool), AcpError> {
    match mode_id {
        ASK => Ok((ApprovalMode::Ask, false)),
        READ_ONLY => Ok((ApprovalMode::Ask, true)),
        AUTO => Ok((ApprovalMode::Auto, false)),
        other => Err(AcpError::InvalidParams(format!(
            "unknown mode {other:?}; this agent has {ASK:?}, {READ_ONLY:?} and {AUTO:?}"
        ))),
    }
}

/// The mode a session is in.
pub fn mode_of(info: &SessionInfo) -> &'static str {
    match (info.read_only, info.approval_mode()) {
        (true, _) => READ_ONLY,
        (false, ApprovalMode::Auto) => AUTO,
        (false, ApprovalMode::Deny) => DENY,
        (false, ApprovalMode::Ask | ApprovalMode::Unspecified) => ASK,
    }
}

/// The `modes` of a `session/new` or `session/load` response.
pub fn mode_state(info: &SessionInfo) -> SessionModeState {
    let current = mode_of(info);
    let mut modes = vec![
        SessionMode::new(ASK, "Ask").description(
            "Ask before edits, commands and fetches (as configured in [permissions])".to_owned(),
        ),
        SessionMode::new(READ_ONLY, "Read-only")
            .description("Plan without changing anything: only read-only tools".to_owned()),
        SessionMode::new(AUTO, "Auto").description("Run every tool call without asking".to_owned()),
    ];
    if current == DENY {
        modes.push(
            SessionMode::new(DENY, "Deny")
                .description("Refuse every tool call that would ask".to_owned()),
        );
    }
    SessionModeState::new(current, modes)
}

/// `session/set_mode`: stores the mode with the session (it applies from
/// the next prompt) and confirms it with a `current_mode_update`.
pub async fn set_mode(
    conn: &Connection,
    request: SetSessionModeRequest,
    cx: &ConnectionTo<Client>,
) -> Result<SetSessionModeResponse, AcpError> {
    let session_id = request.session_id.0.to_string();
    conn.session(&session_id)?;
    let (approval, read_only) = settings(&request.mode_id.0)?;
    let change = wire::SetSessionModeRequest {
        session_id: session_id.clone(),
        approval_mode: approval as i32,
        read_only: Some(read_only),
        caller: conn.options.caller.clone(),
    };
    let info = conn
        .agent_loop
        .clone()
        .set_session_mode(change)
        .await
        .map_err(|s| AcpError::from_status(&session_id, &s))?
        .into_inner();
    let update = SessionUpdate::CurrentModeUpdate(CurrentModeUpdate::new(mode_of(&info)));
    cx.send_notification(SessionNotification::new(session_id, update))
        .map_err(|e| AcpError::Connection(e.message))?;
    Ok(SetSessionModeResponse::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(approval: ApprovalMode, read_only: bool) -> SessionInfo {
        SessionInfo {
            approval_mode: approval as i32,
            read_only,
            ..SessionInfo::default()
        }
    }

    #[test]
    fn every_offered_mode_round_trips_through_the_agent_loop_settings() {
        for mode in [ASK, READ_ONLY, AUTO] {
            let (approval, read_only) = settings(mode).unwrap();
            assert_eq!(mode_of(&info(approval, read_only)), mode);
        }
        assert!(matches!(settings(DENY), Err(AcpError::InvalidParams(_))));
        assert!(matches!(settings("yolo"), Err(AcpError::InvalidParams(_))));
    }

    #[test]
    fn deny_is_shown_only_to_sessions_in_it() {
        let offered = |state: SessionModeState| -> Vec<String> {
            state
                .available_modes
                .iter()
                .map(|m| m.id.0.to_string())
                .collect()
        };
        let ask = mode_state(&info(ApprovalMode::Ask, false));
        assert_eq!(&*ask.current_mode_id.0, ASK);
        assert_eq!(offered(ask), [ASK, READ_ONLY, AUTO]);
        let deny = mode_state(&info(ApprovalMode::Deny, false));
        assert_eq!(&*deny.current_mode_id.0, DENY);
        assert_eq!(offered(deny), [ASK, READ_ONLY, AUTO, DENY]);
        let plan = mode_state(&info(ApprovalMode::Auto, true));
        assert_eq!(&*plan.current_mode_id.0, READ_ONLY);
    }
}
