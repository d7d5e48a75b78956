//! `openheim-gateway`: the gateway as its own process, in front of remote
//! services named by `[services]` (agent-loop required; tool-executor,
//! mcp-broker and llm-proxy enable the routes that need them).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use openheim_gateway::{Backends, GatewayOptions};
use openheim_proto::transport::remote;

#[derive(Debug, Parser)]
#[command(
    name = "openheim-gateway",
    version,
    about = "openheim's WebSocket and REST gateway"
)]
struct Args {
    /// HOST:PORT to listen on (default: server.host:server.port, 127.0.0.1:1217);
    /// port 0 picks a free port, printed as `listening on ADDR`.
    #[arg(long)]
    listen: Option<String>,
    /// Config file (same keys as `~/.openheim/config.toml`).
    #[arg(long, env = "OPENHEIM_CONFIG")]
    config: Option<PathBuf>,
    /// Instead of serving: ask the gateway on the `--listen` port (on
    /// 127.0.0.1; default 1217) for `GET /readyz`; exit 0 on 200, else 1.
    /// For container healthchecks.
    #[arg(long)]
    health: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.health {
        let listen = args.listen.as_deref().unwrap_or("127.0.0.1:1217");
        openheim_boot::health::exit_with(listen, openheim_boot::health::Probe::Http("/readyz"));
    }
    let boot = openheim_boot::Boot::start(args.config.as_deref(), Vec::new())?;
    openheim_boot::runtime()?.block_on(serve(args, boot))
}

async fn serve(args: Args, boot: openheim_boot::Boot) -> anyhow::Result<()> {
    let telemetry = boot.init_telemetry("openheim-gateway", "info")?;
    let config = &boot.config;
    let services = &config.services;
    let agent_loop = services
        .agent_loop
        .as_deref()
        .context("`services.agent_loop` must name the agent-loop address")?;
    let optional = |address: &Option<String>| address.as_deref().map(remote).transpose();
    let backends = Backends {
        // Every agent-loop replica the address names (a headless Service's
        // name, or a comma-separated list) gets turns, one after another.
        agent_loop: openheim_proto::balance::balanced(agent_loop)?,
        tool_executor: optional(&services.tool_executor)?,
        mcp_broker: optional(&services.mcp_broker)?,
        llm_proxy: optional(&services.llm_proxy)?,
    };
    let options = GatewayOptions::from_config(config)?;
    let address = match args.listen {
        Some(listen) => listen,
        None => openheim_gateway::listen_address(&config.server.host, config.server.port)
            .map_err(anyhow::Error::msg)?
            .to_string(),
    };
    let addr = address
        .parse()
        .with_context(|| format!("invalid --listen address {address:?} (expected HOST:PORT)"))?;
    options.check_exposure(addr)?;
    let listener = openheim_boot::bind(&address).await?;
    let served = openheim_gateway::serve(
        backends,
        options,
        listener,
        openheim_boot::shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    Ok(served?)
}
