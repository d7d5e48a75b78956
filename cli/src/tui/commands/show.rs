//! Commands that show things: `/help`, `/tools`, `/mcp`, `/usage` and
//! `/memory` (which can also forget a note).

use openheim_proto::agent_loop::v1::ListMemoryRequest;

use super::super::app::App;
use super::super::status::{compact, grouped};
use super::super::theme::Role;
use super::{COMMANDS, ParseError};
use crate::memory::note_line;

/// What `/memory` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MemoryAction {
    /// This project's and the user's notes, newest first.
    List,
    /// The notes most relevant to the words.
    Search(String),
    Forget(String),
}

impl MemoryAction {
    pub(super) fn parse(args: &str) -> Result<Self, ParseError> {
        const USAGE: &str = "/memory [QUERY | forget ID]";
        let mut words = args.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (None, _, _) => Ok(Self::List),
            (Some("forget" | "rm"), Some(id), None) => Ok(Self::Forget(id.to_owned())),
            (Some("forget" | "rm"), _, _) => Err(ParseError::Usage(USAGE)),
            _ => Ok(Self::Search(args.to_owned())),
        }
    }
}

impl App {
    pub(super) fn help(&mut self) -> anyhow::Result<()> {
        let rows: Vec<(String, String)> = COMMANDS
            .iter()
            .map(|spec| {
                let left = if spec.args.is_empty() {
                    spec.name.to_owned()
                } else {
                    format!("{} {}", spec.name, spec.args)
                };
                (left, spec.help.to_owned())
            })
            .collect();
        self.table(&rows)?;
        self.dim("Enter sends · Alt-Enter or a trailing \\ adds a line · Tab completes · Ctrl-R searches history")?;
        self.dim("/server:prompt runs an MCP server's prompt (/mcp lists them)")?;
        self.dim("Ctrl-C or Esc cancels a running turn · Ctrl-D exits")
    }

    pub(super) async fn tools(&mut self) -> anyhow::Result<()> {
        let session = self.ensure_session().await?;
        let tools = match session.tools().await {
            Ok(tools) => tools,
            Err(e) => return self.error(&e.to_string()),
        };
        let rows: Vec<(String, String)> = tools
            .iter()
            .map(|t| {
                let first = t.description.split(['.', '\n']).next().unwrap_or_default();
                let source = if t.source.is_empty() || t.source == "builtin" {
                    String::new()
                } else {
                    format!(" [{}]", t.source)
                };
                (t.name.clone(), format!("{}{source}", first.trim()))
            })
            .collect();
        self.table(&rows)?;
        self.dim(&format!("{} tools", tools.len()))
    }

    /// `/memory`: the notes of this workspace's project and the user's
    /// (newest first), a search, or forgetting one note.
    pub(super) async fn memory(&mut self, args: &str) -> anyhow::Result<()> {
        let action = match MemoryAction::parse(args) {
            Ok(action) => action,
            Err(e) => return self.error(&e.to_string()),
        };
        let work_dir = self
            .config
            .work_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let request = match action {
            MemoryAction::Forget(id) => {
                return match self.oh.forget_memory(&id).await {
                    Ok(note) => self.dim(&format!("forgot {}", note_line(&note))),
                    Err(e) => self.error(&e.to_string()),
                };
            }
            MemoryAction::List => ListMemoryRequest {
                limit: 20,
                work_dir,
                ..ListMemoryRequest::default()
            },
            MemoryAction::Search(query) => ListMemoryRequest {
                query,
                limit: 10,
                work_dir,
                ..ListMemoryRequest::default()
            },
        };
        let searching = !request.query.is_empty();
        let response = match self.oh.memory(request).await {
            Ok(response) => response,
            Err(e) => return self.error(&e.to_string()),
        };
        if response.notes.is_empty() {
            return self.dim(match searching {
                true => "no notes match",
                false => "no notes yet: the model saves them with `remember`",
            });
        }
        let mut out = String::new();
        for note in &response.notes {
            out.push_str("  ");
            self.styler.paint(Role::Accent, &note_line(note), &mut out);
            out.push('\n');
        }
        self.screen.write(&out)?;
        let more = match response.next_cursor.is_empty() {
            true => "",
            false => " (newest 20; `openheim memory list` shows more)",
        };
        self.dim(&format!(
            "{} notes{more} · /memory forget ID deletes one",
            response.notes.len()
        ))
    }

    pub(super) async fn mcp(&mut self) -> anyhow::Result<()> {
        let servers = match self.session.as_ref() {
            Some(session) => session.mcp_servers().await,
            None => self.oh.mcp_servers().await,
        };
        let servers = match servers {
            Ok(servers) => servers,
            Err(e) => return self.error(&e.to_string()),
        };
        if servers.is_empty() {
            return self.dim("no MCP servers configured ([mcp_servers] in config.toml)");
        }
        let mut out = String::new();
        for server in &servers {
            let state = server
                .state()
                .as_str_name()
                .trim_start_matches("SERVER_STATE_");
            let state = state.to_ascii_lowercase();
            let role = match state.as_str() {
                "ready" | "connected" => Role::Success,
                "failed" | "error" => Role::Error,
                _ => Role::Warning,
            };
            out.push_str("  ");
            self.styler.paint(Role::Accent, &server.name, &mut out);
            out.push(' ');
            self.styler.paint(role, &state, &mut out);
            out.push_str(&format!(" · {} tools", server.tool_count));
            if !server.error.is_empty() {
                out.push_str(" · ");
                self.styler.paint(Role::Error, &server.error, &mut out);
            }
            out.push('\n');
        }
        self.screen.write(&out)?;
        let prompts = self.prompt_commands().await;
        if prompts.is_empty() {
            return Ok(());
        }
        self.dim("prompts (send one as a command, e.g. /server:prompt name=value):")?;
        self.table(&prompts)
    }

    pub(super) fn usage(&mut self) -> anyhow::Result<()> {
        let s = self.status.clone();
        let context = match s.context_percent() {
            Some(p) => format!(
                "{} of {} tokens ({p}%)",
                grouped(s.context_used),
                grouped(s.context_window)
            ),
            None => format!("{} tokens (window unknown)", grouped(s.context_used)),
        };
        let totals = format!(
            "{} in · {} out · {} cached · {} reasoning · {} model call{}",
            compact(s.input),
            compact(s.output),
            compact(s.cache_read),
            compact(s.reasoning),
            s.llm_calls,
            if s.llm_calls == 1 { "" } else { "s" }
        );
        let cost = match s.cost_pico_usd {
            Some(pico) => openheim_config::pricing::format_usd(pico),
            None => "unknown (no price configured for a model used)".to_owned(),
        };
        let rows = vec![
            ("model".to_owned(), s.model_label()),
            ("context".to_owned(), context),
            ("tokens".to_owned(), totals),
            ("cost".to_owned(), cost),
        ];
        self.table(&rows)?;
        self.dim("totals of this session; prices: docs/automation.md#costs")
    }
}
