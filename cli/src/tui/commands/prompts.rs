//! MCP prompts as slash commands: `/{server}:{prompt} input` is filled in
//! by the server (the same rule as over ACP, `openheim_acp`'s
//! `split_mcp_prompt_command`) and the result is sent as the prompt.
//! `/mcp` lists them, and Tab completes their names once they are known.

use super::ParseError;
use crate::tui::app::{App, Flow};
use crate::tui::theme::Role;
use crate::tui::turn::Ask;

impl App {
    /// Runs `/{server}:{prompt} input`; `unknown` is shown when no server
    /// of the session has that prompt.
    pub(in crate::tui) async fn mcp_prompt(
        &mut self,
        command: &str,
        input: &str,
        unknown: ParseError,
    ) -> anyhow::Result<Flow> {
        let session = self.ensure_session().await?;
        match session.mcp_prompt(command, input).await {
            Ok(Some((text, images))) => {
                self.line(
                    Some(Role::Dim),
                    &format!("  /{command} filled in by its server"),
                )?;
                self.turn(Ask::Filled { text, images }).await
            }
            Ok(None) => {
                self.error(&unknown.to_string())?;
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.error(&e.to_string())?;
                Ok(Flow::Continue)
            }
        }
    }

    /// The session's MCP prompt commands (`/{server}:{prompt}` and the
    /// argument hint), also handed to Tab completion; empty when the
    /// servers have none or cannot say.
    pub(in crate::tui) async fn prompt_commands(&mut self) -> Vec<(String, String)> {
        let Some(session) = self.session.as_ref() else {
            return Vec::new();
        };
        let prompts = match session.mcp_prompts().await {
            Ok(prompts) => prompts,
            Err(e) => {
                tracing::debug!(error = %e, "MCP prompts are unavailable");
                return Vec::new();
            }
        };
        let rows: Vec<(String, String)> = prompts
            .iter()
            .map(|p| {
                let left = format!("/{} {}", p.command, openheim_acp::mcp_prompt_hint(p));
                (left.trim_end().to_owned(), p.description.clone())
            })
            .collect();
        if let Ok(mut vocabulary) = self.vocabulary.lock() {
            vocabulary.prompts = prompts.iter().map(|p| format!("/{}", p.command)).collect();
        }
        rows
    }
}
