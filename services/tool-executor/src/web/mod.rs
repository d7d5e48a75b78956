//! `web_fetch`'s HTTP client: http/https only, non-public addresses refused
//! after DNS resolution, bounded in size and time, redirects followed by
//! hand so that every hop is checked again.
//!
//! DNS rebinding cannot swap the checked address: names are resolved by
//! [`GuardedResolver`], inside the connector, and the connection goes to
//! exactly the addresses it checked (there is no second lookup). Hosts
//! written as IP literals never reach a resolver, so they are checked
//! before each request. Proxies are disabled: a proxy would resolve names
//! on its own.

mod address;
pub mod html;

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, Response, Url};

pub use address::AddressPolicy;

use crate::error::ToolError;

/// Most body bytes read from one response.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Limit of one request, from connecting to the last body byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// A fetched page, reduced to text.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The final URL, after redirects.
    pub url: String,
    pub status: u16,
    pub content_type: String,
    pub text: String,
    /// Body bytes read.
    pub bytes: usize,
    /// The body was longer than [`MAX_BODY_BYTES`].
    pub truncated: bool,
}

/// Fetches pages under an [`AddressPolicy`]. The HTTP client is built on
/// first use and then shared.
#[derive(Debug)]
pub struct WebFetcher {
    policy: AddressPolicy,
    client: OnceLock<Result<Client, ClientUnavailable>>,
}

/// The HTTP client could not be built (kept, so each fetch reports it).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client is unavailable: {0}")]
struct ClientUnavailable(String);

impl WebFetcher {
    pub fn new(policy: AddressPolicy) -> Self {
        Self {
            policy,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&Client, ToolError> {
        let built = self.client.get_or_init(|| {
            Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(GuardedResolver {
                    policy: self.policy,
                })
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("openheim-web-fetch/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ClientUnavailable(chain(&e)))
        });
        built.as_ref().map_err(|e| ToolError::Failed(e.to_string()))
    }

    /// Fetches `url`, following up to [`MAX_REDIRECTS`] redirects.
    pub async fn fetch(&self, url: &str) -> Result<Page, ToolError> {
        let client = self.client()?;
        let mut url = parse_url(url)?;
        for _hop in 0..=MAX_REDIRECTS {
            self.check_literal_host(&url)?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| request_error(&url, &e))?;
            match redirect_target(&url, &response)? {
                Some(next) => url = next,
                None => return read_page(url, response).await,
            }
        }
        Err(ToolError::Failed(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Refuses a URL whose host is an IP literal outside the policy.
    fn check_literal_host(&self, url: &Url) -> Result<(), ToolError> {
        let Some(host) = url.host_str() else {
            return Err(ToolError::invalid_arguments(
                "web_fetch",
                "argument `url`: the URL has no host",
            ));
        };
        // The URL parser has already normalised IPv4 spellings such as
        // `0x7f.1`; IPv6 literals come in brackets.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return Ok(());
        };
        match self.policy.refusal(ip) {
            Some(what) => Err(ToolError::Blocked {
                url: url.to_string(),
                reason: format!("{ip} is a {what} address"),
            }),
            None => Ok(()),
        }
    }
}

/// An absolute http or https URL.
fn parse_url(raw: &str) -> Result<Url, ToolError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ToolError::invalid_arguments("web_fetch", format!("argument `url`: {e}")))?;
    check_scheme(&url)?;
    Ok(url)
}

fn check_scheme(url: &Url) -> Result<(), ToolError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ToolError::Blocked {
            url: url.to_string(),
            reason: format!("only http and https are fetched, not {other}"),
        }),
    }
}

/// Where a redirect response points, checked for its scheme; `None` when
/// `response` is not a redirect.
fn redirect_target(url: &Url, response: &Response) -> Result<Option<Url>, ToolError> {
    if !response.status().is_redirection() {
        return Ok(None);
    }
    let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
        return Ok(None);
    };
    let next = location
        .to_str()
        .ok()
        .and_then(|l| url.join(l).ok())
        .ok_or_else(|| ToolError::Failed(format!("{url}: redirect to an invalid location")))?;
    check_scheme(&next)?;
    Ok(Some(next))
}

/// Reads the body (up to [`MAX_BODY_BYTES`]) and reduces it to text.
async fn read_page(url: Url, mut response: Response) -> Result<Page, ToolError> {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| request_error(&url, &e))?
    {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let text = body_text(&url, &content_type, &body)?;
    if !status.is_success() {
        let excerpt: String = text.chars().take(500).collect();
        return Err(ToolError::Failed(format!(
            "{url} answered HTTP {status}\n{excerpt}"
        )));
    }
    Ok(Page {
        url: url.to_string(),
        status: status.as_u16(),
        content_type,
        text,
        bytes: body.len(),
        truncated,
    })
}

/// The body as text: HTML reduced, other text as is, binary refused.
fn body_text(url: &Url, content_type: &str, body: &[u8]) -> Result<String, ToolError> {
    let textual = [
        "text/",
        "json",
        "xml",
        "javascript",
        "yaml",
        "csv",
        "markdown",
    ];
    let is_html = content_type.contains("html");
    let is_text = is_html
        || textual.iter().any(|t| content_type.contains(t))
        || (content_type.is_empty() && !body[..body.len().min(1024)].contains(&0));
    if !is_text {
        return Err(ToolError::Failed(format!(
            "{url} is {content_type} ({} bytes), not text; web_fetch returns text only",
            body.len()
        )));
    }
    let text = String::from_utf8_lossy(body);
    Ok(if is_html {
        html::to_text(&text)
    } else {
        text.into_owned()
    })
}

/// The error for a failed request: a refused address when the resolver
/// refused it, else what went wrong, with its causes.
fn request_error(url: &Url, error: &reqwest::Error) -> ToolError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return ToolError::Blocked {
                url: url.to_string(),
                reason: refused.to_string(),
            };
        }
        source = e.source();
    }
    if error.is_timeout() {
        return ToolError::Failed(format!(
            "{url}: timed out (limit {} s)",
            FETCH_TIMEOUT.as_secs()
        ));
    }
    ToolError::Failed(format!("cannot fetch {url}: {}", chain(error)))
}

/// `error` and its sources, joined by `: `.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A name that resolved to an address outside the policy.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, a {what} address")]
struct Refused {
    host: String,
    ip: IpAddr,
    what: &'static str,
}

/// Resolves names with the system resolver and refuses them when any of
/// their addresses is outside the policy; the connection then uses exactly
/// the addresses returned here.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((ip, what)) = addrs
                .iter()
                .find_map(|a| policy.refusal(a.ip()).map(|what| (a.ip(), what)))
            {
                return Err(Box::new(Refused { host, ip, what }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(parse_url("https://example.com/a").is_ok());
        assert!(parse_url(" http://example.com ").is_ok());
        for bad in ["example.com", "/relative", ""] {
            let e = parse_url(bad).unwrap_err();
            assert_eq!(
                e.kind(),
                openheim_proto::tool_executor::v1::ToolErrorKind::InvalidArguments,
                "{bad}"
            );
        }
        for blocked in ["file:///etc/passwd", "ftp://example.com/", "gopher://x/"] {
            assert!(
                matches!(parse_url(blocked), Err(ToolError::Blocked { .. })),
                "{blocked}"
            );
        }
    }

    #[test]
    fn ip_literals_are_checked_before_connecting() {
        let fetcher = WebFetcher::new(AddressPolicy::PublicOnly);
        for url in [
            "http://127.0.0.1/",
            "http://[::1]:8080/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let parsed = parse_url(url).unwrap();
            assert!(
                matches!(
                    fetcher.check_literal_host(&parsed),
                    Err(ToolError::Blocked { .. })
                ),
                "{url}"
            );
        }
        let public = parse_url("http://93.184.215.14/").unwrap();
        assert!(fetcher.check_literal_host(&public).is_ok());
    }

    #[test]
    fn binary_bodies_are_refused_and_text_is_kept() {
        let url = parse_url("https://example.com/").unwrap();
        assert!(body_text(&url, "image/png", b"\x89PNG").is_err());
        assert!(body_text(&url, "", b"ab\0cd").is_err());
        assert_eq!(body_text(&url, "", b"plain").unwrap(), "plain");
        assert_eq!(
            body_text(&url, "application/json", b"{\"a\":1}").unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(
            body_text(&url, "text/html; charset=utf-8", b"<p>hi</p>").unwrap(),
            "hi"
        );
    }
}
