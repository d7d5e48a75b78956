//! `openheim-mcp-broker`: the mcp-broker service as its own process.

use clap::Parser;
use openheim_boot::ServiceArgs;
use openheim_mcp_broker::McpBrokerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    openheim_boot::init_logging("info");
    let config = openheim_boot::load_config(args.config.as_deref(), Vec::new())?;
    let listener = openheim_boot::bind(&args.listen).await?;
    openheim_mcp_broker::serve(
        McpBrokerConfig::from_config(&config),
        listener,
        openheim_boot::shutdown_signal(),
    )
    .await?;
    Ok(())
}
