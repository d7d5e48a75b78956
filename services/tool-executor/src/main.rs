//! The tool-executor container binary: flags, configuration and logging,
//! then [`openheim_tool_executor::serve`] until SIGTERM or Ctrl-C.

use clap::Parser;
use openheim_boot::{Boot, ServiceArgs};
use openheim_tool_executor::ToolExecutorConfig;

fn main() -> anyhow::Result<()> {
    // Shell commands are started through this binary (its own process
    // namespace); that run ends here.
    openheim_sandbox::launcher::enter_if_requested();
    let args = ServiceArgs::parse();
    args.probe_if_asked();
    let boot = Boot::start(args.config.as_deref(), Vec::new())?;
    openheim_boot::runtime()?.block_on(serve(args, boot))
}

async fn serve(args: ServiceArgs, boot: Boot) -> anyhow::Result<()> {
    let telemetry = boot.init_telemetry("openheim-tool-executor", "info")?;
    let config = &boot.config;
    // In a container every session workspace must lie inside the configured
    // work_dir (the mounted volume), never elsewhere on the filesystem.
    let executor = ToolExecutorConfig::from_config(config, config.work_dir.clone());
    let listener = openheim_boot::bind(&args.listen).await?;
    let served =
        openheim_tool_executor::serve(executor, listener, openheim_boot::shutdown_signal()).await;
    telemetry.shutdown().await;
    Ok(served?)
}
