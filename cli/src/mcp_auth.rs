//! `openheim mcp login NAME` and `openheim mcp logout NAME`: the OAuth 2.1
//! sign-in of a configured Streamable HTTP MCP server (docs/mcp.md#oauth).
//! The flow itself lives in `openheim_mcp_broker::oauth`; this is its front:
//! the authorization URL goes to stdout on a line of its own (open it in a
//! browser), messages to stderr, and the tokens to
//! `<data_dir>/mcp-auth/NAME.json`, never to the terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use openheim_mcp_broker::oauth::{self, ClientSettings, LoginOptions};

/// How long `login` waits for the browser by default.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

fn auth_dir(config: &openheim_config::Config) -> anyhow::Result<PathBuf> {
    let data_dir = config
        .data_dir
        .as_deref()
        .context("no data directory is configured")?;
    Ok(openheim_mcp_broker::auth_dir(data_dir))
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
    let options = LoginOptions {
        server: name.to_owned(),
        url,
        client: ClientSettings::from_config(server.oauth.as_ref()),
        auth_dir: auth_dir(config)?,
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
    let file = oauth::token_file(&auth_dir(config)?, name)?;
    let words = oauth::describe(&file, name).unwrap_or_else(|| "oauth (signed in)".into());
    eprintln!(
        "Signed in to `{name}` at {}: {words}. Tokens are in {}.",
        tokens.issuer,
        file.display()
    );
    Ok(0)
}

/// Forgets the tokens of server `name`.
pub fn logout(config: &openheim_config::Config, name: &str) -> anyhow::Result<u8> {
    let file = oauth::token_file(&auth_dir(config)?, name)?;
    if oauth::remove_tokens(&file)? {
        eprintln!("Signed out of `{name}`: removed {}.", file.display());
    } else {
        eprintln!("No sign-in stored for `{name}`.");
    }
    Ok(0)
}
