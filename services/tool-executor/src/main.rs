//! The tool-executor container binary: flags, configuration and logging,
//! then [`openheim_tool_executor::serve`] until SIGTERM or Ctrl-C.

use clap::Parser;
use openheim_boot::ServiceArgs;
use openheim_tool_executor::ToolExecutorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    let config = openheim_boot::load_config(args.config.as_deref(), Vec::new())?;
    let telemetry = openheim_boot::init_telemetry(&config, "openheim-tool-executor", "info")?;
    // In a container every session workspace must lie inside the configured
    // work_dir (the mounted volume), never elsewhere on the filesystem.
    let executor = ToolExecutorConfig::from_config(&config, config.work_dir.clone());
    let listener = openheim_boot::bind(&args.listen).await?;
    let served =
        openheim_tool_executor::serve(executor, listener, openheim_boot::shutdown_signal()).await;
    telemetry.shutdown().await;
    Ok(served?)
}
