//! `openheim run`: one prompt, headless. By default the answer streams to
//! stdout and tool activity, notices and errors go to stderr, so
//! `openheim run … > out.txt` captures exactly the answer; with `--json`
//! stdout carries only the JSON event stream of [`events`]
//! (docs/automation.md).

pub mod events;
mod json;
mod text;

use std::path::PathBuf;

use futures::StreamExt;
use openheim_proto::GrpcChannel;
use openheim_proto::agent_loop::v1::agent_loop_client::AgentLoopClient;
use openheim_proto::agent_loop::v1::{
    ApprovalMode, CancelTurn, CreateSessionRequest, LoadSessionRequest, SessionInfo, StartTurn,
    TurnErrorKind, TurnEvent, TurnInput, turn_event::Event, turn_input::Input,
};
use openheim_proto::common::v1::StopReason;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Runtime;
use events::ErrorKind;

/// Process exit codes of `openheim run` (the table in docs/automation.md).
pub mod exit {
    /// The turn ended with an answer (also cut at the output limit, or a
    /// refusal: the model answered).
    pub const OK: u8 = 0;
    /// The run failed: the provider failed for good, the session could not
    /// be created or resumed, a service was unreachable, a bad config.
    pub const FAILED: u8 = 1;
    /// The command line was invalid (clap's code).
    pub const USAGE: u8 = 2;
    /// The turn hit `max_iterations` before a final answer.
    pub const MAX_ITERATIONS: u8 = 3;
    /// Interrupted (Ctrl-C).
    pub const CANCELLED: u8 = 130;
}

/// How `openheim run` writes what happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// The answer on stdout, activity on stderr.
    #[default]
    Text,
    /// JSON Lines on stdout ([`events::RunEvent`]).
    Json,
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
    /// Model calls the turn may make; `None` = the configured
    /// `max_iterations`.
    pub max_iterations: Option<u32>,
    pub format: Format,
    /// Where to write the assistant's last message when the run ends.
    pub last_message_file: Option<PathBuf>,
    /// Also report who decided each tool call's permission (text format).
    pub verbose: bool,
    /// Image files sent with the prompt (`--image`), relative to the
    /// current directory.
    pub images: Vec<std::path::PathBuf>,
    /// How hard the model reasons in this turn; `None` = as configured.
    pub thinking: Option<openheim_config::Thinking>,
}

/// What a rendering of the run does with its session and events.
trait Render {
    /// The run's session exists.
    fn session(&mut self, info: &SessionInfo, resumed: bool) -> std::io::Result<()>;
    /// One turn event; the exit code once the turn is over.
    fn event(&mut self, event: TurnEvent) -> std::io::Result<Option<u8>>;
    /// The run failed outside the turn's own events; returns the exit code.
    fn failed(
        &mut self,
        session_id: Option<&str>,
        kind: ErrorKind,
        message: &str,
    ) -> std::io::Result<u8>;
    /// The assistant's last non-empty message, if any.
    fn last_message(&self) -> Option<&str>;
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
    let last_message_file = options.last_message_file.clone();
    let mut render: Box<dyn Render + Send> = match options.format {
        Format::Text => Box::new(text::View::new(
            options.verbose,
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        )),
        Format::Json => Box::new(json::JsonView::new()),
    };
    let code = run_session(runtime, prompt, options, interrupt, render.as_mut())
        .instrument(span)
        .await?;
    if let Some(path) = last_message_file {
        let text = render.last_message().unwrap_or_default();
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(code)
}

async fn run_session(
    runtime: &Runtime,
    prompt: String,
    options: RunOptions,
    interrupt: impl std::future::Future<Output = ()>,
    render: &mut (dyn Render + Send),
) -> anyhow::Result<u8> {
    // Checked before a session is made: a bad file costs nothing.
    let images = options
        .images
        .iter()
        .map(|path| crate::images::read_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = runtime.agent_loop();
    let resumed = options.resume.is_some();
    let max_iterations = options.max_iterations;
    let thinking = options.thinking;
    let session = match open_session(&mut client, options).await {
        Ok(session) => session,
        Err(status) => return Ok(render.failed(None, status_kind(&status), status.message())?),
    };
    let session_id = session.id.clone();
    tracing::Span::current().record("gen_ai.conversation.id", session_id.as_str());
    render.session(&session, resumed)?;
    let start = StartTurn {
        caller: None,
        session_id: session_id.clone(),
        prompt: crate::images::prompt_blocks(prompt, images),
        client_capabilities: None,
        max_iterations,
        thinking: thinking.map(openheim_acp::thinking_setting),
        compact: None,
    };
    follow_turn(&mut client, start, interrupt, render).await
}

/// The session `run` works in: the one `--resume` names, or a new one.
async fn open_session(
    client: &mut AgentLoopClient<GrpcChannel>,
    options: RunOptions,
) -> Result<SessionInfo, tonic::Status> {
    match options.resume {
        Some(id) => client
            .load_session(LoadSessionRequest {
                caller: None,
                session_id: id,
                mcp_servers: Vec::new(),
            })
            .await
            .map(|r| r.into_inner().session.unwrap_or_default()),
        None => {
            let request = CreateSessionRequest {
                caller: None,
                work_dir: options.work_dir.unwrap_or_default(),
                skills: options.skills,
                model: options.model.unwrap_or_default(),
                mcp_servers: Vec::new(),
                approval_mode: options.approval as i32,
                read_only: options.read_only,
                parent: None,
                agent: None,
            };
            client.create_session(request).await.map(|r| r.into_inner())
        }
    }
}

/// How `run` reports a session that could not be opened (exit code table,
/// docs/automation.md).
fn status_kind(status: &tonic::Status) -> ErrorKind {
    match status.code() {
        tonic::Code::NotFound => ErrorKind::SessionNotFound,
        tonic::Code::InvalidArgument => ErrorKind::InvalidInput,
        tonic::Code::Unavailable => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Starts the turn and renders its events until it ends; `interrupt`
/// (Ctrl-C) cancels it once, and the turn's own stop reason still decides
/// the exit code.
async fn follow_turn(
    client: &mut AgentLoopClient<GrpcChannel>,
    start: StartTurn,
    interrupt: impl std::future::Future<Output = ()>,
    render: &mut (dyn Render + Send),
) -> anyhow::Result<u8> {
    let session_id = start.session_id.clone();
    // Kept open for the whole turn: closing the input stream cancels it.
    let (inputs, input_rx) = mpsc::channel(8);
    inputs
        .send(TurnInput {
            input: Some(Input::Start(start)),
        })
        .await?;
    let mut events = match client.turn(ReceiverStream::new(input_rx)).await {
        Ok(events) => events.into_inner(),
        Err(status) => {
            let kind = ErrorKind::Unavailable;
            return Ok(render.failed(Some(&session_id), kind, status.message())?);
        }
    };
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
        match next {
            Some(Ok(event)) => {
                if let Some(code) = render.event(event)? {
                    return Ok(code);
                }
            }
            Some(Err(status)) => {
                let kind = ErrorKind::Unavailable;
                return Ok(render.failed(Some(&session_id), kind, status.message())?);
            }
            None => {
                let message = "the agent stopped without finishing the turn";
                return Ok(render.failed(Some(&session_id), ErrorKind::Internal, message)?);
            }
        }
    }
}

/// The exit code of a turn that ended with `stop`.
fn exit_code(stop: StopReason) -> u8 {
    match stop {
        StopReason::EndTurn
        | StopReason::ToolUse
        | StopReason::Unspecified
        | StopReason::MaxTokens
        | StopReason::Refusal => exit::OK,
        StopReason::MaxTurnRequests => exit::MAX_ITERATIONS,
        StopReason::Cancelled => exit::CANCELLED,
    }
}

/// The kind of failure a turn error is.
fn error_kind(kind: TurnErrorKind) -> ErrorKind {
    match kind {
        TurnErrorKind::Llm => ErrorKind::Provider,
        TurnErrorKind::SessionNotFound => ErrorKind::SessionNotFound,
        TurnErrorKind::SessionBusy => ErrorKind::SessionBusy,
        TurnErrorKind::InvalidInput => ErrorKind::InvalidInput,
        TurnErrorKind::HookDenied => ErrorKind::HookDenied,
        TurnErrorKind::LimitExceeded => ErrorKind::LimitExceeded,
        TurnErrorKind::Store => ErrorKind::Store,
        TurnErrorKind::BackendUnavailable => ErrorKind::Unavailable,
        TurnErrorKind::Internal | TurnErrorKind::Unspecified => ErrorKind::Internal,
    }
}

/// The last message of a turn: the text of its last model call that wrote
/// any.
#[derive(Default)]
struct LastMessage {
    current: String,
    last: Option<String>,
}

impl LastMessage {
    fn push(&mut self, text: &str) {
        self.current.push_str(text);
    }

    /// The output of the current call is void.
    fn retract(&mut self) {
        self.current.clear();
    }

    /// The current call's text is complete; returns it when not empty.
    fn complete(&mut self) -> Option<&str> {
        if self.current.is_empty() {
            return None;
        }
        self.last = Some(std::mem::take(&mut self.current));
        self.last.as_deref()
    }

    fn get(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

/// Whether an event ends the text of the model call being streamed.
fn ends_message(event: &Event) -> bool {
    !matches!(
        event,
        Event::TextDelta(_) | Event::ThinkingDelta(_) | Event::Retracted(_)
    )
}
