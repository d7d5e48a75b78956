//! Who may talk to the gateway: the host name it is addressed by (a
//! `Host` allow-list, against DNS rebinding), bearer tokens (compared in
//! constant time) and, for browsers, an origin allow-list. [`guard`] applies
//! them as a layer in front of every route but the health probes. The rules
//! are documented in `docs/security.md` and `docs/api.md`.
//!
//! This is the one place the gateway reads a secret: the configured tokens,
//! to compare what a client presents with them.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openheim_access::audit::{Event as AuditEvent, Record};
use openheim_access::{Principal, Role};
use openheim_config::{Secret, ServerConfig, UserRole};
use serde::Deserialize;

use crate::error::ApiError;
use crate::jwt::JwtVerifier;

/// The accepted static bearer tokens, each with the principal it stands
/// for. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct AuthTokens(Arc<Vec<(Secret, Principal)>>);

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthTokens({} configured)", self.0.len())
    }
}

impl AuthTokens {
    /// Tokens given as plain values (tests, embedders), each the local
    /// user; empty ones are ignored, since an empty token would be no
    /// protection.
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> Self {
        let tokens = tokens
            .into_iter()
            .filter(|t| !t.as_ref().is_empty())
            .map(|t| (Secret::new(t.as_ref()), Principal::local()))
            .collect();
        Self(Arc::new(tokens))
    }

    /// Tokens with the principal each stands for.
    pub fn with_principals(tokens: impl IntoIterator<Item = (Secret, Principal)>) -> Self {
        let tokens = tokens.into_iter().filter(|(t, _)| !t.is_empty()).collect();
        Self(Arc::new(tokens))
    }

    /// `server.auth_tokens` (the local user, an admin: a single-user setup
    /// keeps working as before) and each `[server.users.NAME]` token.
    pub fn from_config(server: &ServerConfig) -> Self {
        let shared = server
            .auth_tokens
            .iter()
            .map(|t| (t.clone(), Principal::local()));
        let users = server.users.iter().filter_map(|(name, user)| {
            let role = match user.role {
                UserRole::User => Role::User,
                UserRole::Admin => Role::Admin,
            };
            Some((user.token.clone()?, Principal::new(name, role)))
        });
        Self::with_principals(shared.chain(users))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `candidate` is one of the tokens.
    pub fn accepts(&self, candidate: &str) -> bool {
        self.principal(candidate).is_some()
    }

    /// The principal `candidate` stands for. Every token is compared, each
    /// in constant time, so the answer's timing says nothing about which
    /// token or how much of it matched.
    pub fn principal(&self, candidate: &str) -> Option<Principal> {
        // No short cut after the first match.
        let mut found = None;
        for (token, principal) in self.0.iter() {
            if token.matches(candidate) && found.is_none() {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

/// The host names the gateway answers to: what a client may put in `Host`
/// (and, with `http://` or `https://` before it, in `Origin`).
///
/// Accepted: loopback names and addresses (`localhost`, `*.localhost`,
/// `127.0.0.0/8`, `::1`) and other IP addresses — none of which a DNS
/// rebinding attack can give a page — and the configured names
/// (`server.allowed_hosts`: `name` for any port, or `name:port`). Any other
/// name is refused: a web page on a domain that resolves to this machine
/// cannot reach the API. In an `Origin` the port counts too: a page served
/// by another program on `localhost` is not the gateway's.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// The port the gateway listens on; `None` (not bound yet): any port.
    pub port: Option<u16>,
    /// Configured names, lowercase; `*` accepts every name.
    pub names: Vec<String>,
}

impl HostPolicy {
    pub fn new(names: &[String]) -> Self {
        Self {
            port: None,
            names: names
                .iter()
                .map(|n| n.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `authority` (`host[:port]`, from `Host`) names this gateway.
    /// The port of a loopback or IP name does not matter here (the
    /// gateway may sit behind a port mapping).
    pub fn allows(&self, authority: &str) -> bool {
        self.accepts(authority, false)
    }

    /// Whether `authority` (from an `Origin`) is the gateway's own origin:
    /// a loopback or IP name on the gateway's port, or a configured name.
    pub fn allows_origin(&self, authority: &str) -> bool {
        self.accepts(authority, true)
    }

    fn accepts(&self, authority: &str, same_port: bool) -> bool {
        let authority = authority.trim().to_ascii_lowercase();
        let Some((host, port)) = split_authority(&authority) else {
            return false;
        };
        let own_port = match (port, self.port) {
            _ if !same_port => true,
            (Some(given), Some(ours)) => given == ours,
            _ => true,
        };
        let unreboundable = host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<std::net::IpAddr>().is_ok();
        if unreboundable && own_port {
            return true;
        }
        self.names
            .iter()
            .any(|name| name == "*" || *name == authority || *name == host)
    }
}

/// `host[:port]` → (host, port); IPv6 literals keep no brackets. `None` when
/// it is no authority (a path, a user part, an empty host, a bad port).
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Some((host, Some(port.parse().ok()?))).filter(|(h, _)| !h.is_empty())
        }
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Authentication and origin policy of the gateway.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Empty, and no `oidc`: no token is asked for (only allowed on
    /// loopback binds), every request is the local user's.
    pub tokens: AuthTokens,
    /// JWTs of an OpenID Connect issuer, besides the static tokens.
    pub oidc: Option<Arc<JwtVerifier>>,
    /// Origins browsers may connect from besides the gateway's own
    /// (`scheme://host[:port]`, or `*` for any).
    pub allowed_origins: Vec<String>,
    /// The names the gateway is addressed by.
    pub hosts: HostPolicy,
    /// Requests per minute per user (`[server.limits]`); off by default.
    pub limiter: openheim_limits::Limiter,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// What the synchronous checks of a request conclude.
#[derive(Debug)]
pub enum Admission {
    /// Known by a static token (or no token is asked for).
    Principal(Principal),
    /// A JWT still to be verified.
    Jwt(String),
}

impl AccessPolicy {
    /// Whether any token is asked for.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.oidc.is_none()
    }

    /// Checks a request's host, its origin, then its token: the principal
    /// it is made by.
    pub async fn admit(&self, headers: &HeaderMap, uri: &Uri) -> Result<Principal, ApiError> {
        match (self.check(headers, uri)?, &self.oidc) {
            (Admission::Principal(principal), _) => Ok(principal),
            (Admission::Jwt(token), Some(oidc)) => oidc.verify(&token).await.map_err(|error| {
                tracing::debug!(%error, "bearer JWT refused");
                ApiError::Unauthorized
            }),
            (Admission::Jwt(_), None) => Err(ApiError::Unauthorized),
        }
    }

    /// Checks a request's host, its origin, then its token, as far as it
    /// can without verifying a JWT.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<Admission, ApiError> {
        // HTTP/2 carries the authority in the URI, HTTP/1.1 in `Host`.
        let host = headers
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("<not text>"))
            .or_else(|| uri.authority().map(|a| a.as_str()));
        match host {
            Some(host) if self.hosts.allows(host) => {}
            Some(host) => return Err(ApiError::HostNotAllowed(host.to_owned())),
            None => return Err(ApiError::HostNotAllowed(String::new())),
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("<not text>");
            if !self.origin_allowed(origin) {
                return Err(ApiError::OriginNotAllowed(origin.to_owned()));
            }
        }
        if self.is_open() {
            return Ok(Admission::Principal(Principal::local()));
        }
        let Some(token) = presented_token(headers, uri) else {
            return Err(ApiError::Unauthorized);
        };
        if let Some(principal) = self.tokens.principal(&token) {
            return Ok(Admission::Principal(principal));
        }
        if self.oidc.is_some() && token.split('.').count() == 3 {
            return Ok(Admission::Jwt(token));
        }
        Err(ApiError::Unauthorized)
    }

    /// Listed origins, and the gateway's own: `http(s)://` and a name the
    /// host policy accepts (never derived from the request's `Host`).
    /// Anything else is refused, so a web page elsewhere cannot drive a
    /// local agent through the browser.
    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        let listed = self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if listed {
            return true;
        }
        match origin.split_once("://") {
            Some((scheme, authority)) => {
                matches!(scheme, "http" | "https") && self.hosts.allows_origin(authority)
            }
            None => false,
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

/// The layer function: refuses requests the policy does not admit or a
/// user's requests-per-minute limit refuses, and gives the others their
/// [`Principal`] (a request extension). Failed logins, socket opens,
/// changes and refusals leave audit records.
pub async fn guard(
    State(policy): State<Arc<AccessPolicy>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let route = request.uri().path().to_owned();
    let principal = match policy.admit(request.headers(), request.uri()).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::debug!(uri = %route, %error, "request refused");
            if matches!(error, ApiError::Unauthorized) {
                Record::new("", AuditEvent::Login, "failed")
                    .ip(ip)
                    .detail(&route)
                    .emit();
            }
            return error.into_response();
        }
    };
    if let Err(refusal) = policy.limiter.request(&principal.user).await {
        Record::new(&principal.user, AuditEvent::LimitExceeded, "denied")
            .ip(ip)
            .detail(refusal.limit.name())
            .emit();
        return ApiError::LimitExceeded {
            limit: refusal.limit.name().to_owned(),
            retry_after_secs: refusal.retry_after_secs(),
            message: refusal.to_string(),
        }
        .into_response();
    }
    // A login is a socket opened or a request that changes something;
    // reads are too many to record one by one.
    let opens_socket = request.headers().contains_key(header::UPGRADE);
    if !policy.is_open() && (opens_socket || request.method() != Method::GET) {
        Record::new(&principal.user, AuditEvent::Login, "ok")
            .ip(ip)
            .detail(&route)
            .emit();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn policy(tokens: &[&str], origins: &[&str]) -> AccessPolicy {
        AccessPolicy {
            tokens: AuthTokens::new(tokens),
            oidc: None,
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            hosts: HostPolicy {
                port: Some(1217),
                names: vec!["openheim.example.com".to_owned()],
            },
            limiter: openheim_limits::Limiter::off(),
        }
    }

    /// Headers of a request addressed to the gateway on loopback.
    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_static("127.0.0.1:1217"));
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn code<T>(result: Result<T, ApiError>) -> &'static str {
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
        assert_eq!(code(p.check(&headers(&[]), &uri)), "unauthorized");
        let query: Uri = "/ws?x=1&token=beta-2".parse().unwrap();
        assert_eq!(code(p.check(&headers(&[]), &query)), "ok");
        let wrong: Uri = "/ws?token=gamma".parse().unwrap();
        assert_eq!(code(p.check(&headers(&[]), &wrong)), "unauthorized");
        let basic = headers(&[(header::AUTHORIZATION, "Basic alpha")]);
        assert_eq!(code(p.check(&basic, &uri)), "unauthorized");
    }

    #[test]
    fn no_tokens_means_no_token_asked() {
        let uri: Uri = "/api/config".parse().unwrap();
        assert_eq!(code(policy(&[], &[]).check(&headers(&[]), &uri)), "ok");
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
    fn only_names_a_page_cannot_rebind_or_configured_ones_address_the_gateway() {
        let hosts = policy(&[], &[]).hosts;
        for ok in [
            "127.0.0.1:1217",
            "localhost:1217",
            "LOCALHOST",
            "app.localhost:1217",
            "[::1]:1217",
            "10.1.2.3:1217",
            "openheim.example.com",
            "openheim.example.com:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        // Behind a port mapping the port differs; only the name matters.
        assert!(hosts.allows("127.0.0.1:8080"));
        assert!(!hosts.allows_origin("127.0.0.1:8080"));
        assert!(hosts.allows_origin("localhost:1217"));
        for refused in [
            "evil.example:1217",
            "evil.example",
            "localhost.evil.example:1217",
            "openheim.example.com.evil:1217",
            "",
            "user@127.0.0.1:1217",
            "127.0.0.1:notaport",
            "[::1",
        ] {
            assert!(!hosts.allows(refused), "{refused:?}");
        }
        let any = HostPolicy::new(&["*".to_owned()]);
        assert!(any.allows("evil.example:1"));
    }

    #[test]
    fn a_rebound_name_is_refused_even_when_origin_and_host_agree() {
        let p = policy(&[], &[]);
        let uri: Uri = "/api/config".parse().unwrap();
        let mut rebound = HeaderMap::new();
        rebound.insert(header::HOST, HeaderValue::from_static("evil.example:1217"));
        rebound.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example:1217"),
        );
        assert_eq!(code(p.check(&rebound, &uri)), "host_not_allowed");
        // The right Host does not make a foreign origin acceptable.
        let foreign = headers(&[(header::ORIGIN, "http://evil.example:1217")]);
        assert_eq!(code(p.check(&foreign, &uri)), "origin_not_allowed");
        let own = headers(&[(header::ORIGIN, "https://openheim.example.com")]);
        assert_eq!(code(p.check(&own, &uri)), "ok");
        let other_local_port = headers(&[(header::ORIGIN, "http://localhost:5173")]);
        assert_eq!(code(p.check(&other_local_port, &uri)), "origin_not_allowed");
        assert_eq!(code(p.check(&HeaderMap::new(), &uri)), "host_not_allowed");
    }

    #[test]
    fn the_origin_is_checked_before_the_token() {
        let p = policy(&["alpha"], &[]);
        let h = headers(&[(header::ORIGIN, "https://evil.example")]);
        let uri: Uri = "/ws?token=alpha".parse().unwrap();
        assert_eq!(code(p.check(&h, &uri)), "origin_not_allowed");
    }

    #[test]
    fn each_token_stands_for_its_user() {
        let mut server = ServerConfig {
            auth_tokens: vec![Secret::new("shared")],
            ..ServerConfig::default()
        };
        let user = |token: &str, role| openheim_config::UserConfig {
            token: Some(Secret::new(token)),
            role,
            ..Default::default()
        };
        server
            .users
            .insert("alice".into(), user("tok-a", UserRole::User));
        server
            .users
            .insert("root".into(), user("tok-r", UserRole::Admin));
        let tokens = AuthTokens::from_config(&server);
        assert_eq!(tokens.principal("shared"), Some(Principal::local()));
        assert_eq!(
            tokens.principal("tok-a"),
            Some(Principal::new("alice", Role::User))
        );
        assert_eq!(
            tokens.principal("tok-r"),
            Some(Principal::new("root", Role::Admin))
        );
        assert_eq!(tokens.principal("tok-"), None);
        let p = AccessPolicy {
            tokens,
            ..policy(&[], &[])
        };
        let uri: Uri = "/api/sessions".parse().unwrap();
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer tok-a")]);
        match p.check(&bearer, &uri) {
            Ok(Admission::Principal(who)) => assert_eq!(who.user, "alice"),
            other => panic!("{other:?}"),
        }
        // Without an issuer, a JWT-shaped token is just a wrong token.
        let jwt = headers(&[(header::AUTHORIZATION, "Bearer a.b.c")]);
        assert_eq!(code(p.check(&jwt, &uri)), "unauthorized");
        // Open: everyone is the local user.
        match policy(&[], &[]).check(&headers(&[]), &uri) {
            Ok(Admission::Principal(who)) => assert_eq!(who, Principal::local()),
            other => panic!("{other:?}"),
        }
    }
}
