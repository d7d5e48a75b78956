//! The HTTP clients of the built-in providers: one for `https://`
//! endpoints, one for plain `http://` ones, each built when the first
//! provider that needs it is. Building the TLS client reads and parses the
//! system's trusted certificates, which was most of what starting an
//! in-process llm-proxy cost (docs/performance.md); a configuration whose
//! providers are all local plain-HTTP servers (Ollama, vLLM, a mock) never
//! pays for it. The plain client trusts no certificate and refuses a
//! redirect to `https://` with a message that says so, so it is never used
//! for TLS.

use std::sync::{Arc, OnceLock};

use crate::{CONNECT_TIMEOUT, LlmError, POOL_IDLE_TIMEOUT};

/// Redirects a provider request may follow (reqwest's default).
const MAX_REDIRECTS: usize = 10;

type Built = Result<reqwest::Client, String>;

/// The providers' clients; cheap to clone (shared pools).
#[derive(Clone, Default)]
pub struct HttpClients {
    tls: Arc<OnceLock<Built>>,
    plain: Arc<OnceLock<Built>>,
}

impl HttpClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client for endpoints of `scheme`, built on first use.
    pub(crate) fn for_scheme(&self, scheme: &str) -> Result<reqwest::Client, LlmError> {
        let https = scheme == "https";
        let slot = if https { &self.tls } else { &self.plain };
        slot.get_or_init(|| build(https).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| LlmError::config(format!("cannot start the HTTP client: {e}")))
    }
}

/// One client for every kind of endpoint (tests, benchmarks).
impl From<reqwest::Client> for HttpClients {
    fn from(client: reqwest::Client) -> Self {
        let clients = Self::default();
        let _ = clients.tls.set(Ok(client.clone()));
        let _ = clients.plain.set(Ok(client));
        clients
    }
}

fn build(https: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("openheim-llm-proxy/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true);
    if https {
        return builder.build();
    }
    builder
        .tls_certs_only(std::iter::empty())
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().scheme() == "https" {
                attempt.error(
                    "the provider redirects to https://: set its api_base to the https:// URL",
                )
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn plain_http_providers_never_build_the_tls_client() {
        let clients = HttpClients::new();
        clients.for_scheme("http").unwrap();
        assert!(clients.plain.get().is_some());
        assert!(
            clients.tls.get().is_none(),
            "the TLS client (and the system's certificates) was loaded"
        );
        clients.for_scheme("https").unwrap();
        assert!(clients.tls.get().is_some());
    }

    #[tokio::test]
    async fn the_plain_client_refuses_a_redirect_to_https() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let response = "HTTP/1.1 308 Permanent Redirect\r\n\
                            location: https://127.0.0.1:9/v1/chat/completions\r\n\
                            content-length: 0\r\n\r\n";
            socket.write_all(response.as_bytes()).await.unwrap();
        });
        let client = HttpClients::new().for_scheme("http").unwrap();
        let error = client.post(url).body("{}").send().await.unwrap_err();
        let chain = format!("{:?}", error_chain(&error));
        assert!(
            chain.contains("set its api_base to the https:// URL"),
            "{chain}"
        );
    }

    fn error_chain(error: &dyn std::error::Error) -> Vec<String> {
        let mut out = vec![error.to_string()];
        let mut source = error.source();
        while let Some(e) = source {
            out.push(e.to_string());
            source = e.source();
        }
        out
    }
}
