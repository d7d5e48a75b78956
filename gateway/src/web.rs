//! The web app (docs/web.md): the built files of `gateway/web`, embedded at
//! compile time by `build.rs`, served at `/` without a token (they hold no
//! data; everything the app shows comes through the guarded API).
//!
//! Each answer carries the app's Content-Security-Policy and picks the
//! smallest precompressed variant the browser accepts. Hashed files under
//! `/assets/` never change, so they are cached for a year as immutable;
//! everything else (`index.html`, which names the current hashes) is
//! revalidated on every load with its entity tag.

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// One embedded file.
pub(crate) struct Asset {
    /// URL path, e.g. `/assets/index-3f9a.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub identity: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
    /// Fingerprint of `identity`, quoted.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Scripts, styles, fonts and images come from the gateway only; the
/// socket and API calls go to it only (`'self'` covers `ws:`/`wss:` of the
/// same host); no inline script or style, no plugins, no framing, no form
/// posts; and DOM sinks that parse HTML from strings are switched off
/// (Trusted Types with no policy), since the app never builds HTML from
/// text. `data:` images are prompts' attached images.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The app's routes: every embedded file at its path, `index.html` also at `/`.
pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| serve(asset, headers)),
        );
        if asset.path == "/index.html" {
            router = router.route("/", get(move |headers: HeaderMap| serve(asset, headers)));
        }
    }
    router
}

/// Every embedded file, for the size budget test.
#[cfg(test)]
pub(crate) fn assets() -> &'static [Asset] {
    ASSETS
}

/// The encodings a representation can be sent in, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

/// Whether `Accept-Encoding` admits `encoding` (a `q` above zero, by name
/// or through `*`). No header admits only identity.
pub(crate) fn accepts(headers: &HeaderMap, encoding: Encoding) -> bool {
    let Some(value) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return encoding == Encoding::Identity;
    };
    let mut named = None;
    let mut wildcard = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(encoding.token()) {
            named = Some(q > 0.0);
        } else if name == "*" {
            wildcard = Some(q > 0.0);
        }
    }
    // Identity stays acceptable unless refused by name or by `*;q=0`.
    named.or(wildcard).unwrap_or(encoding == Encoding::Identity)
}

/// Whether `If-None-Match` names this entity tag (weak comparison).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| {
            list.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag
            })
        })
}

async fn serve(asset: &'static Asset, headers: HeaderMap) -> Response {
    let cache = match asset.path.starts_with("/assets/") {
        true => IMMUTABLE,
        false => REVALIDATE,
    };
    let etag = format!("W/{}", asset.etag);
    let mut response = if not_modified(&headers, asset.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let (encoding, body) = match (asset.brotli, asset.gzip) {
            (Some(br), _) if accepts(&headers, Encoding::Brotli) => (Encoding::Brotli, br),
            (_, Some(gz)) if accepts(&headers, Encoding::Gzip) => (Encoding::Gzip, gz),
            _ => (Encoding::Identity, asset.identity),
        };
        let mut response = body.into_response();
        let out = response.headers_mut();
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if encoding != Encoding::Identity {
            out.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.token()),
            );
        }
        response
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    let security: [(HeaderName, &'static str); 7] = [
        (header::VARY, "Accept-Encoding"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in security {
        out.insert(name, HeaderValue::from_static(value));
    }
    response
}
