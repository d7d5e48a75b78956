//! The session loop: read an entry, run it as a command or a turn, repeat.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use openheim_config::Config;
use openheim_proto::agent_loop::v1::{Decision, ListMemoryRequest, SessionInfo, turn_event::Event};
use openheim_proto::common::v1::{Message, Role as MessageRole, StopReason, content_block::Block};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use super::attach;
use super::commands::{self, COMMANDS, Command, MemoryAction, SkillsAction, Vocabulary};
use super::editor::{Entry, KeyReader, LineEditor, PromptLine, TurnKey, join_continuations};
use super::markdown::MarkdownStream;
use super::render::{TurnView, decision_for_answer, decision_for_key};
use super::status::{Status, ago, compact, grouped, model_names};
use super::term::{self, Mode, Screen, fit};
use super::theme::{Role, Styler, Theme, color_enabled};
use crate::memory::note_line;
use crate::{Openheim, Runtime, Session, SessionOptions};

/// How often the spinner of running tool calls moves.
const SPINNER_INTERVAL: Duration = Duration::from_millis(100);
/// Stored messages shown when a session is resumed.
const REPLAY_MESSAGES: usize = 20;
/// How long leaving mid-turn waits for the cancelled turn to be recorded.
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// Sessions listed by `/sessions`.
const LISTED_SESSIONS: u32 = 20;

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

/// What a turn is asked to do.
enum Ask {
    Prompt(String),
    /// `/compact [focus]`.
    Compact(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
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
        queued: std::collections::VecDeque::new(),
        typeahead: String::new(),
    };
    app.start().await
}

struct App {
    oh: Openheim,
    config: Config,
    options: TuiOptions,
    mode: Mode,
    styler: Styler,
    screen: Screen,
    editor: Option<LineEditor>,
    lines: Option<Lines<BufReader<Stdin>>>,
    vocabulary: Arc<Mutex<Vocabulary>>,
    /// Created with the first prompt, so an idle start leaves nothing on disk.
    session: Option<Session>,
    /// Settings of the session to create.
    pending: SessionOptions,
    status: Status,
    /// Every model llm-proxy lists, as `provider/model`.
    models: Vec<String>,
    /// The last `/sessions` listing, for `/sessions N`.
    listed: Vec<SessionInfo>,
    /// Ctrl-C was pressed at the prompt; a second one exits.
    interrupted_at_prompt: bool,
    /// SIGINT, installed once: in plain mode Ctrl-C arrives as a signal.
    interrupts: Option<tokio::signal::unix::Signal>,
    /// Lines typed and entered while a turn ran: they run next, in order.
    queued: std::collections::VecDeque<String>,
    /// Text typed (without Enter) while a turn ran: it pre-fills the prompt.
    typeahead: String,
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
                        Some(Ok(command)) => self.command(command).await?,
                        Some(Err(e)) => {
                            self.error(&e.to_string())?;
                            Flow::Continue
                        }
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
        if let Some(line) = self.queued.pop_front() {
            let mut out = String::new();
            self.styler.paint(Role::Accent, "› ", &mut out);
            out.push_str(&line);
            out.push('\n');
            self.screen.write(&out)?;
            return Ok(Entry::Line(line));
        }
        if let Some(editor) = self.editor.as_mut() {
            if !self.typeahead.is_empty() {
                editor.prefill(&std::mem::take(&mut self.typeahead));
            }
            let prompt = PromptLine {
                status: self.status.prompt_label(),
                theme: self.styler.theme(),
                color: self.styler.color(),
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

    fn line(&mut self, role: Option<Role>, text: &str) -> anyhow::Result<()> {
        let mut out = String::with_capacity(text.len() + 16);
        match role {
            Some(role) => self.styler.paint(role, text, &mut out),
            None => out.push_str(text),
        }
        out.push('\n');
        self.screen.write(&out)?;
        Ok(())
    }

    fn dim(&mut self, text: &str) -> anyhow::Result<()> {
        self.line(Some(Role::Dim), text)
    }

    fn error(&mut self, text: &str) -> anyhow::Result<()> {
        let mut out = String::new();
        self.styler.paint(Role::Error, "error:", &mut out);
        out.push(' ');
        out.push_str(text);
        out.push('\n');
        self.screen.write(&out)?;
        Ok(())
    }

    /// `  name   description` rows with the name in the accent colour.
    fn table(&mut self, rows: &[(String, String)]) -> anyhow::Result<()> {
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

    async fn ensure_session(&mut self) -> anyhow::Result<&mut Session> {
        if self.session.is_none() {
            let session = self.oh.new_session(self.pending.clone()).await?;
            self.session = Some(session);
        }
        self.session
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no session"))
    }

    async fn new_session(&mut self) {
        self.session = None;
        self.pending.model = self.options.model.clone();
        self.pending.skills = self.options.skills.clone();
        let requested = self.pending.model.clone().unwrap_or_default();
        self.status = self.status_for(&requested).await.unwrap_or_default();
    }

    /// The status of a session on `requested`, resolved by llm-proxy (a
    /// remote agent loop without a known llm-proxy shows the name as given).
    async fn status_for(&self, requested: &str) -> Result<Status, crate::Error> {
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

    async fn resume(&mut self, id: &str) -> anyhow::Result<()> {
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

    // ----- turns ----------------------------------------------------------

    async fn turn(&mut self, ask: Ask) -> anyhow::Result<Flow> {
        let interactive = self.mode == Mode::Interactive;
        let thinking = self.options.thinking;
        let work_dir = PathBuf::from(&self.ensure_session().await?.info().work_dir);
        let images = match &ask {
            Ask::Prompt(prompt) => match attached_images(prompt, &work_dir) {
                Ok(images) => images,
                Err(e) => {
                    self.error(&format!("{e}; nothing was sent"))?;
                    return Ok(Flow::Continue);
                }
            },
            Ask::Compact(_) => Vec::new(),
        };
        if !images.is_empty() {
            let mut out = String::new();
            let line = format!("  attached {}\n", describe_images(&images));
            self.styler.paint(Role::Dim, &line, &mut out);
            self.screen.write(&out)?;
        }
        let session = self.ensure_session().await?;
        session.set_thinking(thinking);
        let started = match ask {
            Ask::Prompt(prompt) => session.prompt_with_images(prompt, images).await,
            Ask::Compact(focus) => session.compact(focus).await,
        };
        let mut turn = match started {
            Ok(turn) => turn,
            Err(e) => {
                self.error(&e.to_string())?;
                return Ok(Flow::Continue);
            }
        };
        let mut view =
            TurnView::new(self.styler, interactive, term::width()).with_work_dir(Some(work_dir));
        let mut keys = None;
        if interactive {
            self.screen.enter_raw()?;
            keys = Some(KeyReader::start());
        }
        let mut tick = tokio::time::interval(SPINNER_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut cancelling = false;
        let mut flow = Flow::Continue;
        let mut ended: Option<StopReason> = None;
        // The turn's stream reached its end (ended, failed or broke off).
        let mut finished = false;
        let mut out = String::with_capacity(4096);
        loop {
            out.clear();
            let asking = view.question().is_some();
            let input = tokio::select! {
                event = turn.next() => Input::Event(event),
                key = next_key(&mut keys) => Input::Key(key),
                line = next_answer(&mut self.lines, asking) => Input::Answer(line),
                () = next_interrupt(&mut self.interrupts) => Input::Key(TurnKey::Interrupt),
                _ = tick.tick() => Input::Tick,
            };
            match input {
                Input::Tick => view.tick(&mut out),
                Input::Event(None) => {
                    view.error("the agent stopped without finishing the turn", &mut out);
                    finished = true;
                    break;
                }
                Input::Event(Some(Err(e))) => {
                    view.error(&e.to_string(), &mut out);
                    finished = true;
                    break;
                }
                Input::Event(Some(Ok(event))) => {
                    let Some(event) = event.event else { continue };
                    let now = Instant::now();
                    match event {
                        Event::TextDelta(text) => view.text(&text, &mut out),
                        Event::ThinkingDelta(text) => view.thinking(&text, &mut out),
                        Event::ToolCall(call) => view.tool_started(&call, now, &mut out),
                        Event::ToolCallUpdate(update) => view.tool_updated(&update, now, &mut out),
                        Event::Child(child) => {
                            view.child_started(&child);
                            view.child(&child, &mut out);
                        }
                        Event::PermissionRequest(request) => view.ask(request, &mut out),
                        Event::Notice(notice) => view.notice(&notice.message, &mut out),
                        Event::Compacted(compacted) => {
                            view.notice(&compacted.message, &mut out);
                            // What the next call sends is about the summary's size.
                            self.status.context_used = compacted.tokens_after;
                        }
                        Event::Retracted(r) => view.notice(
                            &format!("the reply was interrupted ({}); it restarts here", r.reason),
                            &mut out,
                        ),
                        Event::Usage(usage) => self.status.add(&usage),
                        Event::ModelSelected(selected) => {
                            self.status.provider = selected.provider;
                            self.status.model = selected.model;
                            if selected.context_window > 0 {
                                self.status.context_window = selected.context_window;
                            }
                        }
                        Event::Ended(end) => {
                            ended = Some(end.stop_reason());
                            finished = true;
                            view.finish(&mut out);
                            self.screen.write(&out)?;
                            break;
                        }
                        Event::Error(error) => {
                            finished = true;
                            view.error(&error.message, &mut out);
                            view.finish(&mut out);
                            self.screen.write(&out)?;
                            break;
                        }
                        Event::PermissionDecided(decided) => {
                            if let Some(line) = hook_decision(&decided) {
                                view.notice(&line, &mut out);
                            }
                        }
                        Event::Plan(plan) => super::plan::show(&mut view, &plan, &mut out),
                        Event::Started(_) | Event::ClientRequest(_) => {}
                    }
                }
                Input::Key(key) => match key {
                    TurnKey::Eof => {
                        // Ctrl-D leaves, as at the prompt; the turn is
                        // cancelled (and recorded so) on the way out.
                        turn.cancel().await;
                        flow = Flow::Quit;
                        view.finish(&mut out);
                        self.screen.write(&out)?;
                        break;
                    }
                    TurnKey::Interrupt => {
                        if cancelling {
                            // A second Ctrl-C: leave (dropping the turn cancels it).
                            flow = Flow::Quit;
                            view.finish(&mut out);
                            self.screen.write(&out)?;
                            break;
                        }
                        cancelling = true;
                        turn.cancel().await;
                        view.info("cancelling… (Ctrl-C again to exit)", &mut out);
                    }
                    TurnKey::Escape if asking => {
                        if let Some(id) = view.answer(Decision::RejectOnce, &mut out) {
                            turn.answer(id, Decision::RejectOnce).await;
                        }
                    }
                    TurnKey::Escape if !cancelling => {
                        cancelling = true;
                        turn.cancel().await;
                        view.info("cancelling…", &mut out);
                    }
                    TurnKey::Char(c) if asking => {
                        if let Some(decision) = decision_for_key(c)
                            && let Some(id) = view.answer(decision, &mut out)
                        {
                            turn.answer(id, decision).await;
                        }
                    }
                    TurnKey::Resize(cols) => view.set_width(usize::from(cols)),
                    TurnKey::Char(c) => self.typeahead.push(c),
                    TurnKey::Backspace => {
                        self.typeahead.pop();
                    }
                    TurnKey::Enter => {
                        if let Some(line) = self.type_ahead_enter() {
                            view.info(&format!("queued: {line}"), &mut out);
                        }
                    }
                    TurnKey::Escape => {}
                },
                Input::Answer(line) => match line.as_deref().map(decision_for_answer) {
                    Some(Some(decision)) => {
                        if let Some(id) = view.answer(decision, &mut out) {
                            turn.answer(id, decision).await;
                        }
                    }
                    Some(None) => view.info("answer y, a, n or N", &mut out),
                    None => {
                        // stdin closed while asked: refuse and leave after the turn.
                        if let Some(id) = view.answer(Decision::RejectOnce, &mut out) {
                            turn.answer(id, Decision::RejectOnce).await;
                        }
                        flow = Flow::Quit;
                    }
                },
            }
            self.screen.write(&out)?;
        }
        if let Some(keys) = keys {
            // Keys typed as the turn ended belong to the next prompt.
            for key in keys.stop().await {
                match key {
                    TurnKey::Char(c) => self.typeahead.push(c),
                    TurnKey::Backspace => {
                        self.typeahead.pop();
                    }
                    TurnKey::Enter => {
                        self.type_ahead_enter();
                    }
                    TurnKey::Eof => flow = Flow::Quit,
                    _ => {}
                }
            }
        }
        self.screen.leave_raw()?;
        if flow == Flow::Quit && !finished {
            // Leaving mid-turn: the cancel was sent; give the agent a moment
            // to record it, so the stored history stays complete.
            turn.cancel().await;
            let _ = tokio::time::timeout(QUIT_GRACE, async {
                while let Some(Ok(event)) = turn.next().await {
                    if matches!(event.event, Some(Event::Ended(_) | Event::Error(_))) {
                        break;
                    }
                }
            })
            .await;
        }
        drop(turn);
        match ended {
            Some(StopReason::Cancelled) => self.line(Some(Role::Warning), "cancelled")?,
            Some(StopReason::MaxTurnRequests) => self.line(
                Some(Role::Warning),
                &format!(
                    "stopped: reached max_iterations ({}) before a final answer",
                    self.config.max_iterations
                ),
            )?,
            Some(StopReason::MaxTokens) => self.line(
                Some(Role::Warning),
                "note: the answer was cut at the model's output limit",
            )?,
            Some(StopReason::Refusal) => {
                self.line(Some(Role::Warning), "note: the model refused to answer")?
            }
            _ => {}
        }
        Ok(flow)
    }

    /// Enter typed while a turn ran: a line ending in `\` continues (as at
    /// the prompt); otherwise the line is queued to run next. Returns the
    /// queued line.
    fn type_ahead_enter(&mut self) -> Option<String> {
        if self.typeahead.trim().is_empty() {
            self.typeahead.clear();
            return None;
        }
        if self.typeahead.ends_with('\\') && !self.typeahead.ends_with("\\\\") {
            self.typeahead.push('\n');
            return None;
        }
        let line = join_continuations(&std::mem::take(&mut self.typeahead));
        self.queued.push_back(line.clone());
        Some(line)
    }

    // ----- commands -------------------------------------------------------

    async fn command(&mut self, command: Command) -> anyhow::Result<Flow> {
        match command {
            Command::Help => self.help()?,
            Command::Quit => return Ok(Flow::Quit),
            Command::Model(name) => self.model(name).await?,
            Command::Skills(action) => self.skills(action).await?,
            Command::Sessions(pick) => self.sessions(pick).await?,
            Command::New => {
                self.new_session().await;
                self.dim("new session")?;
            }
            Command::Clear => {
                if let Some(editor) = self.editor.as_mut() {
                    editor.clear_screen();
                }
                self.new_session().await;
                self.dim("new session")?;
            }
            Command::Tools => self.tools().await?,
            Command::Mcp => self.mcp().await?,
            Command::Theme(name) => self.theme(name)?,
            Command::Usage => self.usage()?,
            Command::Thinking(setting) => self.thinking(setting)?,
            Command::Compact(focus) => {
                if self.session.is_none() {
                    self.dim("context: nothing to compact yet")?;
                } else {
                    return self.turn(Ask::Compact(focus)).await;
                }
            }
            Command::Memory(action) => self.memory(action).await?,
        }
        Ok(Flow::Continue)
    }

    fn help(&mut self) -> anyhow::Result<()> {
        let rows: Vec<(String, String)> = COMMANDS
            .iter()
            .map(|(name, args, what)| {
                let left = if args.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{name} {args}")
                };
                (left, (*what).to_owned())
            })
            .collect();
        self.table(&rows)?;
        self.dim("Enter sends · Alt-Enter or a trailing \\ adds a line · Tab completes · Ctrl-R searches history")?;
        self.dim("Ctrl-C or Esc cancels a running turn · Ctrl-D exits")
    }

    async fn model(&mut self, name: Option<String>) -> anyhow::Result<()> {
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

    async fn refresh_skills(&mut self) -> Vec<String> {
        let skills = self.oh.skills().await.unwrap_or_default();
        if let Ok(mut vocabulary) = self.vocabulary.lock() {
            vocabulary.skills = skills.clone();
        }
        skills
    }

    fn active_skills(&self) -> Vec<String> {
        match &self.session {
            Some(session) => session.info().skills.clone(),
            None => {
                let mut skills = self.config.default_skills.clone();
                for skill in &self.pending.skills {
                    if !skills.contains(skill) {
                        skills.push(skill.clone());
                    }
                }
                skills
            }
        }
    }

    async fn skills(&mut self, action: SkillsAction) -> anyhow::Result<()> {
        let available = self.refresh_skills().await;
        let mut active = self.active_skills();
        match action {
            SkillsAction::List => {
                if available.is_empty() {
                    let dir = self.config.data_dir.as_ref().map(|d| d.join("skills"));
                    let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
                    return self.dim(&format!("no skills yet: add markdown files to {dir}"));
                }
                let mut out = String::new();
                for name in &available {
                    let on = active.contains(name);
                    out.push_str("  ");
                    if on {
                        self.styler.paint(Role::Accent, "● ", &mut out);
                    } else {
                        self.styler.paint(Role::Dim, "○ ", &mut out);
                    }
                    out.push_str(name);
                    out.push('\n');
                }
                self.screen.write(&out)?;
                return self.dim("/skills add NAME · /skills remove NAME");
            }
            SkillsAction::Add(name) => {
                if !available.contains(&name) {
                    return self.error(&format!(
                        "no skill {name:?} (available: {})",
                        available.join(", ")
                    ));
                }
                if !active.contains(&name) {
                    active.push(name.clone());
                }
            }
            SkillsAction::Remove(name) => {
                if !active.contains(&name) {
                    return self.error(&format!("skill {name:?} is not active"));
                }
                active.retain(|s| *s != name);
            }
        }
        match self.session.as_mut() {
            Some(session) => {
                if let Err(e) = session.set_skills(active.clone()).await {
                    return self.error(&e.to_string());
                }
            }
            None => {
                let defaults = &self.config.default_skills;
                self.pending.skills = active
                    .iter()
                    .filter(|s| !defaults.contains(s))
                    .cloned()
                    .collect();
                if defaults.iter().any(|d| !active.contains(d)) {
                    // A default was removed: the session must be created
                    // with exactly this list.
                    let session = self.ensure_session().await?;
                    if let Err(e) = session.set_skills(active.clone()).await {
                        return self.error(&e.to_string());
                    }
                }
            }
        }
        let shown = if active.is_empty() {
            "(none)".to_owned()
        } else {
            active.join(", ")
        };
        self.line(Some(Role::Accent), &format!("skills: {shown}"))
    }

    async fn sessions(&mut self, pick: Option<String>) -> anyhow::Result<()> {
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
            color: self.styler.color(),
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

    async fn tools(&mut self) -> anyhow::Result<()> {
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
    async fn memory(&mut self, action: MemoryAction) -> anyhow::Result<()> {
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

    async fn mcp(&mut self) -> anyhow::Result<()> {
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
        Ok(())
    }

    fn theme(&mut self, name: Option<String>) -> anyhow::Result<()> {
        let Some(name) = name else {
            let mut out = String::new();
            for theme in Theme::ALL {
                let styler = Styler::new(theme, self.styler.color());
                out.push_str(if theme == self.styler.theme() {
                    "  ● "
                } else {
                    "    "
                });
                styler.paint(Role::Heading, theme.name(), &mut out);
                out.push('\n');
            }
            self.screen.write(&out)?;
            return self.dim(&format!(
                "theme: {} · switch with /theme NAME",
                self.styler.theme()
            ));
        };
        let theme = match name.parse::<Theme>() {
            Ok(theme) => theme,
            Err(e) => return self.error(&e.to_string()),
        };
        self.styler = Styler::new(theme, self.styler.color());
        self.config.ui.theme = theme.name().to_owned();
        let file = self.options.config_file.clone();
        match openheim_config::set_file_value(&file, "ui.theme", theme.name()) {
            Ok(()) => self.line(
                Some(Role::Accent),
                &format!("theme: {theme} (saved to {})", file.display()),
            )?,
            Err(e) => self.error(&format!("theme: {theme}, but it could not be saved: {e}"))?,
        }
        if !self.styler.color() {
            self.dim("colours are off here (NO_COLOR or not a terminal)")?;
        }
        Ok(())
    }

    /// `/thinking [setting]`: shows or sets the session's reasoning
    /// setting, sent with each of its turns.
    fn thinking(&mut self, setting: Option<String>) -> anyhow::Result<()> {
        let label = |t: Option<openheim_config::Thinking>| {
            t.map_or_else(|| "default (as configured)".to_owned(), |t| t.to_string())
        };
        let Some(setting) = setting else {
            let current = label(self.options.thinking);
            self.line(Some(Role::Accent), &format!("thinking: {current}"))?;
            return self.dim("set with /thinking off|low|medium|high|TOKENS|default");
        };
        let parsed = match setting.as_str() {
            "default" => Ok(None),
            other => openheim_config::Thinking::parse(other).map(Some),
        };
        match parsed {
            Ok(thinking) => {
                self.options.thinking = thinking;
                let label = label(thinking);
                self.line(Some(Role::Accent), &format!("thinking: {label}"))
            }
            Err(reason) => self.error(&reason.to_string()),
        }
    }

    fn usage(&mut self) -> anyhow::Result<()> {
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

/// `hook "guard" denied execute_command: reason`, when a hook decided;
/// other decisions show as the call's spinner and result (a hook's rewrite
/// comes as a notice).
fn hook_decision(decided: &openheim_proto::agent_loop::v1::PermissionDecided) -> Option<String> {
    use openheim_proto::agent_loop::v1::DecisionSource;
    if decided.source() != DecisionSource::Hook {
        return None;
    }
    let verb = if decided.allowed { "allowed" } else { "denied" };
    let mut line = format!("hook {:?} {verb} {}", decided.hook, decided.tool_name);
    if !decided.reason.is_empty() {
        line.push_str(": ");
        line.push_str(&decided.reason);
    }
    Some(line)
}

enum Input {
    Event(Option<Result<openheim_proto::agent_loop::v1::TurnEvent, crate::Error>>),
    Key(TurnKey),
    Answer(Option<String>),
    Tick,
}

async fn next_key(keys: &mut Option<KeyReader>) -> TurnKey {
    match keys.as_mut() {
        Some(reader) => match reader.keys.recv().await {
            Some(key) => key,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn next_answer(lines: &mut Option<Lines<BufReader<Stdin>>>, asking: bool) -> Option<String> {
    match lines.as_mut() {
        Some(lines) if asking => lines.next_line().await.ok().flatten(),
        _ => std::future::pending().await,
    }
}

/// SIGINT while a turn runs (plain mode, or `kill -INT`); raw mode turns
/// the terminal's Ctrl-C into a key instead.
fn signal_stream() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok()
}

async fn next_interrupt(signal: &mut Option<tokio::signal::unix::Signal>) {
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

/// `2 images (image/png 12 KB, image/gif 3 KB)`: what was attached.
fn describe_images(images: &[openheim_proto::common::v1::Image]) -> String {
    let each: Vec<String> = images
        .iter()
        .map(|i| format!("{} {} KB", i.mime_type, i.data.len().div_ceil(1024)))
        .collect();
    let count = match images.len() {
        1 => "1 image".to_owned(),
        n => format!("{n} images"),
    };
    format!("{count} ({})", each.join(", "))
}

/// The images a prompt names with `@path` (see `attach`), read now so a
/// bad file is reported before anything is sent.
fn attached_images(
    prompt: &str,
    work_dir: &std::path::Path,
) -> Result<Vec<openheim_proto::common::v1::Image>, crate::images::AttachError> {
    attach::image_refs(prompt)
        .iter()
        .map(|reference| crate::images::read_image(&attach::resolve(reference, work_dir)))
        .collect()
}
