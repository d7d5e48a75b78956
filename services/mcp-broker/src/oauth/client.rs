//! The HTTP client of an OAuth-signed-in MCP connection: rmcp's reqwest
//! client with the current access token on every request. A token about to
//! expire is refreshed before the request; a request the server refuses
//! with 401 gets a refreshed token and is sent once more. So a connection
//! outlives its access tokens without reconnecting. A 403
//! `insufficient_scope` fails the request with the missing scope and the
//! command that fixes it.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, SseError, StreamableHttpClient, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::{OAuthError, TokenSession};

type HttpError = StreamableHttpError<reqwest::Error>;

#[derive(Clone)]
pub struct OAuthHttpClient {
    inner: reqwest::Client,
    tokens: Arc<TokenSession>,
}

impl OAuthHttpClient {
    pub fn new(inner: reqwest::Client, tokens: Arc<TokenSession>) -> Self {
        Self { inner, tokens }
    }

    async fn bearer(&self) -> Result<String, HttpError> {
        self.tokens.bearer().await.map_err(sign_in_failed)
    }

    async fn after_rejection(&self, rejected: &str) -> Result<String, HttpError> {
        self.tokens
            .after_rejection(rejected)
            .await
            .map_err(sign_in_failed)
    }

    /// Sends a request (`send` with a bearer token) with the current token
    /// and, when the server refuses it, once more with a refreshed one.
    async fn with_token<T, F, Fut>(&self, send: F) -> Result<T, HttpError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let token = self.bearer().await?;
        let first = send(token.clone()).await;
        if !refused(&first) {
            return self.step_up(first).await;
        }
        let token = self.after_rejection(&token).await?;
        let second = send(token).await;
        self.step_up(second).await
    }
}

/// A token that could not be had or refreshed is a sign-in problem: the
/// broker reports the server as needing `openheim mcp login` (and warns
/// about that once; the reason is logged here at `debug`, since every
/// reconnect attempt would repeat it).
fn sign_in_failed(error: OAuthError) -> HttpError {
    tracing::debug!("MCP OAuth: {error}");
    StreamableHttpError::AuthRequired(AuthRequiredError::new(format!(
        "the stored sign-in is no longer usable: {error}"
    )))
}

impl OAuthHttpClient {
    /// A `403 insufficient_scope` in words the model and the user can act
    /// on (the missing scope and the command that fixes it); the scope is
    /// recorded for the next `openheim mcp login` to ask for.
    async fn step_up<T>(&self, result: Result<T, HttpError>) -> Result<T, HttpError> {
        let Err(StreamableHttpError::InsufficientScope(error)) = result else {
            return result;
        };
        // The server's words: only a plausible scope list is repeated.
        let scope = error
            .get_required_scope()
            .map(str::to_owned)
            .or_else(|| {
                super::discovery::parse_challenge(&error.www_authenticate_header)
                    .and_then(|c| c.scope)
            })
            .filter(|s| plausible_scope(s));
        let server = self.tokens.server();
        let needs = match &scope {
            Some(scope) => format!("the server needs the scope `{scope}`"),
            None => "the server needs a wider scope".to_owned(),
        };
        let message = format!("{needs}: run `openheim mcp login {server}`");
        tracing::warn!(server, "MCP OAuth: {message}");
        if let Some(scope) = &scope
            && let Err(e) = self.tokens.wants_scope(scope).await
        {
            tracing::debug!(server, "MCP OAuth: recording the wanted scope failed: {e}");
        }
        // Carried in the error's header field: its text is what the caller
        // shows (`insufficient scope: …`).
        Err(StreamableHttpError::InsufficientScope(
            InsufficientScopeError::new(message, scope),
        ))
    }
}

/// The longest scope list repeated from a server's 403.
const MAX_SCOPE: usize = 1024;

/// At most [`MAX_SCOPE`] bytes of scope tokens (RFC 6749 3.3: visible ASCII
/// but `"` and `\`) separated by spaces.
fn plausible_scope(scope: &str) -> bool {
    !scope.trim().is_empty()
        && scope.len() <= MAX_SCOPE
        && scope
            .bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
}

fn refused(result: &Result<impl Sized, HttpError>) -> bool {
    matches!(result, Err(StreamableHttpError::AuthRequired(_)))
}

impl StreamableHttpClient for OAuthHttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let limits = StreamableHttpResponseLimits::default();
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            None,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.with_token(|token| {
            self.inner.post_message_with_response_limits(
                Arc::clone(&uri),
                message.clone(),
                session_id.clone(),
                Some(token),
                custom_headers.clone(),
                limits,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        let token = self.bearer().await?;
        self.inner
            .delete_session(uri, session_id, Some(token), custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        let size = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            None,
            custom_headers,
            size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        self.with_token(|token| {
            self.inner.get_stream_with_max_sse_event_size(
                Arc::clone(&uri),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_scopes_are_repeated() {
        assert!(plausible_scope("mcp:tools mcp:admin"));
        assert!(plausible_scope("https://api.example.com/files.write"));
        for hostile in [
            "",
            "  ",
            "a\nb",
            "a\"b",
            "caf\u{e9}",
            &"x".repeat(MAX_SCOPE + 1),
        ] {
            assert!(!plausible_scope(hostile), "{hostile:?}");
        }
    }
}
