//! `openheim-mcp-broker`: the mcp-broker service as its own process.

use clap::Parser;
use openheim_boot::ServiceArgs;
use openheim_mcp_broker::McpBrokerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    let config = openheim_boot::load_config(args.config.as_deref(), Vec::new())?;
    let telemetry = openheim_boot::init_telemetry(&config, "openheim-mcp-broker", "info")?;
    let listener = openheim_boot::bind(&args.listen).await?;
    let served = openheim_mcp_broker::serve(
        McpBrokerConfig::from_config(&config),
        listener,
        openheim_boot::shutdown_signal(),
    )
    .await;
    telemetry.shutdown().await;
    Ok(served?)
}
