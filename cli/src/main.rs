//! The `openheim` binary: parses the command line and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use openheim::init::FileOutcome;
use openheim::run::{RunOptions, exit};

#[derive(Parser)]
#[command(
    name = "openheim",
    version,
    about = "A fast, multi-provider LLM agent runtime"
)]
struct Cli {
    /// Config file (default: ~/.openheim/config.toml).
    #[arg(long, global = true, env = "OPENHEIM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Write ~/.openheim/config.toml and system.md (never overwrites without --force).
    Init {
        #[arg(long)]
        force: bool,
    },
    /// Run one prompt headless: the answer on stdout, tool activity on stderr.
    Run {
        prompt: String,
        /// Model name, or provider/model.
        #[arg(long)]
        model: Option<String>,
        /// Skills to load, comma-separated.
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Continue an existing session.
        #[arg(long)]
        resume: Option<String>,
    },
    /// ACP agent over stdio (not available in this build yet).
    Acp,
    /// WebSocket + REST server (not available in this build yet).
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Init { force }) => init(force),
        Some(Command::Run {
            prompt,
            model,
            skills,
            resume,
        }) => {
            openheim_boot::init_logging("warn");
            let config = openheim_boot::load_config(cli.config.as_deref(), Vec::new())?;
            let runtime = openheim::Runtime::start(&config)?;
            let options = RunOptions {
                model,
                skills,
                work_dir: None,
                resume,
            };
            let interrupt = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            openheim::run::run(&runtime, prompt, options, interrupt).await
        }
        None => not_yet("the interactive REPL"),
        Some(Command::Acp) => not_yet("`openheim acp`"),
        Some(Command::Serve) => not_yet("`openheim serve`"),
    }
}

fn init(force: bool) -> anyhow::Result<u8> {
    let home = openheim_boot::home_dir()?;
    for outcome in openheim::init::init(&home, force)? {
        match outcome {
            FileOutcome::Written(p) => eprintln!("wrote {}", p.display()),
            FileOutcome::Replaced(p) => eprintln!("replaced {}", p.display()),
            FileOutcome::Kept(p) => {
                eprintln!("kept {} (exists; use --force to replace)", p.display())
            }
        }
    }
    Ok(exit::OK)
}

fn not_yet(what: &str) -> anyhow::Result<u8> {
    eprintln!("{what} is not available in this build yet; use `openheim run \"PROMPT\"`.");
    Ok(2)
}
