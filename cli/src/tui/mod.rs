//! The interactive terminal UI, `openheim` with no subcommand: a prompt
//! with history and completion, turns streamed as they happen, permission
//! questions answered with one key, slash commands, themes.
//!
//! It is a front end like `run` and `acp`: everything goes through the
//! agent loop's gRPC client (the library facade), so it behaves the same
//! whether the services run in this process or remotely. Nothing here
//! writes to stderr: logs go to `<data_dir>/logs/openheim.log`.

pub mod commands;
pub mod diff;
pub mod editor;
pub mod markdown;
pub mod render;
pub mod term;
pub mod theme;

mod app;
mod status;

pub use app::{TuiOptions, run};

/// Sends logs to `<data_dir>/logs/openheim.log` (appending), so they never
/// land on the screen. `RUST_LOG` filters as usual (default: info).
pub fn init_file_logging(data_dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("openheim.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(path)
}
