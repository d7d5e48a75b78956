//! `openheim-mcp-broker`: the mcp-broker service as its own process.

use clap::Parser;
use openheim_boot::{Boot, ServiceArgs};
use openheim_mcp_broker::McpBrokerConfig;

fn main() -> anyhow::Result<()> {
    // Stdio MCP servers are started through this binary (their own process
    // namespace); that run ends here.
    openheim_sandbox::launcher::enter_if_requested();
    let args = ServiceArgs::parse();
    args.probe_if_asked();
    let boot = Boot::start(args.config.as_deref(), Vec::new())?;
    openheim_boot::runtime()?.block_on(serve(args, boot))
}

async fn serve(args: ServiceArgs, boot: Boot) -> anyhow::Result<()> {
    let telemetry = boot.init_telemetry("openheim-mcp-broker", "info")?;
    let listener = openheim_boot::bind(&args.listen).await?;
    // A deployment's broker serves the gateway, whose clients may answer
    // elicitation requests; a call whose caller cannot is declined.
    let mut config = McpBrokerConfig::from_config(&boot.config);
    config.processes.elicitation = true;
    let served =
        openheim_mcp_broker::serve(config, listener, openheim_boot::shutdown_signal()).await;
    telemetry.shutdown().await;
    Ok(served?)
}
