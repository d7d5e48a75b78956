//! One client type for both deployments.
//!
//! Every generated client in openheim is instantiated over [`GrpcChannel`], a
//! boxed `tower` service. It wraps either a generated *server* directly (the
//! in-process deployment: no socket, no HTTP/2, but the same protobuf encoding
//! and the same service code) or a lazily connected HTTP/2 channel (the
//! container deployment). Callers cannot tell which one they hold.
//!
//! Caveat of the in-process path: tonic's server-side layers and
//! `grpc-timeout` enforcement are skipped, so anything that must hold in both
//! deployments (timeouts, limits) is applied with `tower` around the service
//! itself, before it is handed to [`in_process`] or to a tonic `Server`.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::time::Duration;

use tonic::body::Body;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Transport under every generated client.
pub type GrpcChannel = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, ChannelError>;

/// A transport failure below gRPC (connection refused, reset, ...).
///
/// A concrete type rather than a bare `Box<dyn Error>`: the generated
/// clients' futures stay provably `Send` (rustc cannot prove it through the
/// higher-ranked `Into<Box<dyn Error>>` bound of a boxed error). tonic walks
/// [`std::error::Error::source`] to classify the cause.
#[derive(Debug)]
pub struct ChannelError(BoxError);

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for ChannelError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Largest message any openheim client or server accepts. Loaded session
/// histories are the biggest messages on the wire.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long a remote connection attempt may take before calls fail.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid service address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
}

/// A channel that calls `server` directly in this process.
///
/// `server` is a generated `XxxServer<Impl>` (possibly wrapped in tower
/// layers); dropping the response future drops the handler future, so
/// cancellation propagates exactly as an HTTP/2 stream reset would.
pub fn in_process<S>(server: S) -> GrpcChannel
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(server.map_err(|never: Infallible| match never {}))
}

/// A channel to a remote service at `address` (`http://host:port`, or bare
/// `host:port`). Connects lazily, so a service that starts later is fine.
pub fn remote(address: &str) -> Result<GrpcChannel, TransportError> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let endpoint = tonic::transport::Endpoint::from_shared(uri).map_err(|e| {
        TransportError::InvalidAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(BoxCloneSyncService::new(
        channel.map_err(|e| ChannelError(Box::new(e))),
    ))
}
