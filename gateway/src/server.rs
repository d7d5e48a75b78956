//! The HTTP connections: accepting, serving each one with hyper, and the
//! limits a connection lives under before it becomes a WebSocket:
//!
//! - a client has `header_timeout` from connecting to complete its first
//!   request's headers;
//! - a connection with no request in flight is closed after
//!   `http_idle_timeout` (hyper's header timer holds a keep-alive
//!   connection's later requests to the same limit);
//! - one address may have `max_pending_per_ip` connections that have not
//!   completed a request's headers yet; more are closed at once, so half-sent
//!   requests cannot exhaust the server's file descriptors for everyone.
//!
//! Upgraded connections (WebSockets) leave this module: their limits are the
//! socket's own (`ws/socket.rs`). Stopping accepts nothing new and shuts
//! every connection down gracefully (a request in flight completes).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::options::Limits;

/// Connections of each address that have not completed a request yet.
#[derive(Default)]
struct Pending {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One pending connection; gives its place back when dropped (after its
/// first request started, or when it closed).
struct PendingTicket {
    pending: Arc<Pending>,
    ip: IpAddr,
}

impl Pending {
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PendingTicket> {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let count = by_ip.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PendingTicket {
            pending: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        let mut by_ip = self
            .pending
            .by_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then shuts the
/// open connections down gracefully and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let pending = Arc::new(Pending::default());
    // Every connection holds a receiver; the sender sees when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = pending.admit(peer.ip(), limits.max_pending_per_ip) else {
            tracing::debug!(%peer, "too many pending connections from this address");
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.http_idle_timeout,
            stop: stop.clone(),
        };
        let open = open_rx.clone();
        tokio::spawn(async move {
            connection.run(stream, peer, ticket).await;
            drop(open);
        });
    }
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// What one connection is served with.
struct Connection {
    router: Router,
    header_timeout: Duration,
    idle_timeout: Duration,
    stop: CancellationToken,
}

/// Requests of one connection: how many are in flight, when the last ended.
struct Activity {
    in_flight: AtomicUsize,
    changed: Notify,
}

impl Connection {
    /// HTTP/1 with the header timeout, and HTTP/2 with the CONNECT protocol
    /// (WebSockets over HTTP/2).
    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.idle_timeout.max(self.header_timeout));
        builder.http2().enable_connect_protocol();
        builder
    }

    async fn run(self, stream: TcpStream, peer: SocketAddr, ticket: PendingTicket) {
        let _ = stream.set_nodelay(true);
        let ticket = Arc::new(Mutex::new(Some(ticket)));
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let builder = self.builder();
        let service = {
            let activity = Arc::clone(&activity);
            let router = self.router;
            tower::service_fn(move |mut request: hyper::Request<Incoming>| {
                // Who is at the other end, for audit records.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // Headers are complete: the connection is no longer pending.
                ticket.lock().unwrap_or_else(PoisonError::into_inner).take();
                let guard = InFlight::start(Arc::clone(&activity));
                let call = router.clone().oneshot(request.map(Body::new));
                async move {
                    let response = call.await;
                    drop(guard);
                    response
                }
            })
        };
        let io = TokioIo::new(stream);
        let connection =
            builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(connection);
        // Until the first request: the header timeout; then the idle timeout
        // whenever nothing is in flight.
        let mut deadline = Instant::now() + self.header_timeout;
        let mut served = false;
        let mut closing = false;
        loop {
            let idle = activity.in_flight.load(Ordering::Acquire) == 0;
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::trace!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                () = activity.changed.notified() => {
                    served = true;
                    deadline = Instant::now() + self.idle_timeout;
                }
                () = tokio::time::sleep_until(deadline), if idle && !closing => {
                    if !served {
                        tracing::debug!(%peer, "no request in time; closing the connection");
                        return;
                    }
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = self.stop.cancelled(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A request in flight; ending it (drop) wakes the connection's timer.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_pending_places_back() {
        let pending = Arc::new(Pending::default());
        let ip: IpAddr = [127, 0, 0, 2].into();
        let first = pending.admit(ip, 2).unwrap();
        let _second = pending.admit(ip, 2).unwrap();
        assert!(pending.admit(ip, 2).is_none(), "over the limit");
        assert!(
            pending.admit([127, 0, 0, 3].into(), 2).is_some(),
            "others unaffected"
        );
        drop(first);
        assert!(pending.admit(ip, 2).is_some());
    }
}
