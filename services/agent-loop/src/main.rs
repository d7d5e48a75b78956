//! `openheim-agent-loop`: the agent-loop service as its own process. Its
//! peers are the remote services named in `[services]`.

use anyhow::Context;
use clap::Parser;
use openheim_agent_loop::{AgentLoopConfig, Backends};
use openheim_boot::{Boot, ServiceArgs};
use openheim_proto::transport::remote;

fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    args.probe_if_asked();
    let mut boot = Boot::start(args.config.as_deref(), Vec::new())?;
    // A service process serves several people: memory is opt-in here.
    boot.config
        .memory
        .enabled
        .get_or_insert(openheim_config::MEMORY_ENABLED_SERVING);
    openheim_boot::runtime()?.block_on(serve(args, boot))
}

async fn serve(args: ServiceArgs, boot: Boot) -> anyhow::Result<()> {
    let telemetry = boot.init_telemetry("openheim-agent-loop", "info")?;
    let config = &boot.config;
    let address = |name: &str, value: &Option<String>| {
        value
            .clone()
            .with_context(|| format!("`services.{name}` must name the {name} address"))
    };
    let services = &config.services;
    let backends = Backends::new(
        remote(&address("llm_proxy", &services.llm_proxy)?)?,
        remote(&address("tool_executor", &services.tool_executor)?)?,
        remote(&address("mcp_broker", &services.mcp_broker)?)?,
    );
    let listener = openheim_boot::bind(&args.listen).await?;
    // A deployment serves remote clients: their sessions live inside its
    // workspace (the mounted volume).
    // Sub-agents' turns go to the deployment's agent-loop address when it
    // is configured (any replica may run them), else to this process.
    let agent_config = AgentLoopConfig {
        workspace_root: config.work_dir.clone(),
        agents_address: services.agent_loop.clone(),
        ..AgentLoopConfig::from_config(config)?
    };
    let served = openheim_agent_loop::serve(
        agent_config,
        backends,
        listener,
        openheim_boot::shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    Ok(served?)
}
