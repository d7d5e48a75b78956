//! `openheim run`: one prompt, headless. The answer streams to stdout; tool
//! activity, notices and errors go to stderr, so `openheim run … > out.txt`
//! captures exactly the answer. When stdout is not a terminal, each LLM
//! call's text is written once the call is over, so a reply restarted after
//! the provider's stream broke never reaches a file or pipe twice
//! (docs/decisions.md).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use futures::StreamExt;
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CancelTurn, CreateSessionRequest, StartTurn, ToolCallStatus, TurnEvent,
    TurnInput, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::StopReason;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Runtime;

/// Process exit codes of `openheim run`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    /// The turn hit `max_iterations` before a final answer.
    pub const MAX_ITERATIONS: u8 = 3;
    /// Interrupted (Ctrl-C).
    pub const CANCELLED: u8 = 130;
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// What happens to calls that would need approval (nobody is there to
    /// ask): `Auto` runs them, `Deny` refuses them.
    pub approval: ApprovalMode,
    /// Offer only read-only tools.
    pub read_only: bool,
    pub model: Option<String>,
    pub skills: Vec<String>,
    pub work_dir: Option<String>,
    /// Continue this session instead of creating one.
    pub resume: Option<String>,
    /// Image files sent with the prompt (`--image`), relative to the
    /// current directory.
    pub images: Vec<std::path::PathBuf>,
    /// How hard the model reasons in this turn; `None` = as configured.
    pub thinking: Option<openheim_config::Thinking>,
    /// Also show the model's thinking (on stderr, like the tool activity).
    pub verbose: bool,
}

/// Runs one turn and returns the exit code. Traced as one `session` span
/// (the root of the run's trace when telemetry is exported).
pub async fn run(
    runtime: &Runtime,
    prompt: String,
    options: RunOptions,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u8> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "session",
        otel.name = "openheim run",
        gen_ai.conversation.id = tracing::field::Empty,
    );
    run_session(runtime, prompt, options, interrupt)
        .instrument(span)
        .await
}

async fn run_session(
    runtime: &Runtime,
    prompt: String,
    options: RunOptions,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u8> {
    // Checked before a session is made: a bad file costs nothing.
    let images = options
        .images
        .iter()
        .map(|path| crate::images::read_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = runtime.agent_loop();
    let (thinking, verbose) = (options.thinking, options.verbose);
    let session_id = match options.resume.clone() {
        Some(id) => id,
        None => create_session(runtime, options).await?,
    };
    tracing::Span::current().record("gen_ai.conversation.id", session_id.as_str());
    // Kept open for the whole turn: closing the input stream cancels it.
    let (inputs, input_rx) = mpsc::channel(8);
    let start = StartTurn {
        session_id: session_id.clone(),
        prompt: crate::images::prompt_blocks(prompt, images),
        client_capabilities: None,
        thinking: thinking.map(openheim_acp::thinking_setting),
        compact: None,
    };
    inputs
        .send(TurnInput {
            input: Some(Input::Start(start)),
        })
        .await?;
    let events = client
        .turn(ReceiverStream::new(input_rx))
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let code = follow(events, &inputs, interrupt, verbose).await?;
    eprintln!("session: {session_id}");
    Ok(code)
}

async fn create_session(runtime: &Runtime, options: RunOptions) -> anyhow::Result<String> {
    let request = CreateSessionRequest {
        work_dir: options.work_dir.unwrap_or_default(),
        skills: options.skills,
        model: options.model.unwrap_or_default(),
        mcp_servers: Vec::new(),
        approval_mode: options.approval as i32,
        read_only: options.read_only,
        parent: None,
        agent: None,
    };
    Ok(runtime
        .agent_loop()
        .create_session(request)
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .id)
}

/// Shows the turn's events until it is over (a Ctrl-C cancels it); the
/// exit code.
async fn follow(
    mut events: tonic::Streaming<TurnEvent>,
    inputs: &mpsc::Sender<TurnInput>,
    interrupt: impl std::future::Future<Output = ()>,
    show_thinking: bool,
) -> anyhow::Result<u8> {
    let mut view = View::new(std::io::stdout().is_terminal(), show_thinking);
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                let _ = inputs.send(TurnInput { input: Some(Input::Cancel(CancelTurn {})) }).await;
                continue;
            }
            next = events.next() => next,
        };
        let failure = match next {
            Some(Ok(event)) => match view.show(event)? {
                Some(code) => return Ok(code),
                None => continue,
            },
            Some(Err(status)) => status.message().to_owned(),
            None => "the agent stopped without finishing the turn".to_owned(),
        };
        view.release()?;
        view.finish_line()?;
        eprintln!("error: {failure}");
        return Ok(exit::FAILED);
    }
}

/// The exit code of a turn that ended for `reason`, with its note on stderr.
fn exit_code(reason: StopReason) -> u8 {
    match reason {
        StopReason::EndTurn | StopReason::ToolUse | StopReason::Unspecified => exit::OK,
        StopReason::MaxTokens => {
            eprintln!("note: the answer was cut at the model's output limit");
            exit::OK
        }
        StopReason::Refusal => {
            eprintln!("note: the model refused to answer");
            exit::OK
        }
        StopReason::MaxTurnRequests => {
            eprintln!("stopped: reached max_iterations before a final answer");
            exit::MAX_ITERATIONS
        }
        StopReason::Cancelled => {
            eprintln!("cancelled");
            exit::CANCELLED
        }
    }
}

/// Renders turn events; returns an exit code once the turn is over.
#[derive(Default)]
struct View {
    titles: HashMap<String, (String, Instant)>,
    text_ends_with_newline: bool,
    wrote_text: bool,
    /// `--verbose`: thinking goes to stderr.
    show_thinking: bool,
    /// Thinking is being written to stderr (its line is still open).
    in_thinking: bool,
    /// Text of the running LLM call not written yet; `None` when text is
    /// written as it arrives (stdout is a terminal).
    held: Option<String>,
}

impl View {
    fn new(live: bool, show_thinking: bool) -> Self {
        Self {
            held: (!live).then(String::new),
            show_thinking,
            ..Self::default()
        }
    }

    fn write_text(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        self.wrote_text = true;
        self.text_ends_with_newline = text.ends_with('\n');
        Ok(())
    }

    /// Writes the held text: the LLM call that produced it is over.
    fn release(&mut self) -> std::io::Result<()> {
        let Some(held) = self.held.as_mut() else {
            return Ok(());
        };
        let text = std::mem::take(held);
        self.write_text(&text)
    }

    fn show(&mut self, event: TurnEvent) -> anyhow::Result<Option<u8>> {
        let Some(event) = event.event else {
            return Ok(None);
        };
        match event {
            Event::ThinkingDelta(text) if self.show_thinking => {
                self.release()?;
                let mut err = std::io::stderr().lock();
                if !self.in_thinking {
                    err.write_all("thinking: ".as_bytes())?;
                    self.in_thinking = true;
                }
                err.write_all(text.as_bytes())?;
                err.flush()?;
            }
            Event::TextDelta(text) => {
                self.end_thinking();
                match self.held.as_mut() {
                    Some(held) => held.push_str(&text),
                    None => self.write_text(&text)?,
                }
            }
            Event::ToolCall(call) => {
                self.release()?;
                self.finish_line()?;
                eprintln!("▸ {}", call.title);
                self.titles.insert(call.id, (call.title, Instant::now()));
            }
            Event::ToolCallUpdate(update) => self.tool_done(&update),
            Event::Child(child) => {
                self.finish_line()?;
                self.child(child);
            }
            Event::Notice(notice) => {
                self.end_thinking();
                eprintln!("note: {}", notice.message)
            }
            Event::Compacted(compacted) => {
                self.finish_line()?;
                eprintln!("note: {}", compacted.message)
            }
            Event::Retracted(r) => {
                // Held text is dropped: the redone reply follows in full.
                if let Some(held) = self.held.as_mut() {
                    held.clear();
                } else {
                    self.finish_line()?;
                }
                eprintln!(
                    "note: the reply was interrupted ({}); it restarts here",
                    r.reason
                );
            }
            Event::Ended(ended) => {
                self.release()?;
                self.finish_line()?;
                return Ok(Some(exit_code(ended.stop_reason())));
            }
            Event::Error(error) => {
                self.release()?;
                self.finish_line()?;
                eprintln!("error: {}", error.message);
                return Ok(Some(exit::FAILED));
            }
            // `run` offers no client capabilities, so it is never asked.
            Event::Started(_)
            | Event::ThinkingDelta(_)
            | Event::Usage(_)
            | Event::ModelSelected(_)
            | Event::ClientRequest(_) => {}
            Event::PermissionRequest(request) => {
                self.release()?;
                self.finish_line()?;
                // Sessions created by `run` never ask; answer nothing (reject).
                eprintln!(
                    "note: permission requested for {} was not granted",
                    request.title
                );
            }
        }
        Ok(None)
    }

    /// A sub-agent's tool line, prefixed with its agent's name.
    fn child(&mut self, child: openheim_proto::agent_loop::v1::ChildActivity) {
        use openheim_proto::agent_loop::v1::child_activity::Activity;
        match child.activity {
            Some(Activity::ToolCall(call)) => {
                eprintln!("[{}] ▸ {}", child.agent, call.title);
                let key = format!("{}>{}", child.session_id, call.id);
                self.titles.insert(key, (call.title, Instant::now()));
            }
            Some(Activity::ToolCallUpdate(update)) => {
                let key = format!("{}>{}", child.session_id, update.id);
                if let Some(line) = self.done_line(&key, &update) {
                    eprintln!("[{}] {line}", child.agent);
                }
            }
            None => {}
        }
    }

    fn tool_done(&mut self, update: &openheim_proto::agent_loop::v1::ToolCallUpdate) {
        if let Some(line) = self.done_line(&update.id, update) {
            eprintln!("{line}");
        }
    }

    /// `✓ title (ms)` or `✗ title (ms): first line` for a finished call.
    fn done_line(
        &mut self,
        key: &str,
        update: &openheim_proto::agent_loop::v1::ToolCallUpdate,
    ) -> Option<String> {
        let status = update.status();
        if status == ToolCallStatus::InProgress || status == ToolCallStatus::Pending {
            return None;
        }
        let (title, started) = self.titles.remove(key)?;
        let ms = started.elapsed().as_millis();
        Some(if status == ToolCallStatus::Failed {
            let first = update.content.lines().next().unwrap_or_default();
            format!("✗ {title} ({ms} ms): {first}")
        } else {
            format!("✓ {title} ({ms} ms)")
        })
    }

    /// Ends the line of thinking on stderr, if one is open.
    fn end_thinking(&mut self) {
        if std::mem::take(&mut self.in_thinking) {
            eprintln!();
        }
    }

    /// Ends a partial line of answer text before writing to stderr.
    fn finish_line(&mut self) -> std::io::Result<()> {
        self.end_thinking();
        if self.wrote_text && !self.text_ends_with_newline {
            let mut out = std::io::stdout().lock();
            out.write_all(b"\n")?;
            out.flush()?;
            self.text_ends_with_newline = true;
        }
        Ok(())
    }
}
