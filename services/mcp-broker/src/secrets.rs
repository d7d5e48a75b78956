//! The one place mcp-broker reads secret configuration values: the HTTP
//! header values of configured MCP servers (typically `Authorization`), which
//! must go on the wire verbatim, and the secret of a configured OAuth client
//! (`[mcp_servers.NAME.oauth] client_secret`), sent to the token endpoint.
//! Everything downstream keeps them out of `Debug` output, logs and errors.

use openheim_config::{McpOAuthConfig, McpServerConfig};

/// The configured OAuth client secret, if any.
pub fn oauth_client_secret(oauth: &McpOAuthConfig) -> Option<String> {
    oauth.client_secret.as_ref().map(|s| s.expose().to_owned())
}

/// The configured headers of `server` as (name, value) pairs.
pub fn header_values(server: &McpServerConfig) -> Vec<(String, String)> {
    server
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use openheim_config::Secret;

    use super::*;

    #[test]
    fn values_are_read_verbatim() {
        let mut server = McpServerConfig::default();
        server
            .headers
            .insert("Authorization".into(), Secret::new("Bearer t0k3n"));
        assert_eq!(
            header_values(&server),
            [("Authorization".to_owned(), "Bearer t0k3n".to_owned())]
        );
    }
}
