//! Who may talk to the gateway: bearer tokens (compared in constant time)
//! and, for browsers, an origin allow-list. [`guard`] applies both as a
//! layer in front of every route but the health probes.
//!
//! This is the one place the gateway reads a secret: the configured tokens,
//! to compare what a client presents with them.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openheim_config::Secret;
use openheim_config::ServerConfig;
use serde::Deserialize;

use crate::error::ApiError;

/// The accepted bearer tokens. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct AuthTokens(Arc<Vec<Secret>>);

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthTokens({} configured)", self.0.len())
    }
}

impl AuthTokens {
    /// Tokens given as plain values (tests, embedders); empty ones are
    /// ignored, since an empty token would be no protection.
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> Self {
        let tokens = tokens
            .into_iter()
            .filter(|t| !t.as_ref().is_empty())
            .map(|t| Secret::new(t.as_ref()))
            .collect();
        Self(Arc::new(tokens))
    }

    /// `server.auth_tokens` of the configuration.
    pub fn from_config(server: &ServerConfig) -> Self {
        let tokens = server.auth_tokens.iter().filter(|t| !t.is_empty()).cloned();
        Self(Arc::new(tokens.collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `candidate` is one of the tokens. Every token is compared,
    /// each in constant time, so the answer's timing says nothing about
    /// which token or how much of it matched.
    pub fn accepts(&self, candidate: &str) -> bool {
        // `fold` with `|`, not `any`: no short cut after the first match.
        self.0
            .iter()
            .fold(false, |matched, token| matched | token.matches(candidate))
    }
}

/// Authentication and origin policy of the gateway.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Empty: no token is asked for (only allowed on loopback binds).
    pub tokens: AuthTokens,
    /// Origins browsers may connect from besides the gateway's own
    /// (`scheme://host[:port]`, or `*` for any).
    pub allowed_origins: Vec<String>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl AccessPolicy {
    /// Checks a request's origin, then its token.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("<not text>");
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            if !self.origin_allowed(origin, host) {
                return Err(ApiError::OriginNotAllowed(origin.to_owned()));
            }
        }
        if self.tokens.is_empty() {
            return Ok(());
        }
        match presented_token(headers, uri) {
            Some(token) if self.tokens.accepts(&token) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// Listed origins, and the gateway's own (the origin's authority equals
    /// the `Host` the browser connected to). Anything else is refused, so a
    /// web page elsewhere cannot drive a local agent through the browser.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        let listed = self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if listed {
            return true;
        }
        match (origin.split_once("://"), host) {
            (Some((scheme, authority)), Some(host)) => {
                matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
            }
            _ => false,
        }
    }
}

/// `Authorization: Bearer T`, else `?token=T` (browsers cannot set headers
/// on a WebSocket).
fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| Query::<TokenQuery>::try_from_uri(uri).ok()?.0.token)
}

/// The layer function: refuses requests the policy does not admit.
pub async fn guard(
    State(policy): State<Arc<AccessPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::debug!(uri = %request.uri().path(), %error, "request refused");
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn policy(tokens: &[&str], origins: &[&str]) -> AccessPolicy {
        AccessPolicy {
            tokens: AuthTokens::new(tokens),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        result.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn several_tokens_in_header_or_query() {
        let p = policy(&["alpha", "beta-2"], &[]);
        let uri: Uri = "/api/config".parse().unwrap();
        let bearer = |t: &str| headers(&[(header::AUTHORIZATION, &format!("Bearer {t}"))]);
        assert_eq!(code(p.check(&bearer("alpha"), &uri)), "ok");
        assert_eq!(code(p.check(&bearer("beta-2"), &uri)), "ok");
        assert_eq!(code(p.check(&bearer("alph"), &uri)), "unauthorized");
        assert_eq!(code(p.check(&bearer(""), &uri)), "unauthorized");
        assert_eq!(code(p.check(&HeaderMap::new(), &uri)), "unauthorized");
        let query: Uri = "/ws?x=1&token=beta-2".parse().unwrap();
        assert_eq!(code(p.check(&HeaderMap::new(), &query)), "ok");
        let wrong: Uri = "/ws?token=gamma".parse().unwrap();
        assert_eq!(code(p.check(&HeaderMap::new(), &wrong)), "unauthorized");
        let basic = headers(&[(header::AUTHORIZATION, "Basic alpha")]);
        assert_eq!(code(p.check(&basic, &uri)), "unauthorized");
    }

    #[test]
    fn no_tokens_means_no_token_asked() {
        let uri: Uri = "/api/config".parse().unwrap();
        assert_eq!(code(policy(&[], &[]).check(&HeaderMap::new(), &uri)), "ok");
        assert!(AuthTokens::new([""]).is_empty());
        assert_eq!(
            format!("{:?}", AuthTokens::new(["s3cret"])),
            "AuthTokens(1 configured)"
        );
    }

    #[test]
    fn browsers_need_an_allowed_or_the_same_origin() {
        let p = policy(&[], &["https://app.example.com/"]);
        let uri: Uri = "/ws".parse().unwrap();
        let from =
            |origin: &str| headers(&[(header::ORIGIN, origin), (header::HOST, "127.0.0.1:1217")]);
        assert_eq!(code(p.check(&from("https://app.example.com"), &uri)), "ok");
        assert_eq!(code(p.check(&from("http://127.0.0.1:1217"), &uri)), "ok");
        assert_eq!(
            code(p.check(&from("https://evil.example"), &uri)),
            "origin_not_allowed"
        );
        assert_eq!(code(p.check(&from("null"), &uri)), "origin_not_allowed");
        let any = policy(&[], &["*"]);
        assert_eq!(code(any.check(&from("https://evil.example"), &uri)), "ok");
    }

    #[test]
    fn the_origin_is_checked_before_the_token() {
        let p = policy(&["alpha"], &[]);
        let h = headers(&[(header::ORIGIN, "https://evil.example")]);
        let uri: Uri = "/ws?token=alpha".parse().unwrap();
        assert_eq!(code(p.check(&h, &uri)), "origin_not_allowed");
    }
}
