//! `openheim-gateway`: the gateway as its own process, in front of a remote
//! agent-loop named by `services.agent_loop`.

use anyhow::Context;
use clap::Parser;
use openheim_boot::ServiceArgs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    openheim_boot::init_logging("info");
    let config = openheim_boot::load_config(args.config.as_deref(), Vec::new())?;
    let agent_loop = config
        .services
        .agent_loop
        .as_deref()
        .context("`services.agent_loop` must name the agent-loop address")?;
    let backends = openheim_gateway::Backends {
        agent_loop: openheim_proto::transport::remote(agent_loop)?,
    };
    let listener = openheim_boot::bind(&args.listen).await?;
    openheim_gateway::serve(backends, listener, openheim_boot::shutdown_signal()).await?;
    Ok(())
}
