//! Process bootstrap shared by every openheim binary: the common flags
//! (`--listen`, `--config`), the environment read once and the process
//! secured ([`process`]: secrets scrubbed, non-dumpable), configuration from
//! file and environment, logging to stderr and OpenTelemetry export
//! ([`telemetry`]), the runtime, binding the listener (and printing its
//! address) and the shutdown signal.
//!
//! This is the only library that reads the process environment and the
//! current directory; it hands the result to the services as plain values.
//!
//! A binary's `main` runs, in this order and before any thread exists:
//! [`Boot::start`] (environment, configuration, [`process::secure`]), then
//! [`runtime`], then everything else inside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use openheim_config::{Config, LoadOptions};
use tokio::net::TcpListener;

pub mod process;
pub mod telemetry;

pub use process::Environment;
pub use telemetry::{Telemetry, TelemetrySettings};

/// What a binary has once started: its environment, read once, and its
/// configuration; the process is secured.
#[derive(Debug)]
pub struct Boot {
    pub env: Environment,
    pub config: Config,
    secured: process::Secured,
}

impl Boot {
    /// Reads the environment, loads the configuration ([`load_config`]),
    /// secures the process ([`process::secure`]) and bounds the allocator
    /// ([`process::limit_malloc_arenas`]). Call before any thread
    /// starts: before [`runtime`].
    pub fn start(file: Option<&Path>, overrides: Vec<(String, String)>) -> anyhow::Result<Self> {
        let env = Environment::capture();
        let config = load_config(&env, file, overrides)?;
        let secured = process::secure(&config)?;
        process::limit_malloc_arenas();
        Ok(Self {
            env,
            config,
            secured,
        })
    }

    /// [`init_telemetry`] for this boot's configuration and environment;
    /// then logs what securing the process did.
    pub fn init_telemetry(
        &self,
        service_name: &str,
        default_filter: &str,
    ) -> anyhow::Result<Telemetry> {
        let telemetry = init_telemetry(&self.config, &self.env, service_name, default_filter)?;
        self.log_secured();
        Ok(telemetry)
    }

    /// What [`Boot::init_telemetry`] would export.
    pub fn telemetry_settings(&self, service_name: &str) -> TelemetrySettings {
        telemetry_settings(&self.config, &self.env, service_name)
    }

    /// Logs (debug) which variables were removed from the process.
    pub fn log_secured(&self) {
        tracing::debug!(
            scrubbed = ?self.secured.scrubbed,
            non_dumpable = self.secured.non_dumpable,
            "secrets removed from the process environment"
        );
    }
}

/// The multi-threaded Tokio runtime every binary runs on (two workers).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Flags every service binary accepts.
#[derive(Debug, Clone, clap::Parser)]
pub struct ServiceArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout as
    /// `listening on ADDR`).
    #[arg(long, default_value = "0.0.0.0:50051")]
    pub listen: String,
    /// Config file (same keys as `~/.openheim/config.toml`); env vars
    /// `OPENHEIM_*` override it.
    #[arg(long, env = "OPENHEIM_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The openheim home: `$OPENHEIM_HOME`, else `~/.openheim`.
pub fn home_dir(env: &Environment) -> anyhow::Result<PathBuf> {
    if let Some(home) = env.get("OPENHEIM_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = env
        .get("HOME")
        .context("neither OPENHEIM_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".openheim"))
}

/// Loads the configuration the way every binary does: `file` (or
/// `<home>/config.toml` when `None`), the environment `env` and
/// `overrides`; then fills in `work_dir` (current directory) and `data_dir`
/// (the openheim home) when unset, and `child_env` (what processes started
/// for the model may inherit of `env`).
pub fn load_config(
    env: &Environment,
    file: Option<&Path>,
    overrides: Vec<(String, String)>,
) -> anyhow::Result<Config> {
    let home = home_dir(env)?;
    let (file, file_required) = match file {
        Some(path) => (path.to_path_buf(), true),
        None => (home.join("config.toml"), false),
    };
    let mut config = openheim_config::load(&LoadOptions {
        file: Some(file),
        file_required,
        env: env.vars().clone(),
        overrides,
    })?;
    if config.work_dir.is_none() {
        config.work_dir =
            Some(std::env::current_dir().context("cannot read the current directory")?);
    }
    if config.data_dir.is_none() {
        config.data_dir = Some(home);
    }
    config.child_env = env.without_denied(&openheim_sandbox::EnvPolicy::from_config(&config));
    Ok(config)
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`), and
/// exports traces and metrics over OTLP when `config` or the standard
/// `OTEL_*` variables name an endpoint (see [`telemetry`]). `service_name`
/// is this binary's `service.name` unless configured. Never logs on stdout:
/// `run` and `acp` own it. Call inside the Tokio runtime, and
/// [`Telemetry::shutdown`] before it ends.
pub fn init_telemetry(
    config: &Config,
    env: &Environment,
    service_name: &str,
    default_filter: &str,
) -> anyhow::Result<Telemetry> {
    let settings = telemetry_settings(config, env, service_name);
    Ok(telemetry::init(&settings, default_filter)?)
}

/// What [`init_telemetry`] would export: `config`'s `[telemetry]` and the
/// environment's `OTEL_*` variables.
pub fn telemetry_settings(
    config: &Config,
    env: &Environment,
    service_name: &str,
) -> TelemetrySettings {
    TelemetrySettings::resolve(&config.telemetry, env.vars(), service_name)
}

/// Logs to stderr only, filtered by `RUST_LOG` (else `default_filter`):
/// for code that runs before a configuration exists. Binaries use
/// [`init_telemetry`].
pub fn init_logging(default_filter: &str) {
    // Without export there is nothing to fail and nothing to shut down.
    let settings = TelemetrySettings::logs_only("openheim");
    if let Ok(telemetry) = telemetry::init(&settings, default_filter) {
        drop(telemetry);
    }
}

/// Binds `address` and prints `listening on ADDR` on stdout, the line test
/// harnesses and orchestration scripts wait for.
pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    let addr = parse_listen(address)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // The one line a service prints on stdout.
    #[allow(clippy::print_stdout)]
    {
        println!("listening on {local}");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(listener)
}

/// `HOST:PORT`, or a bare `PORT` on every interface (`0` = any free port).
fn parse_listen(address: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = address.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    address.parse().with_context(|| {
        format!("invalid --listen address {address:?} (expected HOST:PORT or PORT)")
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("0").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 0))
        );
        assert_eq!(parse_listen("127.0.0.1:5000").unwrap().port(), 5000);
        assert!(parse_listen("[::1]:0").is_ok());
        assert!(parse_listen("localhost").is_err());
    }
}
