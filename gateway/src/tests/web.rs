//! The embedded web app: served without a token while the API still needs
//! one, with its security headers, caching, compression and size budget.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use tonic::Code;
use tower::ServiceExt;

use super::fakes;
use crate::web::{CONTENT_SECURITY_POLICY, Encoding, accepts, assets};
use crate::{AccessPolicy, AuthTokens, app};

/// The first load (index, script, stylesheet) compressed, at most.
const FIRST_LOAD_BUDGET: usize = 200 * 1024;

fn guarded_router() -> axum::Router {
    let mut options = fakes::options();
    options.access = AccessPolicy {
        tokens: AuthTokens::new(["secret-token"]),
        oidc: None,
        allowed_origins: Vec::new(),
        hosts: crate::auth::HostPolicy::default(),
        limiter: openheim_limits::Limiter::off(),
    };
    app(
        fakes::backends(fakes::failing(Code::Unavailable, "down")),
        options,
    )
}

/// GET `uri` as a browser on loopback would (`Host: 127.0.0.1`).
async fn fetch(uri: &str, headers: &[(header::HeaderName, &str)]) -> (Response, Vec<u8>) {
    let mut request = Request::get(uri).header(header::HOST, "127.0.0.1");
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = guarded_router()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    (Response::from_parts(parts, Body::empty()), bytes.to_vec())
}

fn header(response: &Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn index_html() -> &'static str {
    let index = assets().iter().find(|a| a.path == "/index.html").unwrap();
    std::str::from_utf8(index.identity).unwrap()
}

/// The `src`/`href` of every script and stylesheet `index.html` loads.
fn first_load_paths() -> Vec<String> {
    let html = index_html();
    let mut paths = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            paths.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    paths
}

#[tokio::test]
async fn the_app_loads_without_a_token_while_the_api_needs_one() {
    let (response, body) = fetch("/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(body, index_html().as_bytes());
    assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
    assert_eq!(
        header(&response, header::CONTENT_SECURITY_POLICY),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&response, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header(&response, header::REFERRER_POLICY), "no-referrer");

    let (api, _) = fetch("/api/config", &[]).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let (unknown, _) = fetch("/no-such-page", &[]).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let (socket, _) = fetch("/ws", &[]).await;
    assert_eq!(socket.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_csp_allows_only_the_server_and_no_inline_code() {
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(
            CONTENT_SECURITY_POLICY.contains(directive),
            "{directive} missing"
        );
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    let html = index_html();
    assert!(!html.contains("<script>"), "inline script in index.html");
    assert!(!html.contains("<style"), "inline style in index.html");
    assert!(!html.contains(" style="), "style attribute in index.html");
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_compressed_as_the_browser_accepts() {
    let paths = first_load_paths();
    let script = paths.iter().find(|p| p.ends_with(".js")).unwrap();
    assert!(script.starts_with("/assets/"), "{script}");
    let asset = assets().iter().find(|a| a.path == script).unwrap();

    let (br, body) = fetch(
        script,
        &[(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(br.status(), StatusCode::OK);
    assert_eq!(header(&br, header::CONTENT_ENCODING), "br");
    assert_eq!(body, asset.brotli.unwrap());
    assert_eq!(
        header(&br, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&br, header::VARY), "Accept-Encoding");
    assert_eq!(
        header(&br, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );

    let (gz, body) = fetch(script, &[(header::ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(header(&gz, header::CONTENT_ENCODING), "gzip");
    assert_eq!(body, asset.gzip.unwrap());
    assert_eq!(&body[..2], &[0x1f, 0x8b], "not gzip");

    let (plain, body) = fetch(script, &[]).await;
    assert_eq!(header(&plain, header::CONTENT_ENCODING), "");
    assert_eq!(body, asset.identity);
}

#[tokio::test]
async fn an_unchanged_index_is_answered_not_modified() {
    let (first, _) = fetch("/", &[]).await;
    let etag = header(&first, header::ETAG).to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let (again, body) = fetch("/", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&again, header::ETAG), etag);
    let (changed, _) = fetch("/", &[(header::IF_NONE_MATCH, "W/\"0000\"")]).await;
    assert_eq!(changed.status(), StatusCode::OK);
}

#[test]
fn accept_encoding_is_read_with_q_values() {
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    };
    assert!(accepts(&with("gzip, br"), Encoding::Brotli));
    assert!(!accepts(&with("gzip, br;q=0"), Encoding::Brotli));
    assert!(accepts(&with("*"), Encoding::Brotli));
    assert!(!accepts(&with("*;q=0, gzip"), Encoding::Brotli));
    assert!(accepts(&with("*;q=0, gzip"), Encoding::Gzip));
    assert!(!accepts(&with("*;q=0"), Encoding::Identity));
    assert!(accepts(&with("gzip"), Encoding::Identity));
    assert!(!accepts(&HeaderMap::new(), Encoding::Gzip));
    assert!(accepts(&HeaderMap::new(), Encoding::Identity));
}

/// The budget of the first load: what a browser downloads before the app
/// runs, in the smallest encoding every browser accepts (gzip), and that
/// it names no other host.
#[test]
fn the_first_load_fits_the_budget_and_names_no_other_host() {
    let mut total = 0;
    let index = assets().iter().find(|a| a.path == "/index.html").unwrap();
    total += index.gzip.unwrap_or(index.identity).len();
    let paths = first_load_paths();
    assert!(paths.iter().any(|p| p.ends_with(".js")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with(".css")), "{paths:?}");
    for path in &paths {
        assert!(
            path.starts_with('/') && !path.starts_with("//"),
            "{path} is not on this server"
        );
        let asset = assets().iter().find(|a| a.path == path);
        let asset = asset.unwrap_or_else(|| panic!("{path} is not embedded"));
        total += asset.gzip.unwrap_or(asset.identity).len();
    }
    assert!(
        total <= FIRST_LOAD_BUDGET,
        "first load is {total} bytes compressed, budget {FIRST_LOAD_BUDGET}"
    );
    // The only absolute URLs in the bundle are XML namespace names (the
    // renderer's SVG and MathML namespaces), which are never fetched.
    const NAMESPACES: [&str; 3] = [
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1998/Math/MathML",
        "http://www.w3.org/1999/xhtml",
    ];
    for asset in assets() {
        let text = String::from_utf8_lossy(asset.identity);
        for scheme in ["http://", "https://", "//cdn", "wss://"] {
            for (at, _) in text.match_indices(scheme) {
                let rest = &text[at..];
                assert!(
                    NAMESPACES.iter().any(|ns| rest.starts_with(ns)),
                    "{} names another host: {}",
                    asset.path,
                    rest.chars().take(60).collect::<String>()
                );
            }
        }
    }
}
