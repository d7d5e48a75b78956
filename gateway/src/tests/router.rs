//! The router with `oneshot`: guards, error shapes, backend failures.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tonic::Code;
use tower::ServiceExt;

use super::fakes;
use crate::{AccessPolicy, AuthTokens, Backends, app};

/// GET `uri` addressed to the gateway on loopback (`Host: 127.0.0.1`)
/// unless `headers` names another host.
async fn get(router: axum::Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header(header::HOST, "127.0.0.1");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn router_with(agent_loop: Code) -> axum::Router {
    app(
        fakes::backends(fakes::failing(agent_loop, "from agent-loop")),
        fakes::options(),
    )
}

#[tokio::test]
async fn health_needs_no_token_and_everything_else_does() {
    let mut options = fakes::options();
    options.access = AccessPolicy {
        tokens: AuthTokens::new(["t1", "t2"]),
        allowed_origins: vec!["https://ok.example".to_owned()],
        hosts: crate::auth::HostPolicy::default(),
    };
    let backends = fakes::backends(fakes::failing(Code::NotFound, "gone"));
    let router = app(backends, options);
    let (status, body) = get(router.clone(), "/healthz", &[]).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = get(router.clone(), "/api/config", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = get(
        router.clone(),
        "/api/config",
        &[("authorization", "Bearer t3")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(
        router.clone(),
        "/api/config",
        &[("authorization", "Bearer t2")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sandbox"]["confinement"], "landlock");
    let evil = [
        ("authorization", "Bearer t1"),
        ("origin", "https://evil.example"),
    ];
    let (status, body) = get(router.clone(), "/api/config", &evil).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );
    let ok = [("origin", "https://ok.example")];
    assert_eq!(
        get(router, "/api/config?token=t1", &ok).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn backend_statuses_become_http_statuses() {
    let (status, body) = get(router_with(Code::NotFound), "/api/sessions/abc", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "from agent-loop"}})
    );
    let (status, body) = get(
        router_with(Code::InvalidArgument),
        "/api/sessions/a%20b",
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = get(router_with(Code::Unavailable), "/api/sessions", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["message"], "agent-loop: from agent-loop");
}

#[tokio::test]
async fn requests_are_checked_before_backends_are_called() {
    let router = router_with(Code::Internal);
    for uri in [
        "/api/sessions?limit=0",
        "/api/sessions?limit=201",
        "/api/sessions?limit=x",
    ] {
        let (status, body) = get(router.clone(), uri, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"]["code"], "invalid_request", "{uri}");
    }
    let (status, body) = get(router.clone(), "/api/nope", &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // A plain GET on a socket route is not an upgrade.
    let (status, body) = get(router.clone(), "/ws", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = get(router, "/api/models", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "backend_not_configured");
}

#[tokio::test]
async fn readiness_reports_each_configured_backend() {
    let (status, body) = get(router_with(Code::Unavailable), "/readyz", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "unavailable", "backends": {
            "agent-loop": "from agent-loop", "tool-executor": "ok"}})
    );
    let backends = Backends {
        tool_executor: Some(fakes::tool_executor(0)),
        ..Backends::agent_loop_only(fakes::tool_executor(0))
    };
    // A channel that is not an agent-loop answers "unimplemented".
    let (status, _) = get(app(backends, fakes::options()), "/readyz", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn large_bodies_are_refused() {
    let mut options = fakes::options();
    options.limits.max_body_bytes = 16;
    let router = app(
        fakes::backends(fakes::failing(Code::NotFound, "x")),
        options,
    );
    let request = Request::get("/api/sessions")
        .header(header::CONTENT_LENGTH, "1000")
        .body(Body::from(vec![b'x'; 1000]))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "too_large");
}
