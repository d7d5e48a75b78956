//! One client type for both deployments.
//!
//! Every generated client in openheim is instantiated over [`GrpcChannel`], a
//! boxed `tower` service. It wraps either a generated *server* directly (the
//! in-process deployment: no socket, no HTTP/2, but the same protobuf encoding
//! and the same service code) or a lazily connected HTTP/2 channel (the
//! container deployment). Callers cannot tell which one they hold. Both
//! carry the caller's trace context (`traceparent`, see [`crate::trace`]).
//!
//! Caveat of the in-process path: tonic's server-side layers and
//! `grpc-timeout` enforcement are skipped, so what must hold in both
//! deployments lives in [`ServerPolicy`], a tower layer that [`in_process`]
//! applies itself and every `serve` adds to its tonic `Server`.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::trace::{PropagateLayer, ServerCall};

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

impl ChannelError {
    pub(crate) fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }

    pub(crate) fn other(message: String) -> Self {
        Self(message.into())
    }
}

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
    let server = ServerPolicy.layer(server);
    let client = PropagateLayer.layer(server.map_err(|never: Infallible| match never {}));
    BoxCloneSyncService::new(client)
}

/// Serves `service` on `listener` until `shutdown` resolves, as every
/// openheim service binary does: with [`ServerPolicy`], over
/// [`incoming`] connections, beside `grpc.health.v1` (overall status
/// SERVING while serving) for container probes.
pub async fn serve<S>(
    service: S,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    tonic::transport::Server::builder()
        .layer(ServerPolicy)
        .add_service(service)
        .add_service(tonic_health::server::health_reporter().1)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
}

/// Accepted connections of `listener` with `TCP_NODELAY` set: gRPC streams
/// are many small messages and Nagle's algorithm would hold them back.
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::TryStreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).inspect_ok(|stream| {
        // Best effort: a socket that refuses it still works, only slower.
        let _ = stream.set_nodelay(true);
    })
}

/// Server-side policy of every openheim service, in both deployments:
/// a call whose `grpc-timeout` elapses before its response starts is answered
/// `DEADLINE_EXCEEDED` and its handler is dropped (cancelling its work); when
/// telemetry records it, the call runs in a server span parented to the
/// caller's `traceparent` (see [`crate::trace`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerPolicy;

impl<S> Layer<S> for ServerPolicy {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

/// See [`ServerPolicy`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static>>;

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let Some(call) = ServerCall::start(&request) else {
            return Box::pin(within(deadline, self.inner.call(request)));
        };
        let span = call.span().clone();
        let response = span.in_scope(|| self.inner.call(request));
        let response = within(deadline, response).instrument(span);
        Box::pin(async move {
            let Ok(response) = response.await;
            Ok(call.respond(response))
        })
    }
}

/// `response`, or DEADLINE_EXCEEDED when `deadline` elapses first.
async fn within<F>(
    deadline: Option<Duration>,
    response: F,
) -> Result<http::Response<Body>, Infallible>
where
    F: Future<Output = Result<http::Response<Body>, Infallible>>,
{
    let Some(deadline) = deadline else {
        return response.await;
    };
    match tokio::time::timeout(deadline, response).await {
        Ok(result) => result,
        Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
            "deadline of {deadline:?} exceeded"
        ))
        .into_http()),
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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
    let client = PropagateLayer.layer(channel.map_err(|e| ChannelError(Box::new(e))));
    Ok(BoxCloneSyncService::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("-5S"), None);
    }

    /// A handler slower than the caller's deadline is answered
    /// DEADLINE_EXCEEDED and dropped; a fast one passes untouched.
    #[tokio::test(start_paused = true)]
    async fn deadlines_are_enforced_around_the_service() {
        let slow = tower::service_fn(|_req: http::Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        });
        let mut service = ServerPolicy.layer(slow);
        let request = || {
            http::Request::builder()
                .header("grpc-timeout", "100m")
                .body(Body::empty())
                .unwrap()
        };
        let response = service.call(request()).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "4");

        let fast = tower::service_fn(|_req: http::Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        });
        let response = ServerPolicy.layer(fast).call(request()).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
    }
}
