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
        oidc: None,
        allowed_origins: vec!["https://ok.example".to_owned()],
        hosts: crate::auth::HostPolicy::default(),
        limiter: openheim_limits::Limiter::off(),
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
    let unknown = "/api/sessions/00000000-0000-4000-8000-000000000000";
    let (status, body) = get(router_with(Code::NotFound), unknown, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "from agent-loop"}})
    );
    let (status, body) = get(router_with(Code::InvalidArgument), unknown, &[]).await;
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
        "/api/sessions/not-a-uuid",
        "/api/sessions/a%20b",
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

async fn search(router: &axum::Router, query: &str) -> (Vec<String>, Option<String>) {
    let (status, body) = get(router.clone(), &format!("/api/sessions?{query}"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let titles = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_owned())
        .collect();
    (titles, body["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn title_search_pages_across_agent_loop_pages_without_losing_a_match() {
    // 450 sessions over three agent-loop pages of 200; every 7th matches.
    let titles: Vec<String> = (0..450)
        .map(|i| match i % 7 {
            0 => format!("Fix the Parser #{i}"),
            _ => format!("other {i}"),
        })
        .collect();
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let (channel, fake) = fakes::sessions(&refs);
    let router = app(fakes::backends(channel), fakes::options());
    let expected: Vec<String> = titles
        .iter()
        .filter(|t| t.starts_with("Fix"))
        .cloned()
        .collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("q=%20pARSER&limit=10&cursor={c}"),
            None => "q=%20pARSER&limit=10".to_owned(),
        };
        let (page, next) = search(&router, &query).await;
        assert!(page.len() <= 10);
        seen.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every match once, newest first");

    // Without `q` the listing is unchanged; a search cursor is refused.
    let (plain, _) = search(&router, "limit=3").await;
    assert_eq!(plain, ["Fix the Parser #0", "other 1", "other 2"]);
    let (status, body) = get(router.clone(), "/api/sessions?q=x&cursor=nope", &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (none, next) = search(&router, "q=no%20such%20title").await;
    assert!(none.is_empty() && next.is_none());
    assert!(*fake.calls.lock().unwrap() > 3);
}

#[tokio::test]
async fn a_search_looks_at_a_bounded_number_of_sessions_per_request() {
    let titles: Vec<String> = (0..2500).map(|i| format!("s {i}")).collect();
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let (channel, fake) = fakes::sessions(&refs);
    let router = app(fakes::backends(channel), fakes::options());
    let (found, next) = search(&router, "q=nothing").await;
    assert!(found.is_empty());
    assert!(next.is_some(), "the search must say it can go on");
    assert_eq!(
        *fake.calls.lock().unwrap(),
        10,
        "2,000 sessions in pages of 200"
    );
    let (found, next) = search(&router, &format!("q=nothing&cursor={}", next.unwrap())).await;
    assert!(found.is_empty() && next.is_none());
}

#[tokio::test]
async fn a_wrong_method_gets_the_documented_error_shape() {
    let router = router_with(Code::Internal);
    for (method, uri) in [
        ("POST", "/api/sessions"),
        ("PUT", "/api/config"),
        (
            "DELETE",
            "/api/sessions/00000000-0000-4000-8000-000000000000",
        ),
        ("GET", "/api/memory/n1"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {uri}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(method),
            "{body}"
        );
    }
}
