//! Commands about the session: `/model`, `/sessions`, `/new`, `/clear`
//! and `/compact`.

use super::super::app::{App, Flow, now_ms};
use super::super::editor::{Entry, PromptLine};
use super::super::status::{Status, ago};
use super::super::term::{self, Mode, fit};
use super::super::theme::Role;
use super::super::turn::Ask;

/// Sessions listed by `/sessions`.
const LISTED_SESSIONS: u32 = 20;

impl App {
    /// `/new`, and `/clear` (which also clears the screen).
    pub(super) async fn start_over(&mut self, clear_screen: bool) -> anyhow::Result<()> {
        if clear_screen && let Some(editor) = self.editor.as_mut() {
            editor.clear_screen();
        }
        self.new_session().await;
        self.dim("new session")
    }

    /// `/compact [focus]`: a turn that summarises the conversation.
    pub(super) async fn compact(&mut self, focus: String) -> anyhow::Result<Flow> {
        if self.session.is_none() {
            self.dim("context: nothing to compact yet")?;
            return Ok(Flow::Continue);
        }
        self.turn(Ask::Compact(focus)).await
    }

    pub(super) async fn model(&mut self, name: Option<String>) -> anyhow::Result<()> {
        let Some(name) = name else {
            let mut rows = vec![("current".to_owned(), self.status.model_label())];
            if !self.models.is_empty() {
                rows.push(("configured".to_owned(), self.models.join(", ")));
            }
            self.table(&rows)?;
            return self.dim("switch with /model NAME (Tab completes)");
        };
        // llm-proxy decides what a name means; a name it cannot serve is
        // refused here rather than on the next prompt.
        let status = match self.status_for(&name).await {
            Ok(status) => status,
            Err(e) => return self.error(&e.to_string()),
        };
        if let Some(session) = self.session.as_mut()
            && let Err(e) = session.set_model(name.clone()).await
        {
            return self.error(&e.to_string());
        }
        self.pending.model = Some(name.clone());
        let (totals, calls) = (self.status.totals(), self.status.llm_calls);
        self.status = Status {
            context_used: self.status.context_used,
            ..status
        };
        self.status.set_session_totals(&totals, calls);
        let label = self.status.model_label();
        self.line(Some(Role::Accent), &format!("model: {label}"))?;
        if let Some((provider, _)) = name.split_once('/')
            && provider != self.status.provider
        {
            self.dim(&format!(
                "no provider is named {provider:?}: {} gets {name:?} as its model id",
                self.status.provider
            ))?;
        }
        Ok(())
    }

    pub(super) async fn sessions(&mut self, pick: Option<String>) -> anyhow::Result<()> {
        if pick.is_none() || self.listed.is_empty() {
            let (sessions, _) = self.oh.list_sessions(LISTED_SESSIONS * 2, None).await?;
            self.listed = sessions
                .into_iter()
                .filter(|s| s.message_count > 0)
                .take(LISTED_SESSIONS as usize)
                .collect();
        }
        if let Some(pick) = pick {
            return self.resume_pick(&pick).await;
        }
        if self.listed.is_empty() {
            return self.dim("no sessions yet");
        }
        let now = now_ms();
        let current = self.session.as_ref().map(|s| s.id().to_owned());
        let width = term::width();
        let mut out = String::new();
        for (i, s) in self.listed.iter().enumerate() {
            let title = if s.title.is_empty() {
                "(untitled)"
            } else {
                &s.title
            };
            let marker = if current.as_deref() == Some(s.id.as_str()) {
                "●"
            } else {
                " "
            };
            self.styler
                .paint(Role::Accent, &format!("{marker}{:>3} ", i + 1), &mut out);
            out.push_str(&fit(title, width.saturating_sub(40).max(20)));
            let detail = format!(
                "  {} · {} messages · {}",
                ago(s.updated_at_ms, now),
                s.message_count,
                &s.id[..s.id.len().min(8)]
            );
            self.styler.paint(Role::Dim, &detail, &mut out);
            out.push('\n');
        }
        self.screen.write(&out)?;
        if self.mode == Mode::Plain {
            return self.dim("resume with /sessions N");
        }
        let prompt = PromptLine {
            status: "resume which? number, Enter to go back".to_owned(),
            theme: self.styler.theme(),
        };
        let answer = match self.editor.as_mut() {
            Some(editor) => editor.read(prompt).await?,
            None => Entry::Eof,
        };
        match answer {
            Entry::Line(line) if !line.trim().is_empty() => self.resume_pick(line.trim()).await,
            _ => Ok(()),
        }
    }

    async fn resume_pick(&mut self, pick: &str) -> anyhow::Result<()> {
        let id = match pick.parse::<usize>() {
            Ok(n) if (1..=self.listed.len()).contains(&n) => self.listed[n - 1].id.clone(),
            Ok(n) => return self.error(&format!("no session number {n} in the list")),
            Err(_) => self
                .listed
                .iter()
                .find(|s| s.id.starts_with(pick))
                .map(|s| s.id.clone())
                .unwrap_or_else(|| pick.to_owned()),
        };
        self.resume(&id).await
    }
}
