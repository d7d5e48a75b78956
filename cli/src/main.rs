//! The `openheim` binary: parses the command line and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use openheim::events::ApprovalMode;
use openheim::init::FileOutcome;
use openheim::run::{Format, RunOptions, exit};

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
    /// Model name, or provider/model (interactive mode).
    #[arg(long)]
    model: Option<String>,
    /// Skills to load, comma-separated (interactive mode).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Resume a session: its id, or the latest one in this directory when
    /// no id is given (interactive mode).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// How hard the model reasons: off, low, medium, high or a token budget
    /// (interactive mode; `/thinking` changes it).
    #[arg(long, value_parser = openheim_config::Thinking::parse)]
    thinking: Option<openheim_config::Thinking>,
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
    /// Run one prompt headless: the answer on stdout, tool activity on stderr
    /// (or JSON events on stdout with --json). Exit codes: docs/automation.md.
    Run {
        /// The prompt; `-` or none reads it from stdin.
        prompt: Option<String>,
        /// JSON Lines events on stdout instead of the answer (docs/automation.md).
        #[arg(long)]
        json: bool,
        /// Write the assistant's last message to FILE when the run ends.
        #[arg(long, value_name = "FILE")]
        output_last_message: Option<PathBuf>,
        /// Model calls the turn may make (default: max_iterations).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_iterations: Option<u32>,
        /// Model name, or provider/model.
        #[arg(long)]
        model: Option<String>,
        /// Skills to load, comma-separated.
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Continue an existing session.
        #[arg(long)]
        resume: Option<String>,
        /// Run tool calls that would need approval without asking.
        #[arg(long, short = 'y', conflicts_with = "deny")]
        yes: bool,
        /// Refuse tool calls that would need approval (edits, commands, fetches).
        #[arg(long)]
        deny: bool,
        /// Offer only read-only tools (plan mode).
        #[arg(long)]
        read_only: bool,
        /// Report the setup (model, sandbox level) on stderr before running,
        /// show the model's thinking there, and log warnings (without it,
        /// logs appear only with `RUST_LOG`).
        #[arg(long, short = 'v')]
        verbose: bool,
        /// Send this image (PNG, JPEG, GIF or WebP, up to 5 MB) with the prompt; repeatable.
        #[arg(long = "image", value_name = "PATH")]
        images: Vec<PathBuf>,
        /// How hard the model reasons: off, low, medium, high or a token
        /// budget (default: as configured for the model).
        #[arg(long, value_parser = openheim_config::Thinking::parse)]
        thinking: Option<openheim_config::Thinking>,
    },
    /// Stored sessions, newest first, with their tokens and cost.
    Sessions {
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// A JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// ACP agent over stdin/stdout (for Zed and other ACP clients); logs go to stderr.
    Acp {
        /// Relay to a remote openheim's ACP endpoint instead of running
        /// the agent here: wss://HOST/acp (ws:// only to a loopback
        /// address). Needs no local configuration; see docs/acp.md.
        #[arg(long, value_name = "URL")]
        connect: Option<String>,
        /// The environment variable holding the server's bearer token.
        #[arg(long, value_name = "VAR", requires = "connect")]
        token_env: Option<String>,
    },
    /// Sign in to MCP servers that require OAuth (docs/mcp.md#oauth).
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Long-term memory of this workspace: the project's notes and the user's.
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// WebSocket (/ws, /acp) + REST (/api) server over the services of this
    /// configuration; see docs/api.md.
    Serve {
        /// Address to bind (default: server.host, 127.0.0.1). A non-loopback
        /// address requires server.auth_tokens.
        #[arg(long)]
        host: Option<String>,
        /// Port (default: server.port, 1217); 0 picks a free one.
        #[arg(long)]
        port: Option<u16>,
        /// HOST:PORT, instead of --host and --port.
        #[arg(long, conflicts_with_all = ["host", "port"])]
        listen: Option<String>,
    },
}

#[derive(Subcommand)]
enum McpCommand {
    /// Sign in to configured server NAME: prints the address to open in a
    /// browser, waits for its answer on a loopback port, stores the tokens
    /// in <data_dir>/mcp-auth/NAME.json.
    Login {
        name: String,
        /// Seconds to wait for the browser.
        #[arg(long, default_value_t = openheim::mcp_auth::DEFAULT_LOGIN_TIMEOUT.as_secs())]
        timeout_secs: u64,
    },
    /// Forget the tokens of server NAME.
    Logout { name: String },
}

#[derive(Subcommand)]
enum MemoryCommand {
    /// Notes, newest first.
    List {
        /// Every project's notes, not only this workspace's.
        #[arg(long)]
        all: bool,
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// A JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Notes most relevant to QUERY, best first.
    Search {
        query: String,
        /// At most this many (1 to 20).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
        limit: u32,
        /// A JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Delete the note with this id.
    Forget { id: String },
}

impl From<MemoryCommand> for openheim::memory::MemoryCommand {
    fn from(command: MemoryCommand) -> Self {
        match command {
            MemoryCommand::List { all, limit, json } => Self::List { all, limit, json },
            MemoryCommand::Search { query, limit, json } => Self::Search { query, limit, json },
            MemoryCommand::Forget { id } => Self::Forget { id },
        }
    }
}

/// `service.name` of what this binary exports (unless configured).
const SERVICE_NAME: &str = "openheim";

fn main() -> ExitCode {
    // Shell commands and stdio MCP servers are started through this binary
    // (their own process namespace); that run ends here.
    openheim_sandbox::launcher::enter_if_requested();
    let cli = Cli::parse();
    match start(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Reads the environment and configuration and secures the process while it
/// has one thread, then runs the command on the async runtime.
fn start(mut cli: Cli) -> anyhow::Result<u8> {
    if let Some(Command::Run { prompt, .. }) = &mut cli.command {
        *prompt = Some(read_prompt(prompt.take())?);
    }
    if let Some(Command::Init { force }) = cli.command {
        return init(force);
    }
    if let Some(Command::Acp {
        connect: Some(url),
        token_env,
    }) = cli.command
    {
        return bridge(url, token_env);
    }
    let mut overrides = Vec::new();
    if let Some(Command::Serve { host, port, .. }) = &cli.command {
        overrides.extend(host.clone().map(|h| ("server.host".to_owned(), h)));
        overrides.extend(port.map(|p| ("server.port".to_owned(), p.to_string())));
    }
    let boot = openheim_boot::Boot::start(cli.config.as_deref(), overrides)?;
    let runtime = openheim_boot::runtime()?;
    let result = runtime.block_on(dispatch(cli, boot));
    // A read of stdin (`acp`) may still be parked on a blocking thread;
    // do not let it hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Runs the subcommand. One match over the subcommands, kept whole so the
/// command line reads in one place; each arm calls into its module.
async fn dispatch(cli: Cli, boot: openheim_boot::Boot) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Init { force }) => init(force),
        Some(Command::Run {
            prompt,
            json,
            output_last_message,
            max_iterations,
            model,
            skills,
            resume,
            yes,
            deny,
            read_only,
            verbose,
            images,
            thinking,
        }) => {
            // Read in `start`, before the runtime.
            let prompt = prompt.unwrap_or_default();
            // Everything a user needs (retries, fallbacks, errors) comes as
            // one `note:`/`error:` line from the turn's events; log lines
            // would say it twice, so they appear only when asked for.
            let logs = if verbose { "warn" } else { "off" };
            let telemetry = boot.init_telemetry(SERVICE_NAME, logs)?;
            let config = &boot.config;
            let runtime = openheim::Runtime::start(config)?;
            let approval = run_approval(config, yes, deny);
            if verbose {
                report_setup(config, &runtime, model.as_deref()).await;
            }
            let options = RunOptions {
                approval,
                read_only,
                model,
                skills,
                work_dir: None,
                resume,
                max_iterations,
                format: match json {
                    true => Format::Json,
                    false => Format::Text,
                },
                last_message_file: output_last_message,
                verbose,
                images,
                thinking,
            };
            let interrupt = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let ran = openheim::run::run(&runtime, prompt, options, interrupt).await;
            telemetry.shutdown().await;
            ran
        }
        None => {
            let options = openheim::tui::TuiOptions {
                model: cli.model,
                skills: cli.skills,
                resume: cli.resume.map(|id| Some(id).filter(|id| !id.is_empty())),
                thinking: cli.thinking,
                config_file: match &cli.config {
                    Some(file) => file.clone(),
                    None => openheim_boot::home_dir(&boot.env)?.join("config.toml"),
                },
                no_color: boot.env.get("NO_COLOR").map(str::to_owned),
                term: boot.env.get("TERM").map(str::to_owned),
            };
            tui(boot, options).await
        }
        Some(Command::Memory { command }) => memory(boot, command.into()).await,
        Some(Command::Mcp {
            command: McpCommand::Login { name, timeout_secs },
        }) => {
            let timeout = std::time::Duration::from_secs(timeout_secs);
            openheim::mcp_auth::login(&boot.config, &name, timeout).await
        }
        Some(Command::Mcp {
            command: McpCommand::Logout { name },
        }) => openheim::mcp_auth::logout(&boot.config, &name).await,
        Some(Command::Acp { .. }) => acp(boot).await,
        Some(Command::Sessions { limit, json }) => {
            let runtime = openheim::Runtime::start(&boot.config)?;
            openheim::sessions::run(&runtime, limit, json).await
        }
        Some(Command::Serve { listen, .. }) => serve(boot, listen).await,
    }
}

/// The prompt of `openheim run`: the argument, or stdin when it is `-` or
/// missing (then stdin must not be a terminal).
fn read_prompt(prompt: Option<String>) -> anyhow::Result<String> {
    use std::io::{IsTerminal, Read};
    if let Some(prompt) = prompt.filter(|p| p != "-") {
        return Ok(prompt);
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!(
            "no prompt: give one as an argument, or pipe it in (openheim run - < prompt.txt)"
        );
    }
    let mut prompt = String::new();
    stdin
        .read_to_string(&mut prompt)
        .map_err(|e| anyhow::anyhow!("cannot read the prompt from stdin: {e}"))?;
    if prompt.trim().is_empty() {
        anyhow::bail!("the prompt read from stdin is empty");
    }
    Ok(prompt)
}

/// `openheim acp`: stdout carries only the JSON-RPC stream, so logs go to
/// stderr (`RUST_LOG`, default warnings). Ends with 0 when the client closes
/// stdin, after running turns recorded their cancellation.
async fn acp(boot: openheim_boot::Boot) -> anyhow::Result<u8> {
    let telemetry = boot.init_telemetry(SERVICE_NAME, "warn")?;
    let config = &boot.config;
    let runtime = openheim::Runtime::start_for_clients(config, openheim::Workspaces::Anywhere)?;
    let options = openheim_acp::AcpOptions::from_config(config);
    let served = openheim_acp::serve_stdio(runtime.agent_loop(), options).await;
    telemetry.shutdown().await;
    served?;
    Ok(exit::OK)
}

/// `openheim acp --connect URL`: relays the editor's stdio to a remote
/// `/acp` endpoint. No configuration is read; the token is read here, from
/// the variable `--token-env` names.
fn bridge(url: String, token_env: Option<String>) -> anyhow::Result<u8> {
    let env = openheim_boot::Environment::capture();
    let token = match token_env {
        Some(var) => match env.get(&var).filter(|t| !t.trim().is_empty()) {
            Some(value) => Some(openheim::bridge::Token {
                value: openheim::config::Secret::new(value.trim()),
                var,
            }),
            None => anyhow::bail!("--token-env {var}: ${var} is not set or is empty"),
        },
        None => None,
    };
    let options = openheim::bridge::BridgeOptions { url, token };
    let runtime = openheim_boot::runtime()?;
    let result = runtime.block_on(async {
        openheim_boot::init_logging("warn");
        openheim::bridge::run(options, tokio::io::stdin(), tokio::io::stdout()).await
    });
    // A read of stdin may still be parked on a blocking thread.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(exit::OK)
}

/// `openheim memory …`: notes of the workspace's project and of the user.
async fn memory(
    boot: openheim_boot::Boot,
    command: openheim::memory::MemoryCommand,
) -> anyhow::Result<u8> {
    let config = boot.config;
    let runtime = openheim::Runtime::start(&config)?;
    let work_dir = config.work_dir.clone().unwrap_or_default();
    openheim::memory::run(&runtime, command, &work_dir).await
}

/// `openheim serve`: the gateway over this configuration's services,
/// until Ctrl-C or SIGTERM (then running turns get the gateway's shutdown
/// deadline to finish). Prints `listening on ADDR` on stdout once bound.
async fn serve(mut boot: openheim_boot::Boot, listen: Option<String>) -> anyhow::Result<u8> {
    // A server serves several people: memory is opt-in here.
    boot.config
        .memory
        .enabled
        .get_or_insert(openheim_config::MEMORY_ENABLED_SERVING);
    let telemetry = boot.init_telemetry(SERVICE_NAME, "info")?;
    let config = &boot.config;
    let addr = match listen {
        Some(listen) => listen
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid --listen {listen:?} (expected HOST:PORT)"))?,
        None => openheim_gateway::listen_address(&config.server.host, config.server.port)
            .map_err(anyhow::Error::msg)?,
    };
    let options = openheim_gateway::GatewayOptions::from_config(config)?;
    options.check_exposure(addr)?;
    // Remote clients work inside the configured workspace only.
    let runtime = openheim::Runtime::start_server(config)?;
    let backends = openheim_gateway::Backends {
        agent_loop: runtime.agent_loop_channel(),
        tool_executor: runtime.tool_executor_channel(),
        mcp_broker: runtime.mcp_broker_channel(),
        llm_proxy: runtime.llm_proxy_channel(),
    };
    let listener = openheim_boot::bind(&addr.to_string()).await?;
    let shutdown = openheim_boot::shutdown_signal();
    let served = openheim_gateway::serve(backends, options, listener, shutdown).await;
    telemetry.shutdown().await;
    served?;
    Ok(exit::OK)
}

async fn report_setup(
    config: &openheim_config::Config,
    runtime: &openheim::Runtime,
    model: Option<&str>,
) {
    let default = config.default_provider.as_deref().unwrap_or("(none)");
    eprintln!("model: {}", model.unwrap_or(default));
    if let Some(dir) = &config.work_dir {
        eprintln!("workspace: {}", dir.display());
    }
    match runtime.sandbox().await {
        Some((level, detail)) => eprintln!("sandbox: {level} ({detail})"),
        None => eprintln!("sandbox: reported by the remote tool-executor"),
    }
}

/// `--yes` / `--deny`, else `permissions.run` from the config. Auto-approval
/// is announced: headless runs never allow edits and commands silently.
fn run_approval(config: &openheim_config::Config, yes: bool, deny: bool) -> ApprovalMode {
    use openheim_config::RunApproval;
    let auto = yes || (!deny && config.permissions.run == RunApproval::Auto);
    if auto {
        if !yes {
            eprintln!(
                "note: tool calls run without approval (permissions.run = \"auto\"); --deny refuses edits and commands"
            );
        }
        ApprovalMode::Auto
    } else {
        ApprovalMode::Deny
    }
}

fn init(force: bool) -> anyhow::Result<u8> {
    let home = openheim_boot::home_dir(&openheim_boot::Environment::capture())?;
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

/// `openheim`: the interactive terminal UI. Logs go to a file under the
/// data dir; config problems are reported on stderr before the screen is
/// taken over.
async fn tui(boot: openheim_boot::Boot, options: openheim::tui::TuiOptions) -> anyhow::Result<u8> {
    let telemetry = match &boot.config.data_dir {
        Some(data_dir) => {
            match openheim::tui::init_file_logging(data_dir, &boot.telemetry_settings(SERVICE_NAME))
            {
                Ok((_, telemetry)) => Some(telemetry),
                Err(e) => {
                    eprintln!(
                        "warning: cannot open the log file under {}: {e}",
                        data_dir.display()
                    );
                    None
                }
            }
        }
        None => None,
    };
    boot.log_secured();
    // The UI puts MCP servers' elicitation requests to the user.
    let runtime =
        openheim::Runtime::start_for_clients(&boot.config, openheim::Workspaces::Anywhere)?;
    let ran = openheim::tui::run(runtime, boot.config, options).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    ran
}
