//! The servers the broker knows, global and per session, and their status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use openheim_proto::mcp_broker::v1::{ServerSpec, ServerState, ServerStatus};

use crate::McpBrokerConfig;

/// Why no server connects in this build.
pub const NOT_CONNECTED: &str = "MCP connections are not available in this build yet";

pub struct Registry {
    global: BTreeMap<String, openheim_config::McpServerConfig>,
    sessions: Mutex<HashMap<String, Vec<ServerSpec>>>,
}

impl Registry {
    pub fn new(config: McpBrokerConfig) -> Self {
        for name in config.servers.keys() {
            tracing::warn!(server = %name, "{NOT_CONNECTED}; its tools are not offered");
        }
        Self {
            global: config.servers,
            sessions: Mutex::default(),
        }
    }

    /// Global servers, then those of `session_id` (when not empty).
    pub fn statuses(&self, session_id: &str) -> Vec<ServerStatus> {
        let mut out: Vec<ServerStatus> = self.global.keys().map(|n| failed(n, "")).collect();
        if !session_id.is_empty()
            && let Ok(sessions) = self.sessions.lock()
            && let Some(specs) = sessions.get(session_id)
        {
            out.extend(specs.iter().map(|s| failed(&s.name, session_id)));
        }
        out
    }

    pub fn attach(&self, session_id: &str, servers: Vec<ServerSpec>) -> Vec<ServerStatus> {
        let statuses = servers
            .iter()
            .map(|s| failed(&s.name, session_id))
            .collect();
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(session_id.to_owned(), servers);
        }
        statuses
    }

    pub fn detach(&self, session_id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(session_id);
        }
    }
}

fn failed(name: &str, session_id: &str) -> ServerStatus {
    ServerStatus {
        name: name.to_owned(),
        state: ServerState::Failed as i32,
        tool_count: 0,
        error: NOT_CONNECTED.to_owned(),
        session_id: session_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_configured_and_session_servers() {
        let mut config = McpBrokerConfig::default();
        config
            .servers
            .insert("fs".into(), openheim_config::McpServerConfig::default());
        let registry = Registry::new(config);
        let spec = ServerSpec {
            name: "mine".into(),
            transport: None,
        };
        registry.attach("s1", vec![spec]);
        let names: Vec<_> = registry
            .statuses("s1")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["fs", "mine"]);
        assert_eq!(registry.statuses("s2").len(), 1);
        registry.detach("s1");
        assert_eq!(registry.statuses("s1").len(), 1);
    }
}
