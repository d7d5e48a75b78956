//! What a gateway is configured with: the workspace of the fs channel, the
//! access policy, the limits, and the shutdown deadline, all as plain values
//! built by the binary from the configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openheim_access::{Principal, WorkspaceMode, Workspaces};
use openheim_acp::AcpOptions;
use openheim_config::Config;
use openheim_proto::tool_executor::v1::Workspace;

use crate::auth::{AccessPolicy, AuthTokens, HostPolicy};
use crate::error::GatewayError;
use crate::jwt::JwtVerifier;

/// Largest WebSocket message (and frame) accepted; larger ones close the
/// socket with 1009. Prompts carry base64 images, so it is generous. The
/// same cap as a line of `openheim acp` over stdio.
pub const DEFAULT_MAX_FRAME_BYTES: usize = openheim_acp::MAX_LINE_BYTES;
/// Largest HTTP request body accepted (REST takes no large bodies).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Open WebSocket connections at once (`server.max_connections`); more are
/// answered 503.
pub const DEFAULT_MAX_SOCKETS: usize = openheim_config::DEFAULT_MAX_CONNECTIONS;
/// A socket that sent nothing (not even a pong) for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the gateway pings each socket.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Messages queued for one socket before its producers wait.
pub const DEFAULT_SOCKET_QUEUE: usize = 256;
/// Bytes queued for one socket before its producers wait (a larger single
/// message waits for the whole budget).
pub const DEFAULT_SOCKET_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// How long a producer waits for room in a socket's queue, and a write for
/// the network, before the client is considered stuck and disconnected.
pub const DEFAULT_SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one REST request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long running turns may go on after a shutdown signal before their
/// sockets are closed (which cancels them).
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// Sessions per `/api/sessions` page when `limit` is not given, and the most.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// Bounds of the server's resources.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub max_sockets: usize,
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
    pub socket_queue: usize,
    pub socket_queue_bytes: usize,
    pub slow_client_timeout: Duration,
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers (the first request's
    /// included, counted from the connection).
    pub header_timeout: Duration,
    /// An HTTP connection with no request in flight is closed after this.
    pub http_idle_timeout: Duration,
    /// Connections one address may have open before their first request.
    pub max_pending_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_sockets: DEFAULT_MAX_SOCKETS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            socket_queue: DEFAULT_SOCKET_QUEUE,
            socket_queue_bytes: DEFAULT_SOCKET_QUEUE_BYTES,
            slow_client_timeout: DEFAULT_SLOW_CLIENT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_timeout: Duration::from_secs(openheim_config::DEFAULT_HEADER_TIMEOUT_SECS),
            http_idle_timeout: Duration::from_secs(openheim_config::DEFAULT_IDLE_TIMEOUT_SECS),
            max_pending_per_ip: openheim_config::DEFAULT_MAX_PENDING_PER_IP,
        }
    }
}

/// Everything a gateway needs besides its backends.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Workspace of the fs channel and of `/api/tools` (an absolute path
    /// the tool-executor accepts; `""` = the executor's own root).
    pub work_dir: String,
    /// How `work_dir` is divided between users (`server.workspaces`): the
    /// fs channel and `/api/tools` of a user work in their directory.
    pub workspace_mode: WorkspaceMode,
    pub allow_shell: bool,
    pub access: AccessPolicy,
    pub limits: Limits,
    pub shutdown_deadline: Duration,
    /// Settings of every ACP connection (`/acp`, the `/ws` agent channel).
    pub acp: AcpOptions,
    /// `GET /api/config`: the configuration with every secret redacted.
    pub config_view: serde_json::Value,
    pub default_skills: Vec<String>,
}

impl GatewayOptions {
    /// The workspace `principal`'s fs channel and `/api/tools` work in:
    /// `work_dir` when it is shared (or the executor's own root), else the
    /// user's directory under it, which tool-executor creates (0700) on
    /// first use and holds every path to. The gateway may not see the
    /// volume, so the path is made from `work_dir` as configured.
    pub fn workspace_of(
        &self,
        principal: &Principal,
    ) -> Result<Workspace, openheim_access::WorkspaceError> {
        let shared = Workspace {
            root: self.work_dir.clone(),
            allow_shell: self.allow_shell,
            boundary: String::new(),
            create: false,
        };
        if self.work_dir.is_empty() || self.workspace_mode == WorkspaceMode::Shared {
            return Ok(shared);
        }
        let spaces = Workspaces::new(
            self.work_dir.clone().into(),
            self.workspace_mode,
            Vec::new(),
        );
        let dir = spaces.user_dir(principal)?.display().to_string();
        Ok(Workspace {
            root: dir.clone(),
            boundary: dir,
            create: true,
            ..shared
        })
    }

    /// Options for a deployment configured by `config`, with default limits.
    pub fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let oidc = match &config.server.oidc {
            Some(oidc) => Some(Arc::new(JwtVerifier::new(oidc)?)),
            None => None,
        };
        Ok(Self {
            work_dir: config
                .work_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            workspace_mode: config.server.workspace_mode(),
            allow_shell: config.allow_shell,
            access: AccessPolicy {
                tokens: AuthTokens::from_config(&config.server),
                oidc,
                allowed_origins: config.server.allowed_origins.clone(),
                hosts: HostPolicy::new(&config.server.allowed_hosts),
            },
            limits: Limits {
                max_sockets: config.server.max_connections,
                header_timeout: Duration::from_secs(config.server.header_timeout_secs),
                http_idle_timeout: Duration::from_secs(config.server.idle_timeout_secs),
                max_pending_per_ip: config.server.max_pending_per_ip,
                ..Limits::default()
            },
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            // A remote client's stdio MCP server would be a command on this
            // machine: only when the operator allows it.
            acp: AcpOptions {
                client_stdio_mcp: config.server.allow_client_stdio_mcp,
                ..AcpOptions::from_config(config)
            },
            config_view: crate::rest::config::redacted(config),
            default_skills: config.default_skills.clone(),
        })
    }

    /// Refuses to expose an unauthenticated gateway: a non-loopback `addr`
    /// needs at least one token.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), GatewayError> {
        if addr.ip().is_loopback() || !self.access.is_open() {
            Ok(())
        } else {
            Err(GatewayError::Unprotected(addr))
        }
    }
}

/// The address to listen on from `host` and `port`: an IP address, or
/// `localhost`.
pub fn listen_address(host: &str, port: u16) -> Result<SocketAddr, BadHost> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| BadHost(host.to_owned()))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// `server.host` is neither an IP address nor `localhost`.
#[derive(Debug, thiserror::Error)]
#[error("invalid host {0:?}: expected an IP address or localhost")]
pub struct BadHost(pub String);

#[cfg(test)]
mod tests {
    use openheim_config::Secret;

    use super::*;

    #[test]
    fn exposing_a_gateway_needs_a_token() {
        let mut config = Config::default();
        let open = GatewayOptions::from_config(&config).unwrap();
        let any = listen_address("0.0.0.0", 1217).unwrap();
        let local = listen_address("localhost", 0).unwrap();
        assert!(open.check_exposure(local).is_ok());
        assert!(open.check_exposure("[::1]:80".parse().unwrap()).is_ok());
        let refused = open.check_exposure(any).unwrap_err().to_string();
        assert!(refused.contains("server.auth_tokens"), "{refused}");
        config.server.auth_tokens = vec![Secret::new("t0ken")];
        assert!(
            GatewayOptions::from_config(&config)
                .unwrap()
                .check_exposure(any)
                .is_ok()
        );
    }

    #[test]
    fn hosts_are_ip_addresses_or_localhost() {
        assert_eq!(listen_address("::", 1).unwrap().to_string(), "[::]:1");
        assert_eq!(listen_address("[::1]", 2).unwrap().to_string(), "[::1]:2");
        assert!(listen_address("example.com", 1).is_err());
    }
}
