//! llm-proxy: the only openheim service that talks to LLM providers and holds
//! their API keys.
//!
//! It owns model resolution (`provider/model`, bare names, the default
//! provider), the provider clients (OpenAI Chat Completions and Responses,
//! OpenAI-compatible servers, Anthropic Messages, Google Gemini),
//! normalisation of their streams into one event protocol, retries with
//! backoff, fallbacks, a total deadline per completion, and the typed errors
//! callers act on.
//!
//! Code map:
//! - [`service`]: the domain (`Complete`, `ListModels`), free of gRPC;
//! - `grpc`: the tonic adapter, the only place that names tonic types;
//! - [`provider`]: the internal [`provider::ProviderClient`] trait and the
//!   built-in clients;
//! - [`custom`]: the public extension point for providers implemented by an
//!   embedding application (re-exported as `openheim::llm`), adapted to
//!   `ProviderClient` so that the same policy drives them;
//! - [`resolve`], [`retry`], [`error`]: small policies tested alone.
//!
//! Invariants: API keys never appear in an error, a log line or a response;
//! every completion stream ends with exactly one `Finished` or `Error`;
//! dropping a completion stream aborts the upstream HTTP request.

pub mod custom;
pub mod error;
mod grpc;
pub mod http_clients;
pub mod provider;
pub mod resolve;
pub mod retry;
pub mod service;
mod telemetry;
mod vision;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openheim_config::{Config, ProviderConfig};
use openheim_proto::GrpcChannel;
use openheim_proto::llm_proxy::v1::llm_proxy_server::LlmProxyServer;
use tokio::net::TcpListener;

pub use error::{LlmError, LlmProxyError};
pub use grpc::GrpcProxy;
pub use http_clients::HttpClients;
pub use service::Proxy;

/// How long establishing a provider connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle provider connections are kept this long for reuse: a TLS handshake
/// costs more than most of the proxy's own work.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The longest one completion may take as a whole: every attempt, wait and
/// fallback. The idle timeout (`timeout_secs`) catches a silent provider;
/// this catches one that trickles forever. Generous, because a long
/// reasoning answer legitimately takes many minutes.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The part of the openheim configuration this service needs.
#[derive(Debug, Clone)]
pub struct LlmProxyConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    pub default_provider: Option<String>,
    /// Deadline of one completion as a whole (see [`DEFAULT_TOTAL_TIMEOUT`]).
    pub total_timeout: Duration,
    /// Prices of the models, for the cost of each call's usage.
    pub pricing: openheim_config::Pricing,
}

impl Default for LlmProxyConfig {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            default_provider: None,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            pricing: openheim_config::Pricing::default(),
        }
    }
}

impl LlmProxyConfig {
    pub fn from_config(config: &Config) -> Self {
        Self {
            providers: config.providers.clone(),
            default_provider: config.default_provider.clone(),
            total_timeout: Duration::from_secs(config.completion_timeout_secs),
            pricing: openheim_config::Pricing::of(config),
        }
    }
}

/// Providers implemented by the embedding application, by provider name
/// (see [`custom`]). They exist only in the process that registers them.
pub type CustomProviders = BTreeMap<String, Arc<dyn custom::LlmProvider>>;

/// The generated gRPC server over the proxy, with openheim's message size
/// limits. Providers and the HTTP client (one connection pool) are built once
/// here and shared by every call.
pub fn grpc_server(
    config: LlmProxyConfig,
    custom: &CustomProviders,
) -> Result<LlmProxyServer<GrpcProxy>, LlmProxyError> {
    let proxy = Arc::new(Proxy::new(config, &HttpClients::new(), custom));
    Ok(grpc::server(proxy))
}

/// A channel to an in-process proxy: what the CLI uses instead of a socket.
/// The `custom` providers plug in here, and only here: they live in this
/// process.
pub fn in_process(
    config: LlmProxyConfig,
    custom: &CustomProviders,
) -> Result<GrpcChannel, LlmProxyError> {
    Ok(openheim_proto::transport::in_process(grpc_server(
        config, custom,
    )?))
}

/// Serves the proxy over gRPC on `listener` until `shutdown` resolves, then
/// lets in-flight completions finish.
pub async fn serve(
    config: LlmProxyConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LlmProxyError> {
    let server = grpc_server(config, &CustomProviders::new())?;
    grpc::serve(server, listener, shutdown).await
}
