//! `web_fetch` against a local axum server (127.0.0.1, port 0): refused
//! under the default policy — also by name (`localhost`) — and fetched only
//! when `web_fetch_allow_private` is set; redirects are re-checked hop by
//! hop; size caps, binary bodies and HTTP errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use openheim_proto::tool_executor::v1::ToolErrorKind;
use openheim_tool_executor::ToolExecutorConfig;
use serde_json::json;

use crate::support::{Harness, config, harness, harness_with, kind, raw};

const PAGE: &str = "<html><head><title>Docs</title><style>p{}</style></head>\
    <body><script>alert(1)</script><h1>Hello</h1><p>Some <b>bold</b> text.</p></body></html>";

/// A local web server counting the requests it received.
struct Site {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Site {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let redirect =
            |to: &'static str| move || async move { (StatusCode::FOUND, [(header::LOCATION, to)]) };
        let app = Router::new()
            .route("/page", get(|| async { Html(PAGE) }))
            .route(
                "/json",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"a\":1}") }),
            )
            .route("/to-page", get(redirect("/page")))
            .route(
                "/to-metadata",
                get(redirect("http://169.254.169.254/latest/meta-data/")),
            )
            .route("/to-file", get(redirect("file:///etc/passwd")))
            .route("/loop", get(redirect("/loop")))
            .route(
                "/binary",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "image/png")],
                        vec![0x89_u8, b'P', 0, 1],
                    )
                }),
            )
            .route(
                "/big",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/plain")],
                        "z".repeat(3 * 1024 * 1024),
                    )
                }),
            )
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such page") }),
            )
            .layer(from_fn_with_state(Arc::clone(&hits), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count(State(hits): State<Arc<AtomicUsize>>, request: Request, next: Next) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(request).await.into_response()
}

async fn fetch(h: &Harness, url: &str) -> openheim_proto::tool_executor::v1::ExecuteResponse {
    h.call("web_fetch", json!({"url": url})).await
}

fn allowing_private() -> Harness {
    harness_with(
        ToolExecutorConfig {
            web_fetch_allow_private: true,
            ..config()
        },
        Vec::new(),
    )
}

#[tokio::test]
async fn non_public_addresses_are_refused_before_connecting() {
    let site = Site::start().await;
    let h = harness();
    let port = site.addr.port();
    let cases = [
        (site.url("/page"), "127.0.0.1 is a loopback address"),
        (
            format!("http://localhost:{port}/page"),
            "localhost resolves to ",
        ),
        (
            format!("http://[::1]:{port}/page"),
            "::1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "a cloud metadata address",
        ),
        (
            "http://10.1.2.3/".to_owned(),
            "10.1.2.3 is a private address",
        ),
        (
            format!("http://2130706433:{port}/"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "file:///etc/passwd".to_owned(),
            "only http and https are fetched, not file",
        ),
    ];
    for (url, why) in cases {
        let resp = fetch(&h, &url).await;
        assert!(resp.is_error, "{url} was fetched");
        assert_eq!(
            kind(&resp),
            ToolErrorKind::OutsideWorkspace,
            "{url}: {}",
            resp.output
        );
        assert!(
            resp.output.starts_with("refused to fetch "),
            "{url}: {}",
            resp.output
        );
        assert!(resp.output.contains(why), "{url}: {}", resp.output);
    }
    assert_eq!(site.hits(), 0, "no request reached the server");
}

#[tokio::test]
async fn a_local_server_is_fetched_when_allowed() {
    let site = Site::start().await;
    let h = allowing_private();
    let page = fetch(&h, &site.url("/page")).await;
    assert!(!page.is_error, "{}", page.output);
    assert_eq!(
        page.output,
        format!(
            "URL: {}\n\nDocs\n\nHello\nSome bold text.",
            site.url("/page")
        )
    );
    assert_eq!(raw(&page)["status"], 200);
    let data = fetch(&h, &site.url("/json")).await;
    assert!(data.output.ends_with("\n\n{\"a\":1}"), "{}", data.output);
    let redirected = fetch(&h, &site.url("/to-page")).await;
    assert!(
        redirected
            .output
            .starts_with(&format!("URL: {}\n", site.url("/page"))),
        "{}",
        redirected.output
    );
    assert_eq!(site.hits(), 4);
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let site = Site::start().await;
    let h = allowing_private();
    let metadata = fetch(&h, &site.url("/to-metadata")).await;
    assert_eq!(
        kind(&metadata),
        ToolErrorKind::OutsideWorkspace,
        "{}",
        metadata.output
    );
    assert!(
        metadata
            .output
            .starts_with("refused to fetch http://169.254.169.254/latest/meta-data/: "),
        "{}",
        metadata.output
    );
    let file = fetch(&h, &site.url("/to-file")).await;
    assert_eq!(
        kind(&file),
        ToolErrorKind::OutsideWorkspace,
        "{}",
        file.output
    );
    let looping = fetch(&h, &site.url("/loop")).await;
    assert_eq!(kind(&looping), ToolErrorKind::Failed);
    assert!(
        looping.output.ends_with("more than 5 redirects"),
        "{}",
        looping.output
    );
    assert_eq!(site.hits(), 1 + 1 + 6, "the loop stops after 5 redirects");
}

#[tokio::test]
async fn bodies_are_capped_and_must_be_text() {
    let site = Site::start().await;
    let h = harness_with(
        ToolExecutorConfig {
            web_fetch_allow_private: true,
            max_result_bytes: 4 * 1024 * 1024,
            ..config()
        },
        Vec::new(),
    );
    let big = fetch(&h, &site.url("/big")).await;
    assert!(!big.is_error, "{}", &big.output[..200]);
    assert_eq!(raw(&big)["bytes"], 1024 * 1024);
    assert!(
        big.output
            .ends_with("z\n[… the page is longer than 1024 KiB; the rest was not fetched …]")
    );
    let binary = fetch(&h, &site.url("/binary")).await;
    assert!(
        binary.output.contains("is image/png (4 bytes), not text"),
        "{}",
        binary.output
    );
    let missing = fetch(&h, &site.url("/missing")).await;
    assert_eq!(kind(&missing), ToolErrorKind::Failed);
    assert!(
        missing
            .output
            .contains("answered HTTP 404 Not Found\nno such page"),
        "{}",
        missing.output
    );
}
