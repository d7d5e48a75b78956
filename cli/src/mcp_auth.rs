//! `openheim mcp login NAME` and `openheim mcp logout NAME`: the OAuth 2.1
//! sign-in of a configured Streamable HTTP MCP server (docs/mcp.md#oauth).
//! The flow itself lives in `openheim_mcp_broker::oauth`; this is its front:
//! the authorization URL goes to stdout on a line of its own (open it in a
//! browser), messages to stderr, and the tokens to the store the
//! configuration selects (`<data_dir>/mcp-auth/NAME.json`, or the Redis of
//! `[store] url` in a deployment), never to the terminal.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use openheim_mcp_broker::oauth::{self, ClientSettings, LoginOptions, TokenStore};

/// How long `login` waits for the browser by default.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

fn token_store(config: &openheim_config::Config) -> anyhow::Result<TokenStore> {
    TokenStore::from_config(config)
        .context("no data directory is configured and `[store] url` is not a Redis URL")
}

/// Signs in to server `name`; exit code 0 when tokens were stored.
pub async fn login(
    config: &openheim_config::Config,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<u8> {
    let server = config
        .mcp_servers
        .get(name)
        .with_context(|| format!("no MCP server `{name}` is configured ([mcp_servers.{name}])"))?;
    let url = server.url.clone().with_context(|| {
        format!("`{name}` is a stdio server: OAuth sign-in is for Streamable HTTP servers (`url`)")
    })?;
    let store = token_store(config)?;
    let options = LoginOptions {
        server: name.to_owned(),
        url,
        client: ClientSettings::from_config(server.oauth.as_ref()),
        store: store.clone(),
    };
    let pending = oauth::prepare_login(options).await?;
    eprintln!("Open this address in a browser to sign in to `{name}`:");
    // The address alone on stdout, for a script (or a test) to follow.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", pending.authorize_url)?;
    out.flush()?;
    drop(out);
    eprintln!(
        "Waiting for the answer on {} (up to {}s)…",
        pending.redirect_uri(),
        timeout.as_secs()
    );
    let tokens = pending.finish(timeout).await?;
    let words = oauth::describe(&store, name).unwrap_or_else(|| "oauth (signed in)".into());
    eprintln!(
        "Signed in to `{name}` at {}: {words}. Tokens are in {}.",
        tokens.issuer,
        store.location(name)?
    );
    Ok(0)
}

/// Forgets the tokens of server `name`.
pub async fn logout(config: &openheim_config::Config, name: &str) -> anyhow::Result<u8> {
    let store = token_store(config)?;
    if store.remove(name).await? {
        eprintln!("Signed out of `{name}`: removed {}.", store.location(name)?);
    } else {
        eprintln!("No sign-in stored for `{name}`.");
    }
    Ok(0)
}
