//! The interactive terminal UI, `openheim` with no subcommand: a prompt
//! with history and completion, turns streamed as they happen, permission
//! questions answered with one key, MCP servers' questions asked field by
//! field, slash commands, themes.
//!
//! It is a front end like `run` and `acp`: everything goes through the
//! agent loop's gRPC client (the library facade), so it behaves the same
//! whether the services run in this process or remotely. Nothing here
//! writes to stderr: logs go to `<data_dir>/logs/openheim.log`.
//!
//! Inside: `app.rs` is the session loop (read an entry, run it as a slash
//! command or a turn); `turn.rs` runs one turn by feeding the pure state
//! machine of `machine.rs` (events, keys, answers in; text to show, answers
//! and cancels out; `machine_form.rs` and `elicit.rs` for MCP servers'
//! questions); `commands/` holds the slash commands, one list
//! (`COMMANDS`) that help, parsing and completion read; `render.rs` draws a
//! turn, `editor.rs` reads input.

mod app;
mod attach;
mod commands;
mod diff;
mod editor;
mod elicit;
mod machine;
mod markdown;
mod plan;
mod render;
pub(crate) mod status;
mod term;
mod theme;
mod turn;

pub use app::{TuiOptions, run};

/// Sends logs to `<data_dir>/logs/openheim.log` (appending), so they never
/// land on the screen. `RUST_LOG` filters as usual (default: info). Exports
/// traces and metrics as `telemetry` says; an exporter that cannot be built
/// is reported in the log file and left out. Call inside the Tokio runtime,
/// and shut the returned [`Telemetry`] down before it ends.
///
/// [`Telemetry`]: openheim_boot::Telemetry
pub fn init_file_logging(
    data_dir: &std::path::Path,
    telemetry: &openheim_boot::TelemetrySettings,
) -> std::io::Result<(std::path::PathBuf, openheim_boot::Telemetry)> {
    use openheim_boot::telemetry::{TelemetrySettings, init_with_writer};
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("openheim.log");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    };
    let writer = std::sync::Mutex::new(open()?);
    let guard = match init_with_writer(telemetry, "info", writer) {
        Ok(guard) => guard,
        Err(error) => {
            let logs_only = TelemetrySettings::logs_only(&telemetry.service_name);
            let guard = init_with_writer(&logs_only, "info", std::sync::Mutex::new(open()?))
                .map_err(std::io::Error::other)?;
            tracing::warn!(%error, "telemetry export is off");
            guard
        }
    };
    Ok((path, guard))
}
