//! MCP server statuses for the client, as `_meta.openheim.mcpServers`: the
//! configured servers in `initialize`, a session's own servers in
//! `session/new` and `session/load`. ACP has no field for them; `_meta` is
//! its place for what a protocol does not define.

use agent_client_protocol::v1::schema::Meta;
use openheim_proto::agent_loop::v1::ListMcpServersRequest;
use openheim_proto::mcp_broker::v1::{ServerState, ServerStatus};
use serde_json::{Value, json};

use crate::error::AcpError;
use crate::state::Connection;

/// The `_meta` key under which openheim puts what it adds.
pub const META_KEY: &str = "openheim";

/// The statuses of the configured servers (`session_id` empty) or of a
/// session's own servers.
pub async fn statuses(conn: &Connection, session_id: &str) -> Result<Vec<ServerStatus>, AcpError> {
    let request = ListMcpServersRequest {
        session_id: session_id.to_owned(),
        caller: conn.options.caller.clone(),
    };
    let servers = conn
        .agent_loop
        .clone()
        .list_mcp_servers(request)
        .await
        .map_err(|s| AcpError::from_status(session_id, &s))?
        .into_inner()
        .servers;
    Ok(servers
        .into_iter()
        .filter(|s| s.session_id == session_id)
        .collect())
}

/// `{"openheim": {"mcpServers": [...]}}`, or `mcpServersError` saying why
/// the statuses are unknown.
pub fn meta(statuses: Result<Vec<ServerStatus>, AcpError>) -> Meta {
    let inner = match statuses {
        Ok(servers) => {
            let list: Vec<Value> = servers.iter().map(server_json).collect();
            json!({ "mcpServers": list })
        }
        Err(error) => {
            tracing::warn!(%error, "MCP server statuses are unavailable");
            json!({ "mcpServersError": error.to_string() })
        }
    };
    let mut meta = Meta::new();
    meta.insert(META_KEY.to_owned(), inner);
    meta
}

/// One line about a server for the `/mcp` command: name, state, tools,
/// and the error of a failed one.
pub fn describe(server: &ServerStatus) -> String {
    let json = server_json(server);
    let state = json["state"].as_str().unwrap_or("unknown");
    let mut line = format!("- {}: {state}, {} tools", server.name, server.tool_count);
    if !server.error.is_empty() {
        line.push_str(&format!(" ({})", server.error));
    }
    line
}

fn server_json(server: &ServerStatus) -> Value {
    let state = match server.state() {
        ServerState::Connecting => "connecting",
        ServerState::Connected => "connected",
        ServerState::Failed => "failed",
        ServerState::Unspecified => "unknown",
    };
    let mut value = json!({
        "name": server.name,
        "state": state,
        "toolCount": server.tool_count,
    });
    if !server.error.is_empty() {
        value["error"] = Value::String(server.error.clone());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_meta_entries() {
        let servers = vec![
            ServerStatus {
                name: "testserver".into(),
                state: ServerState::Connected as i32,
                tool_count: 2,
                ..ServerStatus::default()
            },
            ServerStatus {
                name: "broken".into(),
                state: ServerState::Failed as i32,
                error: "initialize timed out".into(),
                ..ServerStatus::default()
            },
        ];
        let meta = meta(Ok(servers));
        assert_eq!(
            meta[META_KEY],
            json!({"mcpServers": [
                {"name": "testserver", "state": "connected", "toolCount": 2},
                {"name": "broken", "state": "failed", "toolCount": 0, "error": "initialize timed out"},
            ]})
        );
        let unknown = super::meta(Err(AcpError::Unavailable("down".into())));
        assert!(unknown[META_KEY]["mcpServersError"].is_string());
    }
}
