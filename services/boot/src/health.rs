//! `--health`: a binary asks the instance listening on its own `--listen`
//! port whether it is ready, and exits 0 (ready) or 1 (not), so container
//! healthchecks need no shell, curl or probe binary in the image.
//!
//! gRPC services answer `grpc.health.v1.Health/Check` with SERVING; the
//! gateway answers `GET /readyz` with 200 (its backends reachable).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A probe without an answer after this long fails.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a probe says "not ready".
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("invalid --listen address {0:?} (expected HOST:PORT)")]
    Address(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC health check failed: {0}")]
    Grpc(String),
    #[error("not serving (status {0})")]
    NotServing(i32),
    #[error("{0} answered {1:?}")]
    Http(&'static str, String),
}

/// The loopback address of the port `listen` names (`0.0.0.0:50051` →
/// `127.0.0.1:50051`): the probe runs inside the same container.
pub fn local_address(listen: &str) -> Result<SocketAddr, HealthError> {
    let port = listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| HealthError::Address(listen.to_owned()))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Asks `grpc.health.v1.Health/Check` (the whole server) at `address`.
pub async fn probe_grpc(address: SocketAddr) -> Result<(), HealthError> {
    let check = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| HealthError::Grpc(e.to_string()))?
            .connect_timeout(PROBE_TIMEOUT);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| HealthError::Grpc(e.to_string()))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|s| HealthError::Grpc(s.message().to_owned()))?
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(HealthError::NotServing(status))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .map_err(|_| HealthError::Timeout(PROBE_TIMEOUT))?
}

/// `GET path` over HTTP/1.1 at `address`; ready when the status is 200.
pub async fn probe_http(address: SocketAddr, path: &'static str) -> Result<(), HealthError> {
    let check = async {
        let connect = |source| HealthError::Connect { address, source };
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(connect)?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(connect)?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.map_err(connect)?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let head = String::from_utf8_lossy(&head[..read]);
        let status_line = head.lines().next().unwrap_or_default().to_owned();
        if status_line.split(' ').nth(1) == Some("200") {
            Ok(())
        } else {
            Err(HealthError::Http(path, status_line))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .map_err(|_| HealthError::Timeout(PROBE_TIMEOUT))?
}

/// Which probe a binary's `--health` runs.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    Grpc,
    Http(&'static str),
}

/// Runs `probe` against the local port of `listen` on a small runtime and
/// ends the process: status 0 ready, 1 not (the reason on stderr).
pub fn exit_with(listen: &str, probe: Probe) -> ! {
    let result = local_address(listen).and_then(|address| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HealthError::Connect { address, source })?;
        runtime.block_on(async {
            match probe {
                Probe::Grpc => probe_grpc(address).await,
                Probe::Http(path) => probe_http(address, path).await,
            }
        })
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("not ready: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_targets_loopback_on_the_listen_port() {
        assert_eq!(
            local_address("0.0.0.0:50051").unwrap(),
            "127.0.0.1:50051".parse().unwrap()
        );
        assert_eq!(
            local_address("[::]:1217").unwrap(),
            "127.0.0.1:1217".parse().unwrap()
        );
        assert!(local_address("0.0.0.0:0").is_err());
        assert!(local_address("nonsense").is_err());
    }

    #[tokio::test]
    async fn nothing_listening_is_not_ready() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        assert!(probe_grpc(address).await.is_err());
        assert!(probe_http(address, "/readyz").await.is_err());
    }

    #[tokio::test]
    async fn an_http_probe_reads_the_status_line() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = socket.read(&mut buf).await.unwrap();
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        probe_http(address, "/readyz").await.unwrap();
        let err = probe_http(address, "/readyz").await.unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        serve.await.unwrap();
    }
}
