//! The session loop: read an entry, run it as a command or a turn, repeat.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openheim_config::Config;
use openheim_proto::agent_loop::v1::SessionInfo;
use openheim_proto::common::v1::{Message, Role as MessageRole, content_block::Block};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use super::commands::{self, Vocabulary};
use super::editor::{Entry, LineEditor, PromptLine};
use super::machine::TypeAhead;
use super::markdown::MarkdownStream;
use super::status::{Status, model_names};
use super::term::{self, Mode, Screen, fit};
use super::theme::{Role, Styler, Theme, color_enabled};
use super::turn::Ask;
use crate::{Openheim, Runtime, Session, SessionOptions};

/// Stored messages shown when a session is resumed.
const REPLAY_MESSAGES: usize = 20;

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    pub model: Option<String>,
    pub skills: Vec<String>,
    /// `Some(None)`: the latest session of this workspace.
    pub resume: Option<Option<String>>,
    /// The config file `/theme` writes to.
    pub config_file: PathBuf,
    /// `--thinking`: how hard the model reasons; `/thinking` changes it.
    pub thinking: Option<openheim_config::Thinking>,
    /// `NO_COLOR` and `TERM` of the environment, read by the binary.
    pub no_color: Option<String>,
    pub term: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Quit,
}

/// Runs the UI until the user quits; returns the exit code.
pub async fn run(runtime: Runtime, config: Config, options: TuiOptions) -> anyhow::Result<u8> {
    let mode = Mode::detect();
    let theme = config.ui.theme.parse::<Theme>().unwrap_or_default();
    let color = color_enabled(
        mode == Mode::Interactive,
        options.no_color.as_deref(),
        options.term.as_deref(),
    );
    let vocabulary = Arc::new(Mutex::new(Vocabulary {
        models: Vec::new(),
        skills: Vec::new(),
        themes: Theme::ALL.iter().map(|t| t.name().to_owned()).collect(),
        prompts: Vec::new(),
    }));
    let data_dir = config
        .data_dir
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no data directory"))?;
    let (editor, lines) = match mode {
        Mode::Interactive => {
            let history = data_dir.join("tui_history.txt");
            let editor = LineEditor::new(&history, Arc::clone(&vocabulary), color)?;
            (Some(editor), None)
        }
        Mode::Plain => (None, Some(BufReader::new(tokio::io::stdin()).lines())),
    };
    let pending = SessionOptions {
        model: options.model.clone(),
        skills: options.skills.clone(),
        approval: openheim_proto::agent_loop::v1::ApprovalMode::Ask,
        ..SessionOptions::default()
    };
    let mut app = App {
        oh: Openheim::from_runtime(runtime),
        styler: Styler::new(theme, color),
        config,
        options,
        mode,
        screen: Screen::new(),
        editor,
        lines,
        vocabulary,
        session: None,
        pending,
        status: Status::default(),
        models: Vec::new(),
        listed: Vec::new(),
        interrupted_at_prompt: false,
        interrupts: signal_stream(),
        typeahead: TypeAhead::default(),
    };
    app.start().await
}

pub(super) struct App {
    pub(super) oh: Openheim,
    pub(super) config: Config,
    pub(super) options: TuiOptions,
    pub(super) mode: Mode,
    pub(super) styler: Styler,
    pub(super) screen: Screen,
    pub(super) editor: Option<LineEditor>,
    pub(super) lines: Option<Lines<BufReader<Stdin>>>,
    pub(super) vocabulary: Arc<Mutex<Vocabulary>>,
    /// Created with the first prompt, so an idle start leaves nothing on disk.
    pub(super) session: Option<Session>,
    /// Settings of the session to create.
    pub(super) pending: SessionOptions,
    pub(super) status: Status,
    /// Every model llm-proxy lists, as `provider/model`.
    pub(super) models: Vec<String>,
    /// The last `/sessions` listing, for `/sessions N`.
    pub(super) listed: Vec<SessionInfo>,
    /// Ctrl-C was pressed at the prompt; a second one exits.
    pub(super) interrupted_at_prompt: bool,
    /// SIGINT, installed once: in plain mode Ctrl-C arrives as a signal.
    pub(super) interrupts: Option<tokio::signal::unix::Signal>,
    /// Lines typed while a turn ran: they run next, in order; an
    /// unfinished one pre-fills the prompt.
    pub(super) typeahead: TypeAhead,
}

impl App {
    async fn start(&mut self) -> anyhow::Result<u8> {
        self.refresh_skills().await;
        self.models = match self.oh.models().await {
            Ok(Some(providers)) => model_names(&providers),
            _ => Vec::new(),
        };
        if let Ok(mut vocabulary) = self.vocabulary.lock() {
            vocabulary.models = self.models.clone();
        }
        let requested = self.options.model.clone().unwrap_or_default();
        if let Ok(status) = self.status_for(&requested).await {
            self.status = status;
        }
        self.banner()?;
        if let Some(resume) = self.options.resume.clone() {
            match resume {
                Some(id) => self.resume(&id).await?,
                None => self.resume_latest().await?,
            }
        }
        loop {
            let entry = self.read_entry().await?;
            let flow = match entry {
                Entry::Eof => Flow::Quit,
                Entry::Interrupt => {
                    if self.interrupted_at_prompt {
                        Flow::Quit
                    } else {
                        self.interrupted_at_prompt = true;
                        self.dim("(Ctrl-C again or Ctrl-D to exit)")?;
                        Flow::Continue
                    }
                }
                Entry::Line(line) => {
                    self.interrupted_at_prompt = false;
                    match commands::parse(&line) {
                        Some(Ok((command, args))) => (command.run)(self, args).await?,
                        Some(Err(unknown)) => match openheim_acp::split_mcp_prompt_command(&line) {
                            Some((command, input)) => {
                                self.mcp_prompt(command, input, unknown).await?
                            }
                            None => {
                                self.error(&unknown.to_string())?;
                                Flow::Continue
                            }
                        },
                        None if line.trim().is_empty() => Flow::Continue,
                        None => self.turn(Ask::Prompt(line)).await?,
                    }
                }
            };
            if flow == Flow::Quit {
                break;
            }
        }
        self.goodbye()?;
        Ok(crate::run::exit::OK)
    }

    async fn read_entry(&mut self) -> anyhow::Result<Entry> {
        if let Some(line) = self.typeahead.queued.pop_front() {
            let mut out = String::new();
            self.styler.paint(Role::Accent, "› ", &mut out);
            out.push_str(&line);
            out.push('\n');
            self.screen.write(&out)?;
            return Ok(Entry::Line(line));
        }
        if let Some(editor) = self.editor.as_mut() {
            if !self.typeahead.text.is_empty() {
                editor.prefill(&std::mem::take(&mut self.typeahead.text));
            }
            let prompt = PromptLine {
                status: self.status.prompt_label(),
                theme: self.styler.theme(),
            };
            return editor.read(prompt).await;
        }
        let mut out = String::new();
        self.styler.paint(Role::Accent, "› ", &mut out);
        self.screen.write(&out)?;
        let Some(lines) = self.lines.as_mut() else {
            return Ok(Entry::Eof);
        };
        tokio::select! {
            line = lines.next_line() => Ok(match line? {
                Some(line) => Entry::Line(line),
                None => Entry::Eof,
            }),
            () = next_interrupt(&mut self.interrupts) => Ok(Entry::Interrupt),
        }
    }

    fn banner(&mut self) -> anyhow::Result<()> {
        let mut out = String::new();
        self.styler.paint(Role::Heading, "openheim", &mut out);
        out.push(' ');
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push_str(" · ");
        out.push_str(&self.status.model_label());
        if let Some(dir) = &self.config.work_dir {
            out.push_str(" · ");
            out.push_str(&dir.display().to_string());
        }
        out.push('\n');
        self.styler.paint(
            Role::Dim,
            "/help for commands · Ctrl-C cancels a turn · Ctrl-D exits\n",
            &mut out,
        );
        self.screen.write(&out)?;
        Ok(())
    }

    fn goodbye(&mut self) -> anyhow::Result<()> {
        if let Some(session) = &self.session {
            let line = format!(
                "session {} saved · resume with: openheim --resume {}",
                session.id(),
                session.id()
            );
            self.dim(&line)?;
        }
        Ok(())
    }

    // ----- output helpers -------------------------------------------------

    pub(super) fn line(&mut self, role: Option<Role>, text: &str) -> anyhow::Result<()> {
        let mut out = String::with_capacity(text.len() + 16);
        match role {
            Some(role) => self.styler.paint(role, text, &mut out),
            None => out.push_str(text),
        }
        out.push('\n');
        self.screen.write(&out)?;
        Ok(())
    }

    pub(super) fn dim(&mut self, text: &str) -> anyhow::Result<()> {
        self.line(Some(Role::Dim), text)
    }

    pub(super) fn error(&mut self, text: &str) -> anyhow::Result<()> {
        let mut out = String::new();
        self.styler.paint(Role::Error, "error:", &mut out);
        out.push(' ');
        out.push_str(text);
        out.push('\n');
        self.screen.write(&out)?;
        Ok(())
    }

    /// `  name   description` rows with the name in the accent colour.
    pub(super) fn table(&mut self, rows: &[(String, String)]) -> anyhow::Result<()> {
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in rows {
            out.push_str("  ");
            self.styler.paint(Role::Accent, key, &mut out);
            let pad = width - key.chars().count() + 2;
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(value);
            out.push('\n');
        }
        self.screen.write(&out)?;
        Ok(())
    }

    // ----- sessions -------------------------------------------------------

    pub(super) async fn ensure_session(&mut self) -> anyhow::Result<&mut Session> {
        if self.session.is_none() {
            let session = self.oh.new_session(self.pending.clone()).await?;
            self.session = Some(session);
        }
        self.session
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no session"))
    }

    pub(super) async fn new_session(&mut self) {
        self.session = None;
        self.pending.model = self.options.model.clone();
        self.pending.skills = self.options.skills.clone();
        let requested = self.pending.model.clone().unwrap_or_default();
        self.status = self.status_for(&requested).await.unwrap_or_default();
    }

    /// The status of a session on `requested`, resolved by llm-proxy (a
    /// remote agent loop without a known llm-proxy shows the name as given).
    pub(super) async fn status_for(&self, requested: &str) -> Result<Status, crate::Error> {
        Ok(match self.oh.resolve_model(requested).await? {
            Some(r) => Status::new(r.provider, r.model, r.context_window),
            None => Status::new(String::new(), requested.to_owned(), 0),
        })
    }

    async fn resume_latest(&mut self) -> anyhow::Result<()> {
        let work_dir = self
            .config
            .work_dir
            .as_ref()
            .map(|d| d.display().to_string());
        let (sessions, _) = self.oh.list_sessions(100, None).await?;
        let latest = sessions
            .into_iter()
            .filter(|s| s.message_count > 0)
            .find(|s| work_dir.as_deref().is_none_or(|dir| s.work_dir == dir));
        match latest {
            Some(info) => self.resume(&info.id).await,
            None => self.dim("no earlier session in this directory; starting a new one"),
        }
    }

    pub(super) async fn resume(&mut self, id: &str) -> anyhow::Result<()> {
        let (session, messages) = match self.oh.load_session(id).await {
            Ok(loaded) => loaded,
            Err(e) => return self.error(&format!("cannot resume {id}: {e}")),
        };
        let info = session.info().clone();
        self.status = self.status_for(&info.model).await.unwrap_or_default();
        let stored = info
            .usage
            .unwrap_or_else(openheim_proto::common::v1::Usage::zero);
        self.status.set_session_totals(&stored, info.llm_calls);
        self.pending.model = Some(info.model.clone()).filter(|m| !m.is_empty());
        self.pending.skills = info.skills.clone();
        self.session = Some(session);
        self.replay(&messages)?;
        let title = if info.title.is_empty() {
            "(untitled)"
        } else {
            &info.title
        };
        let line = format!(
            "resumed session {} · {} · {} messages",
            info.id, title, info.message_count
        );
        self.line(Some(Role::Accent), &line)
    }

    /// Shows the end of a stored conversation: prompts, answers, tool calls.
    fn replay(&mut self, messages: &[Message]) -> anyhow::Result<()> {
        let skipped = messages.len().saturating_sub(REPLAY_MESSAGES);
        let mut out = String::new();
        if skipped > 0 {
            self.styler.paint(
                Role::Dim,
                &format!("… {skipped} earlier messages\n"),
                &mut out,
            );
        }
        let width = term::width();
        for message in &messages[skipped..] {
            let role = message.role();
            for block in message.content.iter().filter_map(|b| b.block.as_ref()) {
                match (role, block) {
                    (MessageRole::User, Block::Text(text)) => {
                        self.styler.paint(Role::Accent, "› ", &mut out);
                        out.push_str(text.trim_end());
                        out.push('\n');
                    }
                    (MessageRole::Assistant, Block::Text(text)) => {
                        let mut md = MarkdownStream::new(self.styler);
                        md.push(text, &mut out);
                        md.finish(&mut out);
                    }
                    (MessageRole::Assistant, Block::ToolCall(call)) => {
                        let args = fit(
                            &call.arguments_json,
                            width.saturating_sub(call.name.len() + 6),
                        );
                        self.styler.paint(
                            Role::Dim,
                            &format!("• {} {args}\n", call.name),
                            &mut out,
                        );
                    }
                    _ => {}
                }
            }
        }
        self.screen.write(&out)?;
        Ok(())
    }
}

/// SIGINT while a turn runs (plain mode, or `kill -INT`); raw mode turns
/// the terminal's Ctrl-C into a key instead.
fn signal_stream() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok()
}

pub(super) async fn next_interrupt(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
