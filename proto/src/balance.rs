//! A channel over every replica of a service, for callers that must spread
//! their calls (the gateway in front of several agent-loop replicas).
//!
//! One HTTP/2 connection carries every call made on it, so a plain
//! [`remote`](crate::transport::remote) channel to a Kubernetes Service
//! pins all calls to whichever replica the connection landed on. A
//! [`balanced`] channel instead resolves every address the targets name (a
//! host name gives all its A/AAAA records, as a headless Service does; a
//! comma-separated list gives several), keeps one warm connection per
//! address, and sends each call to the next healthy replica in turn.
//!
//! Health: every replica is asked `grpc.health.v1.Health/Check` every
//! [`PROBE_INTERVAL`] (which also keeps its connection warm); one that does
//! not answer SERVING, or whose connection fails a call, gets no calls until
//! it answers again. Names are resolved again every [`RESOLVE_INTERVAL`], so
//! replicas that come and go are picked up.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use crate::trace::PropagateLayer;
use crate::transport::{CONNECT_TIMEOUT, ChannelError, GrpcChannel, TransportError};

/// How often every replica's health is checked.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the targets' names are resolved again.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
/// A health check without an answer after this long counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel that spreads calls over every address of `targets`: one or
/// more `host:port` (or `http://host:port`), comma-separated. Resolves and
/// connects on first use, so it is built outside a runtime.
pub fn balanced(targets: &str) -> Result<GrpcChannel, TransportError> {
    let targets = parse_targets(targets)?;
    let pool = Arc::new(Pool {
        targets,
        members: RwLock::new(Vec::new()),
        next: AtomicUsize::new(0),
        started: tokio::sync::OnceCell::new(),
    });
    Ok(BoxCloneSyncService::new(
        PropagateLayer.layer(Balanced { pool }),
    ))
}

/// `host:port` of each comma-separated target, checked.
fn parse_targets(targets: &str) -> Result<Vec<String>, TransportError> {
    let invalid = |address: &str, reason: &str| TransportError::InvalidAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed: Vec<String> = targets
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|target| {
            let bare = target.strip_prefix("http://").unwrap_or(target);
            if bare.contains("://") || bare.contains('/') {
                return Err(invalid(target, "expected host:port or http://host:port"));
            }
            let (host, port) = bare
                .rsplit_once(':')
                .ok_or_else(|| invalid(target, "a port is required"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid(target, "expected host:port"));
            }
            Ok(bare.to_owned())
        })
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Err(invalid(targets, "no address given"));
    }
    Ok(parsed)
}

#[derive(Clone)]
struct Balanced {
    pool: Arc<Pool>,
}

struct Pool {
    targets: Vec<String>,
    /// Sorted by address, so the rotation is stable across refreshes.
    members: RwLock<Vec<Arc<Member>>>,
    next: AtomicUsize,
    /// Set once the first resolution and health round are done and the
    /// upkeep task runs.
    started: tokio::sync::OnceCell<()>,
}

/// One replica: its address, its connection and whether it gets calls.
struct Member {
    addr: SocketAddr,
    channel: Channel,
    healthy: AtomicBool,
}

impl Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = ChannelError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call waits for its own replica's connection.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = Arc::clone(&self.pool);
        Box::pin(async move {
            pool.start().await;
            let member = pool.pick().ok_or_else(|| {
                ChannelError::other(format!(
                    "no address of {} could be resolved",
                    pool.targets.join(",")
                ))
            })?;
            match member.channel.clone().oneshot(request).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    // The connection failed: no more calls until it answers
                    // a health check again.
                    member.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(replica = %member.addr, error = %error, "a replica's connection failed; leaving it out");
                    Err(ChannelError::new(error))
                }
            }
        })
    }
}

impl Pool {
    /// The first call resolves the targets and checks every replica before
    /// it picks one, then leaves the upkeep to a task.
    async fn start(self: &Arc<Self>) {
        self.started
            .get_or_init(|| async {
                self.refresh(true).await;
                tokio::spawn(upkeep(Arc::downgrade(self)));
            })
            .await;
    }

    /// The next healthy replica in turn; when none is healthy, the next one
    /// anyway (its error tells the caller why).
    fn pick(&self) -> Option<Arc<Member>> {
        let members = self.members.read().ok()?;
        let count = members.len();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| &members[(start + i) % count])
            .find(|m| m.healthy.load(Ordering::Relaxed))
            .or_else(|| members.get(start % count))
            .cloned()
    }

    /// Resolves the targets again when `resolve` (keeping the old replicas
    /// if no name resolves), then checks every replica's health.
    async fn refresh(&self, resolve: bool) {
        if resolve {
            let found = resolve_all(&self.targets).await;
            if !found.is_empty() {
                self.replace_members(&found);
            }
        }
        let members: Vec<Arc<Member>> = match self.members.read() {
            Ok(members) => members.clone(),
            Err(_) => return,
        };
        futures::future::join_all(members.iter().map(|m| m.probe())).await;
    }

    /// Keeps the replicas (and their connections) still found, adds the
    /// new ones, drops the gone ones; calls in flight on a dropped one end
    /// normally.
    fn replace_members(&self, found: &BTreeSet<SocketAddr>) {
        let Ok(mut members) = self.members.write() else {
            return;
        };
        let kept: Vec<Arc<Member>> = found
            .iter()
            .filter_map(|addr| {
                members
                    .iter()
                    .find(|m| m.addr == *addr)
                    .cloned()
                    .or_else(|| Member::new(*addr).map(Arc::new))
            })
            .collect();
        for gone in members.iter().filter(|m| !found.contains(&m.addr)) {
            tracing::info!(replica = %gone.addr, "a replica's address is gone");
        }
        *members = kept;
    }
}

impl Member {
    fn new(addr: SocketAddr) -> Option<Self> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Some(Self {
            addr,
            channel,
            healthy: AtomicBool::new(false),
        })
    }

    async fn probe(&self) {
        let mut client = HealthClient::new(self.channel.clone());
        let check = client.check(HealthCheckRequest {
            service: String::new(),
        });
        let serving = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, check).await,
            Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving
        );
        let was = self.healthy.swap(serving, Ordering::Relaxed);
        if was != serving {
            tracing::info!(replica = %self.addr, healthy = serving, "replica health changed");
        }
    }
}

/// Checks health every [`PROBE_INTERVAL`] and resolves again every
/// [`RESOLVE_INTERVAL`], until the channel is dropped.
async fn upkeep(pool: Weak<Pool>) {
    let rounds_per_resolve = (RESOLVE_INTERVAL.as_millis() / PROBE_INTERVAL.as_millis()).max(1);
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut round: u128 = 0;
    loop {
        ticks.tick().await;
        round += 1;
        let Some(pool) = pool.upgrade() else { return };
        pool.refresh(round.is_multiple_of(rounds_per_resolve)).await;
    }
}

/// Every address the targets resolve to; a target that does not resolve
/// is skipped (and logged).
async fn resolve_all(targets: &[String]) -> BTreeSet<SocketAddr> {
    let mut found = BTreeSet::new();
    for target in targets {
        match tokio::net::lookup_host(target.as_str()).await {
            Ok(addrs) => found.extend(addrs),
            Err(error) => tracing::warn!(%target, %error, "cannot resolve a replica address"),
        }
    }
    found
}

#[cfg(test)]
mod tests;
