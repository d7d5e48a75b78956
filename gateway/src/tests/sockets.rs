//! Sockets over a real listener: size limits, the socket limit, a client
//! that never reads, and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tonic::Code;

use super::fakes;
use crate::{Backends, GatewayError, GatewayOptions, serve};

const PATIENCE: Duration = Duration::from_secs(20);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), GatewayError>>,
}

async fn start(backends: Backends, options: GatewayOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(backends, options, listener, shutdown));
    Running { addr, stop, task }
}

fn backends(entries: usize) -> Backends {
    Backends {
        tool_executor: Some(fakes::tool_executor(entries)),
        ..Backends::agent_loop_only(fakes::failing(Code::Unavailable, "no agent"))
    }
}

async fn connect(addr: SocketAddr) -> Result<Client, WsError> {
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    Ok(client)
}

/// A client with a small receive buffer, so that not reading soon blocks
/// the server's writes (loopback buffers grow to tens of megabytes).
async fn connect_small(addr: SocketAddr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws");
    let (client, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    client
}

async fn send_fs(client: &mut Client, request: Value) {
    let frame = json!({"channel": "fs", "data": request}).to_string();
    client.send(Message::text(frame)).await.unwrap();
}

/// The next text frame as JSON, or the close code that ended the socket.
async fn next(client: &mut Client) -> Result<Value, Option<CloseCode>> {
    let next = tokio::time::timeout(PATIENCE, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    });
    next.await.expect("nothing from the server in time")
}

/// A list request answered on `client`.
async fn lists(client: &mut Client) {
    send_fs(client, json!({"action": "list", "id": "probe"})).await;
    loop {
        let reply = next(client).await.unwrap();
        if reply["data"]["id"] == "probe" {
            assert_eq!(reply["data"]["type"], "file_list", "{reply}");
            return;
        }
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_socket() {
    let mut options = fakes::options();
    options.limits.max_frame_bytes = 1024;
    let server = start(backends(3), options).await;
    let mut big = connect(server.addr).await.unwrap();
    let mut other = connect(server.addr).await.unwrap();
    big.send(Message::text("x".repeat(4096))).await.unwrap();
    assert_eq!(next(&mut big).await.unwrap_err(), Some(CloseCode::Size));
    lists(&mut other).await;
    // The fs channel's errors carry the request id.
    send_fs(
        &mut other,
        json!({"action": "read", "id": 9, "path": "../x"}),
    )
    .await;
    let reply = next(&mut other).await.unwrap();
    assert_eq!(reply["data"]["id"], 9);
    assert_eq!(reply["data"]["code"], "forbidden");
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn sockets_beyond_the_limit_are_refused() {
    let mut options = fakes::options();
    options.limits.max_sockets = 1;
    let server = start(backends(1), options).await;
    let mut first = connect(server.addr).await.unwrap();
    match connect(server.addr).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a second socket was accepted"),
    }
    lists(&mut first).await;
    drop(first);
    // The permit comes back when the socket ends.
    let again = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(client) = connect(server.addr).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut again = again.await.unwrap();
    lists(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_without_stalling_others() {
    let mut options = fakes::options();
    options.limits.socket_queue = 4;
    options.limits.socket_queue_bytes = 64 * 1024;
    options.limits.max_sockets = 2;
    // Listings of ~1 MB: a few fill the socket buffers of the idle client.
    let server = start(backends(10_000), options).await;
    let mut idle = connect_small(server.addr).await;
    let mut busy = connect(server.addr).await.unwrap();
    for i in 0..40 {
        send_fs(&mut idle, json!({"action": "list", "id": i})).await;
    }
    for _ in 0..3 {
        lists(&mut busy).await;
    }
    // The idle client is cut off, which frees its socket permit (the
    // limit is two): a new client gets in.
    let mut third = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(client) = connect(server.addr).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the idle client was never disconnected");
    lists(&mut third).await;
    lists(&mut busy).await;
    // Reading now drains what was sent before, then the stream ends.
    let mut replies = 0;
    while next(&mut idle).await.is_ok() {
        replies += 1;
    }
    assert!(replies < 40, "all {replies} replies were delivered");
}

#[tokio::test]
async fn shutdown_closes_idle_sockets_and_stops() {
    let server = start(backends(1), fakes::options()).await;
    let mut client = connect(server.addr).await.unwrap();
    lists(&mut client).await;
    let _ = server.stop.send(());
    assert_eq!(next(&mut client).await.unwrap_err(), Some(CloseCode::Away));
    let finished = tokio::time::timeout(PATIENCE, server.task).await;
    finished.expect("serve did not return").unwrap().unwrap();
    assert!(connect(server.addr).await.is_err());
}

/// A client still sending when the server closes its socket is not reset:
/// the server reads on until the client answers its close frame, so the
/// client's frames are taken, the close frame arrives and the connection
/// ends cleanly.
#[tokio::test]
async fn a_client_still_sending_when_the_server_closes_is_not_reset() {
    let server = start(backends(1), fakes::options()).await;
    let mut client = connect(server.addr).await.unwrap();
    lists(&mut client).await;
    let _ = server.stop.send(());
    // Not reading yet: the close frame waits while the client sends on.
    let mut refused = Vec::new();
    for i in 0..20 {
        let frame = json!({"channel": "fs", "data": {"action": "list", "id": i}});
        if let Err(error) = client.send(Message::text(frame.to_string())).await {
            refused.push(format!("frame {i}: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused.is_empty(), "{refused:?}");
    let close = loop {
        match next(&mut client).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert_eq!(close, Some(CloseCode::Away));
    // The client's answer went out; the server then ends the connection.
    let end = tokio::time::timeout(PATIENCE, client.next()).await.unwrap();
    assert!(
        matches!(end, None | Some(Err(WsError::ConnectionClosed))),
        "{end:?}"
    );
    let finished = tokio::time::timeout(PATIENCE, server.task).await;
    finished.expect("serve did not return").unwrap().unwrap();
}
