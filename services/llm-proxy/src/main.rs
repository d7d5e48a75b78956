//! The `openheim-llm-proxy` binary: the llm-proxy service in its own process
//! (one container of the distributed deployment).

use anyhow::Context;
use clap::Parser;
use openheim_boot::ServiceArgs;
use openheim_llm_proxy::LlmProxyConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    let config = openheim_boot::load_config(args.config.as_deref(), Vec::new())?;
    let telemetry = openheim_boot::init_telemetry(&config, "openheim-llm-proxy", "info")?;
    let config = LlmProxyConfig::from_config(&config);
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
