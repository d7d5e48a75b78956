//! MCP servers that were still starting when a turn began: the turn does
//! not wait for them. It says so once, asks mcp-broker again before each
//! later model call, and adds their tools as soon as they are ready (with a
//! second notice naming what joined). A server that never comes up costs
//! nothing but its tools.

use std::collections::HashSet;

use openheim_proto::agent_loop::v1::{NoticeKind, NoticeLevel};
use openheim_proto::common::v1::ToolDefinition;

use super::Turn;
use crate::backends::ToolRoute;

/// The MCP servers a turn still waits for, by name.
#[derive(Debug, Default)]
pub(crate) struct LateServers {
    pending: Vec<String>,
}

impl LateServers {
    pub(crate) fn new(pending: Vec<String>) -> Self {
        Self { pending }
    }
}

impl Turn {
    /// Tells the user once, at the start, which servers the turn begins
    /// without.
    pub(super) async fn announce_pending(&self, late: &LateServers) {
        if late.pending.is_empty() {
            return;
        }
        let message = format!(
            "{} still starting: this turn begins without {} tools and adds them as soon as {} ready.",
            servers_named(&late.pending),
            if late.pending.len() == 1 {
                "its"
            } else {
                "their"
            },
            if late.pending.len() == 1 {
                "it is"
            } else {
                "they are"
            },
        );
        self.notice(NoticeLevel::Info, NoticeKind::Mcp, message)
            .await;
    }

    /// Before a model call: adds the tools of servers that became ready
    /// since the turn began. Returns whether `tools` changed.
    pub(super) async fn add_late_tools(
        &self,
        late: &mut LateServers,
        tools: &mut Vec<(ToolDefinition, ToolRoute)>,
    ) -> bool {
        if late.pending.is_empty() {
            return false;
        }
        let (offered, still_pending) = match self
            .backends
            .mcp_tools(&self.meta.id, self.meta.read_only)
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%error, "re-listing MCP tools failed; trying at the next call");
                return false;
            }
        };
        let joined: Vec<String> = late
            .pending
            .iter()
            .filter(|name| !still_pending.contains(name))
            .cloned()
            .collect();
        late.pending = still_pending;
        if joined.is_empty() {
            return false;
        }
        let added = self.new_tools(offered, tools, &joined);
        if added.is_empty() {
            return false;
        }
        let message = format!(
            "{} ready: added {} to this turn.",
            servers_named(&joined),
            added.join(", ")
        );
        self.notice(NoticeLevel::Info, NoticeKind::Mcp, message)
            .await;
        true
    }

    /// Appends the tools of `joined` servers that the turn does not offer
    /// yet (and the session may use); returns their names.
    fn new_tools(
        &self,
        offered: Vec<ToolDefinition>,
        tools: &mut Vec<(ToolDefinition, ToolRoute)>,
        joined: &[String],
    ) -> Vec<String> {
        let known: HashSet<String> = tools.iter().map(|(d, _)| d.name.clone()).collect();
        let allowed = self.meta.agent.as_ref().and_then(|run| run.tools.as_ref());
        let mut added = Vec::new();
        for definition in offered {
            // A joined server's tools, and the broker's own tools that came
            // with it (`read_mcp_resource` once some server has resources).
            let from_joined = definition.source == "mcp"
                || joined
                    .iter()
                    .any(|server| definition.source == openheim_mcp_source(server));
            let permitted = allowed.is_none_or(|names| names.contains(&definition.name));
            if from_joined && permitted && !known.contains(&definition.name) {
                added.push(definition.name.clone());
                tools.push((definition, ToolRoute::Mcp));
            }
        }
        added
    }
}

/// `ToolDefinition.source` of an MCP server's tools (mcp-broker's mapping).
fn openheim_mcp_source(server: &str) -> String {
    format!("mcp:{server}")
}

/// "MCP server `a`" or "MCP servers `a`, `b`".
fn servers_named(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        1 => format!("MCP server {} is", quoted[0]),
        _ => format!("MCP servers {} are", quoted.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_named_in_one_sentence() {
        assert_eq!(servers_named(&["a".into()]), "MCP server `a` is");
        assert_eq!(
            servers_named(&["a".into(), "b".into()]),
            "MCP servers `a`, `b` are"
        );
    }
}
