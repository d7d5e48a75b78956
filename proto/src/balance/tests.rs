//! The balanced channel against real gRPC servers on loopback.

use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
use tonic::Request;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use super::*;

/// A replica: a health service that counts the calls marked `x-count`
/// (the test's own calls, not the channel's health checks).
struct Replica {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    /// Stops the server when sent (or dropped).
    shutdown: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(host: &str) -> Self {
        let listener = TcpListener::bind((host, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let health = HealthServer::with_interceptor(
            HealthService::from_health_reporter(HealthReporter::new()),
            move |request: Request<()>| {
                if request.metadata().contains_key("x-count") {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(request)
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(crate::transport::incoming(listener), async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            calls,
            shutdown: tx,
            served,
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.served.await.unwrap();
    }
}

async fn call(channel: &GrpcChannel) -> Result<(), tonic::Status> {
    let mut request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-count", "1".parse().unwrap());
    HealthClient::new(channel.clone())
        .check(request)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn calls_are_spread_over_every_replica() {
    let (a, b) = (
        Replica::start("127.0.0.1").await,
        Replica::start("127.0.0.1").await,
    );
    let channel = balanced(&format!("{}, http://{}", a.addr, b.addr)).unwrap();
    for _ in 0..20 {
        call(&channel).await.unwrap();
    }
    assert_eq!((a.calls(), b.calls()), (10, 10));
}

#[tokio::test]
async fn a_replica_that_stops_gets_no_more_calls() {
    let (a, b) = (
        Replica::start("127.0.0.1").await,
        Replica::start("127.0.0.1").await,
    );
    let channel = balanced(&format!("{},{}", a.addr, b.addr)).unwrap();
    for _ in 0..4 {
        call(&channel).await.unwrap();
    }
    let served_by_b = b.calls();
    b.stop().await;
    // At most the call that finds the connection gone fails; then the
    // replica is left out.
    let mut failed = 0;
    for _ in 0..20 {
        if call(&channel).await.is_err() {
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} calls failed");
    assert_eq!(a.calls(), 2 + 20 - failed);
    assert_eq!(served_by_b, 2);
}

#[tokio::test]
async fn every_address_of_a_name_is_used_and_unreachable_ones_are_left_out() {
    // `localhost` resolves to 127.0.0.1 and usually ::1 as well; the
    // replica listens on 127.0.0.1 only, so ::1 fails its health check.
    let a = Replica::start("127.0.0.1").await;
    let channel = balanced(&format!("localhost:{}", a.addr.port())).unwrap();
    for _ in 0..10 {
        call(&channel).await.unwrap();
    }
    assert_eq!(a.calls(), 10);
}

#[test]
fn targets_are_checked() {
    assert_eq!(parse_targets("a:1, http://b:2 ,").unwrap(), ["a:1", "b:2"]);
    for bad in ["", " , ", "a", "a:x", "https://a:1", "a:1/path", ":1"] {
        assert!(parse_targets(bad).is_err(), "{bad:?}");
    }
}
