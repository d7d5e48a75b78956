//! Running one turn: starts it, then feeds the turn's events, keys, typed
//! answers and spinner ticks to the [`TurnState`] machine and carries out
//! what it returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use openheim_proto::agent_loop::v1::turn_event::Event;
use openheim_proto::common::v1::Image;
use tokio::io::{BufReader, Lines, Stdin};

use super::app::{App, Flow, next_interrupt};
use super::attach;
use super::editor::{KeyReader, TurnKey};
use super::machine::{Action, Input, TurnState};
use super::render::TurnView;
use super::term::{self, Mode};
use super::theme::Role;
use crate::Turn;

/// How often the spinner of running tool calls moves.
const SPINNER_INTERVAL: Duration = Duration::from_millis(100);
/// How long leaving mid-turn waits for the cancelled turn to be recorded.
const QUIT_GRACE: Duration = Duration::from_secs(3);

/// What a turn is asked to do.
pub(super) enum Ask {
    Prompt(String),
    /// An MCP prompt as its server filled it in (`commands/prompts.rs`).
    Filled {
        text: String,
        images: Vec<Image>,
    },
    /// `/compact [focus]`.
    Compact(String),
}

impl App {
    /// Runs one turn to its end; `Flow::Quit` when the user left during it.
    pub(super) async fn turn(&mut self, ask: Ask) -> anyhow::Result<Flow> {
        let work_dir = PathBuf::from(&self.ensure_session().await?.info().work_dir);
        let Some(mut turn) = self.start_turn(ask, &work_dir).await? else {
            return Ok(Flow::Continue);
        };
        let interactive = self.mode == Mode::Interactive;
        let view =
            TurnView::new(self.styler, interactive, term::width()).with_work_dir(Some(work_dir));
        let state = TurnState::new(
            view,
            std::mem::take(&mut self.status),
            std::mem::take(&mut self.typeahead),
            self.config.max_iterations,
        );
        let mut keys = None;
        if interactive {
            self.screen.enter_raw()?;
            keys = Some(KeyReader::start());
        }
        let mut state = self.drive(&mut turn, state, &mut keys).await;
        if let Some(keys) = keys {
            state.late_keys(keys.stop().await);
        }
        self.screen.leave_raw()?;
        let (end, status, typeahead) = state.end();
        self.status = status;
        self.typeahead = typeahead;
        if end.quit && !end.finished {
            leave_mid_turn(turn).await;
        }
        if let Some(closing) = end.closing {
            self.screen.write(&closing)?;
        }
        Ok(if end.quit { Flow::Quit } else { Flow::Continue })
    }

    /// Sends the prompt (with the images it names) or the compaction;
    /// `None` when it was not sent (the error is shown).
    async fn start_turn(&mut self, ask: Ask, work_dir: &Path) -> anyhow::Result<Option<Turn>> {
        let images = match &ask {
            Ask::Prompt(prompt) => match attached_images(prompt, work_dir) {
                Ok(images) => images,
                Err(e) => {
                    self.error(&format!("{e}; nothing was sent"))?;
                    return Ok(None);
                }
            },
            Ask::Filled { .. } | Ask::Compact(_) => Vec::new(),
        };
        if !images.is_empty() {
            self.line(
                Some(Role::Dim),
                &format!("  attached {}", describe_images(&images)),
            )?;
        }
        let thinking = self.options.thinking;
        let session = self.ensure_session().await?;
        session.set_thinking(thinking);
        let started = match ask {
            Ask::Prompt(prompt) => session.prompt_with_images(prompt, images).await,
            Ask::Filled { text, images } => session.prompt_with_images(text, images).await,
            Ask::Compact(focus) => session.compact(focus).await,
        };
        match started {
            Ok(turn) => Ok(Some(turn)),
            Err(e) => {
                self.error(&e.to_string())?;
                Ok(None)
            }
        }
    }

    /// Feeds the machine until it is over. A write to the screen that fails
    /// ends the turn as leaving would (the terminal is gone).
    async fn drive(
        &mut self,
        turn: &mut Turn,
        mut state: TurnState,
        keys: &mut Option<KeyReader>,
    ) -> TurnState {
        let mut tick = tokio::time::interval(SPINNER_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !state.is_over() {
            let asking = state.asking();
            let input = tokio::select! {
                event = turn.next() => match event {
                    None => Input::Closed,
                    Some(Err(e)) => Input::Failed(e.to_string()),
                    Some(Ok(event)) => match event.event {
                        Some(event) => Input::Event(event),
                        None => continue,
                    },
                },
                key = next_key(keys) => Input::Key(key),
                line = next_answer(&mut self.lines, asking) => Input::Answer(line),
                () = next_interrupt(&mut self.interrupts) => Input::Key(TurnKey::Interrupt),
                _ = tick.tick() => Input::Tick,
            };
            for action in state.on(input, Instant::now()) {
                match action {
                    Action::Show(text) => {
                        if let Err(error) = self.screen.write(&text) {
                            tracing::warn!(%error, "the terminal cannot be written");
                            state.on(Input::Key(TurnKey::Eof), Instant::now());
                        }
                    }
                    Action::Answer {
                        request_id,
                        decision,
                    } => turn.answer(request_id, decision).await,
                    Action::Cancel => turn.cancel().await,
                }
            }
        }
        state
    }
}

/// Leaving mid-turn: the cancel was sent; give the agent a moment to
/// record it, so the stored history stays complete.
async fn leave_mid_turn(mut turn: Turn) {
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

/// `2 images (image/png 12 KB, image/gif 3 KB)`: what was attached.
fn describe_images(images: &[Image]) -> String {
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
    work_dir: &Path,
) -> Result<Vec<Image>, crate::images::AttachError> {
    attach::image_refs(prompt)
        .iter()
        .map(|reference| crate::images::read_image(&attach::resolve(reference, work_dir)))
        .collect()
}
