//! The container deployment: `serve` on a real socket (port 0), a remote
//! client, cancellation across HTTP/2 and graceful shutdown.

use openheim_proto::tool_executor::v1::ListToolsRequest;
use openheim_proto::tool_executor::v1::tool_executor_client::ToolExecutorClient;
use openheim_tool_executor::{ToolExecutorConfig, ToolExecutorError};

use crate::shell::dropping_the_call_kills_the_group;
use crate::support::{config, harness};

#[tokio::test]
async fn serves_over_tcp_until_shutdown() {
    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let confined = ToolExecutorConfig {
        allowed_root: Some(h.root.clone()),
        ..config()
    };
    let server = tokio::spawn(openheim_tool_executor::serve(confined, listener, async {
        let _ = stopped.await;
    }));
    let client = ToolExecutorClient::new(openheim_proto::transport::remote(&address).unwrap());

    let request = ListToolsRequest {
        workspace: Some(h.workspace(true)),
        read_only: false,
    };
    let tools = client
        .clone()
        .list_tools(request)
        .await
        .unwrap()
        .into_inner()
        .tools;
    assert_eq!(tools.len(), 7);
    dropping_the_call_kills_the_group(&h, client).await;

    stop.send(()).unwrap();
    let served = tokio::time::timeout(crate::support::PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn serve_refuses_a_missing_workspace_root() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = ToolExecutorConfig {
        allowed_root: Some("/definitely/not/here".into()),
        ..config()
    };
    let result = openheim_tool_executor::serve(bad, listener, std::future::pending()).await;
    assert!(
        matches!(result, Err(ToolExecutorError::InvalidRoot { .. })),
        "{result:?}"
    );
}
