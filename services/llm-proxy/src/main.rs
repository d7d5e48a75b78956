//! The `openheim-llm-proxy` binary: the llm-proxy service in its own process
//! (one container of the distributed deployment).

use anyhow::Context;
use clap::Parser;
use openheim_boot::{Boot, ServiceArgs};
use openheim_llm_proxy::LlmProxyConfig;

fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    args.probe_if_asked();
    // Reads the provider keys once; they are gone from the environment
    // before any thread starts.
    let boot = Boot::start(args.config.as_deref(), Vec::new())?;
    openheim_boot::runtime()?.block_on(serve(args, boot))
}

async fn serve(args: ServiceArgs, boot: Boot) -> anyhow::Result<()> {
    let telemetry = boot.init_telemetry("openheim-llm-proxy", "info")?;
    let config = LlmProxyConfig::from_config(&boot.config);
    let listener = openheim_boot::bind(&args.listen).await?;
    tracing::info!(
        providers = config.providers.len(),
        default_provider = config.default_provider.as_deref().unwrap_or("-"),
        "llm-proxy ready"
    );
    let served =
        openheim_llm_proxy::serve(config, listener, openheim_boot::shutdown_signal()).await;
    telemetry.shutdown().await;
    served.context("llm-proxy stopped")
}
