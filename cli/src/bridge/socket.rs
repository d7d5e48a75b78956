//! The WebSocket to the remote `/acp` endpoint: which URLs are accepted,
//! the bearer token, TLS with the system's root certificates (rustls), and
//! the failures of opening it told apart (refused token, unreachable host,
//! TLS, another refusal).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openheim_config::Secret;
use openheim_config::redact::redact_url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, Uri, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, http};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::error::BridgeError;

/// An open WebSocket to the endpoint.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long opening the socket (TCP, TLS, upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The bearer token and the variable it was read from (named in errors).
#[derive(Debug, Clone)]
pub struct Token {
    pub var: String,
    pub value: Secret,
}

/// A checked `--connect` URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    uri: Uri,
    /// The URL as shown in messages (secrets redacted).
    shown: String,
    tls: bool,
}

impl Endpoint {
    /// `wss://…` anywhere, `ws://…` only to a loopback address: the
    /// token and the conversation are not sent in clear text over a network.
    pub fn parse(url: &str) -> Result<Self, BridgeError> {
        let invalid = |reason: &str| BridgeError::InvalidUrl {
            url: redact_url(url).into_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => {
                return Err(invalid(
                    "expected wss://HOST/acp (or ws:// to a loopback address)",
                ));
            }
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        if !tls && !is_loopback(host) {
            return Err(BridgeError::PlainTextRemote {
                host: host.to_owned(),
            });
        }
        Ok(Self {
            shown: redact_url(url).into_owned(),
            uri,
            tls,
        })
    }

    /// The URL as shown in messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let host = bare.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Opens sockets to one endpoint; the TLS settings are built once.
pub struct Connecter {
    endpoint: Endpoint,
    token: Option<Token>,
    tls: Option<Arc<rustls::ClientConfig>>,
    max_message: usize,
}

impl Connecter {
    pub fn new(
        endpoint: Endpoint,
        token: Option<Token>,
        max_message: usize,
    ) -> Result<Self, BridgeError> {
        let tls = match endpoint.tls {
            true => Some(tls_config()?),
            false => None,
        };
        Ok(Self {
            endpoint,
            token,
            tls,
            max_message,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens the WebSocket, with the token as `Authorization: Bearer`.
    pub async fn open(&self) -> Result<Socket, BridgeError> {
        let shown = self.endpoint.shown.clone();
        let mut request =
            (&self.endpoint.uri)
                .into_client_request()
                .map_err(|e| BridgeError::InvalidUrl {
                    url: shown.clone(),
                    reason: e.to_string(),
                })?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {}", token.value.expose()))
                .map_err(|_| BridgeError::InvalidUrl {
                    url: shown.clone(),
                    reason: format!("the token in ${} is not a valid header value", token.var),
                })?;
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message));
        let connector = self.tls.clone().map(Connector::Rustls);
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(error)) => Err(self.explain(error)),
            Err(_) => Err(BridgeError::Timeout {
                endpoint: shown,
                secs: CONNECT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// What a failed opening means to the user.
    fn explain(&self, error: WsError) -> BridgeError {
        let endpoint = self.endpoint.shown.clone();
        match error {
            WsError::Http(response) => {
                let status = response.status();
                if status == StatusCode::UNAUTHORIZED {
                    return match &self.token {
                        Some(token) => BridgeError::TokenRefused {
                            var: token.var.clone(),
                            status: status.as_u16(),
                            endpoint,
                        },
                        None => BridgeError::TokenRequired {
                            endpoint,
                            status: status.as_u16(),
                        },
                    };
                }
                let detail = response
                    .body()
                    .as_deref()
                    .and_then(error_message)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                BridgeError::Rejected {
                    endpoint,
                    status: status.as_u16(),
                    detail,
                }
            }
            WsError::Tls(e) => BridgeError::Tls {
                endpoint,
                reason: e.to_string(),
            },
            WsError::Io(e) if self.endpoint.tls && e.kind() == std::io::ErrorKind::InvalidData => {
                BridgeError::Tls {
                    endpoint,
                    reason: e.to_string(),
                }
            }
            other => BridgeError::Unreachable {
                endpoint,
                reason: other.to_string(),
            },
        }
    }
}

/// The `error.message` of a JSON error body (the gateway's shape), else
/// the body's text when it is short.
fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(message) = value["error"]["message"].as_str()
    {
        return Some(message.to_owned());
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty() && text.len() <= 200).then(|| text.to_owned())
}

/// rustls on the workspace's one crypto provider (aws-lc-rs), trusting
/// the system's root certificates.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, BridgeError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(BridgeError::Roots(match errors.is_empty() {
            true => "none found".to_owned(),
            false => errors.join("; "),
        }));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BridgeError::Roots(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_websockets_only_to_loopback() {
        for ok in [
            "ws://127.0.0.1:1217/acp",
            "ws://localhost/acp",
            "ws://[::1]:80/acp",
            "wss://openheim.example.com/acp",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            Endpoint::parse("ws://openheim.example.com/acp"),
            Err(BridgeError::PlainTextRemote { .. })
        ));
        assert!(matches!(
            Endpoint::parse("https://openheim.example.com/acp"),
            Err(BridgeError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn error_bodies_are_read_for_their_message() {
        let body = br#"{"error":{"code":"forbidden","message":"origin not allowed"}}"#;
        assert_eq!(error_message(body).as_deref(), Some("origin not allowed"));
        assert_eq!(error_message(b"  ").as_deref(), None);
    }
}
