//! Finding where to sign in: the MCP server's `WWW-Authenticate` challenge,
//! its Protected Resource Metadata (RFC 9728) and its authorization
//! server's metadata (RFC 8414, or OpenID Connect discovery).

use serde::Deserialize;
use url::Url;

use super::{OAuthError, require_secure};

/// What a 401 from the MCP server said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
}

/// Reads `Bearer resource_metadata="…", scope="…"` (other schemes and
/// parameters are ignored); `None` without a Bearer challenge.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let trimmed = header.trim_start();
    let rest = trimmed
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("bearer"))
        .map(|_| &trimmed[6..])?;
    let mut challenge = Challenge::default();
    for (key, value) in parameters(rest) {
        match key.to_ascii_lowercase().as_str() {
            "resource_metadata" => challenge.resource_metadata = Some(value),
            "scope" => challenge.scope = Some(value),
            _ => {}
        }
    }
    Some(challenge)
}

/// `key=value` and `key="quoted value"` pairs separated by commas.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start_matches([' ', ',']);
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_owned();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (
                    quoted[..end].to_owned(),
                    quoted.get(end + 1..).unwrap_or(""),
                )
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        pairs.push((key, value));
        rest = next.trim_start_matches([' ', ',']);
    }
    pairs
}

/// RFC 9728 metadata of the MCP server.
#[derive(Debug, Deserialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// RFC 8414 metadata of the authorization server (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// Where the resource metadata may be: the challenge's URL, else the
/// well-known URL with the MCP endpoint's path, then at the root.
pub fn resource_metadata_urls(mcp_url: &Url, challenge: &Challenge) -> Vec<String> {
    if let Some(url) = &challenge.resource_metadata {
        return vec![url.clone()];
    }
    well_known(mcp_url, "oauth-protected-resource", true)
}

/// Where the authorization server's metadata may be (MCP authorization,
/// "Authorization Server Metadata Discovery"): OAuth, then OpenID Connect
/// with the path inserted, then OpenID Connect with the path appended.
pub fn server_metadata_urls(issuer: &Url) -> Vec<String> {
    let mut urls = well_known(issuer, "oauth-authorization-server", false);
    urls.extend(well_known(issuer, "openid-configuration", false));
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        urls.push(format!(
            "{}{path}/.well-known/openid-configuration",
            origin(issuer)
        ));
    }
    urls
}

/// `{origin}/.well-known/{name}{path}`, and with `root_too` the root form
/// after it.
fn well_known(url: &Url, name: &str, root_too: bool) -> Vec<String> {
    let path = url.path().trim_end_matches('/');
    let root = format!("{}/.well-known/{name}", origin(url));
    if path.is_empty() {
        vec![root]
    } else if root_too {
        vec![format!("{root}{path}"), root]
    } else {
        vec![format!("{root}{path}")]
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Fetches the first of `urls` that answers 200 with JSON of type `T`.
pub async fn fetch_first<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    what: &str,
    urls: &[String],
) -> Result<T, OAuthError> {
    let mut last = OAuthError::Metadata {
        what: what.to_owned(),
        reason: "nowhere to look".into(),
    };
    for url in urls {
        require_secure(url)?;
        let response = match http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                last = OAuthError::http(format!("fetching the {what}"), &e);
                continue;
            }
        };
        if !response.status().is_success() {
            last = OAuthError::Status {
                what: format!("fetching the {what} at {url}"),
                status: response.status().as_u16(),
                error: None,
            };
            continue;
        }
        return response
            .json::<T>()
            .await
            .map_err(|e| OAuthError::Metadata {
                what: format!("the {what} at {url}"),
                reason: e.to_string(),
            });
    }
    Err(last)
}

/// The authorization server's metadata, checked: PKCE S256 must be offered
/// (the MCP specification tells clients to refuse otherwise).
pub async fn server_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ServerMetadata, OAuthError> {
    let parsed = Url::parse(issuer).map_err(|e| OAuthError::Metadata {
        what: "the authorization server's address".into(),
        reason: e.to_string(),
    })?;
    let metadata: ServerMetadata = fetch_first(
        http,
        "authorization server metadata",
        &server_metadata_urls(&parsed),
    )
    .await?;
    check_issuer(issuer, &metadata)?;
    if !metadata
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
    {
        return Err(OAuthError::NoPkce {
            issuer: metadata.issuer,
        });
    }
    for endpoint in [&metadata.authorization_endpoint, &metadata.token_endpoint] {
        require_secure(endpoint)?;
    }
    Ok(metadata)
}

/// RFC 8414 3.3: the metadata's `issuer` must be the issuer it was fetched
/// for, or another server could pass its endpoints off as that one's. Only
/// a trailing `/` may differ (URL parsers add one to a bare origin).
fn check_issuer(expected: &str, metadata: &ServerMetadata) -> Result<(), OAuthError> {
    if expected.trim_end_matches('/') == metadata.issuer.trim_end_matches('/') {
        Ok(())
    } else {
        Err(OAuthError::IssuerMismatch {
            expected: openheim_config::redact_url(expected).into_owned(),
            found: openheim_config::redact_url(&metadata.issuer).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read() {
        let challenge = parse_challenge(
            r#"Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read files:write""#,
        );
        assert_eq!(
            challenge,
            Some(Challenge {
                resource_metadata: Some(
                    "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into()
                ),
                scope: Some("files:read files:write".into()),
            })
        );
        assert_eq!(parse_challenge("bearer"), Some(Challenge::default()));
        assert_eq!(parse_challenge(r#"Basic realm="x""#), None);
    }

    #[test]
    fn the_metadata_must_name_the_issuer_it_was_fetched_for() {
        let metadata = |issuer: &str| ServerMetadata {
            issuer: issuer.into(),
            authorization_endpoint: "https://as.example.com/authorize".into(),
            token_endpoint: "https://as.example.com/token".into(),
            registration_endpoint: None,
            code_challenge_methods_supported: vec!["S256".into()],
            scopes_supported: Vec::new(),
        };
        let expected = "https://as.example.com/tenant1";
        assert!(check_issuer(expected, &metadata(expected)).is_ok());
        assert!(
            check_issuer(
                "https://as.example.com",
                &metadata("https://as.example.com/")
            )
            .is_ok()
        );
        for other in [
            "https://evil.example.com/tenant1",
            "https://as.example.com/tenant2",
            "http://as.example.com/tenant1",
        ] {
            let error = check_issuer(expected, &metadata(other)).unwrap_err();
            assert!(
                matches!(error, OAuthError::IssuerMismatch { .. }),
                "{other}"
            );
            let text = error.to_string();
            assert!(text.contains(expected) && text.contains(other), "{text}");
        }
    }

    #[test]
    fn well_known_urls_follow_the_specification() {
        let mcp = Url::parse("https://mcp.example.com/public/mcp").unwrap();
        assert_eq!(
            resource_metadata_urls(&mcp, &Challenge::default()),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        let issuer = Url::parse("https://auth.example.com/tenant1").unwrap();
        assert_eq!(
            server_metadata_urls(&issuer),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let root = Url::parse("https://auth.example.com").unwrap();
        assert_eq!(
            server_metadata_urls(&root),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }
}
