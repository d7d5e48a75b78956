//! Where a session works on a server: its directory, and the directory
//! its tools, shell commands and stdio MCP servers are confined to, under
//! the rule of `openheim_access::Workspaces` (docs/security.md,
//! "Workspaces"). Without a workspace root (the local CLI, the TUI,
//! `openheim acp` over stdio) a session works where it is asked to, as
//! before.

use std::path::{Path, PathBuf};

use openheim_access::{Principal, Workspaces};
use openheim_proto::mcp_broker::v1::{ServerSpec, server_spec};
use openheim_proto::tool_executor::v1::Workspace;

use crate::AgentLoopConfig;
use crate::error::AgentError;
use crate::owner::{owner_caller, principal_of};
use crate::store::SessionMeta;

/// The server's workspaces (root canonical), when it has a root.
fn workspaces(config: &AgentLoopConfig) -> Option<Workspaces> {
    let root = config.workspace_root.as_ref()?;
    let real = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
    Some(openheim_config::workspaces_under(
        real,
        config.workspace_mode,
        &config.projects,
    ))
}

/// Where a new session works.
pub(crate) struct NewSessionDir {
    pub dir: PathBuf,
    /// On a server: the directory it is confined to, to be made (0700) by
    /// tool-executor when it does not exist yet; `None` for a local
    /// session or a directory the client named (which exists).
    pub to_prepare: Option<Workspace>,
}

/// The directory a new session `session_id` of `principal` works in.
/// `requested` is the client's `cwd` ("" = none); on a server the root
/// itself stands for the caller's own directory and anything outside their
/// directory and their projects is refused.
pub(crate) fn new_session_dir(
    config: &AgentLoopConfig,
    principal: &Principal,
    requested: &str,
    session_id: &str,
) -> Result<NewSessionDir, AgentError> {
    let not_a_dir = |dir: &Path| {
        AgentError::InvalidInput(format!(
            "work_dir {} is not an existing absolute directory",
            dir.display()
        ))
    };
    let Some(spaces) = workspaces(config) else {
        let dir = match requested {
            "" => config.default_work_dir.clone(),
            dir => PathBuf::from(dir),
        };
        if !(dir.is_absolute() && dir.is_dir()) {
            return Err(not_a_dir(&dir));
        }
        return Ok(NewSessionDir {
            dir,
            to_prepare: None,
        });
    };
    let requested = match requested {
        "" => None,
        dir => {
            let dir = Path::new(dir);
            let real = dir
                .is_absolute()
                .then(|| std::fs::canonicalize(dir).ok())
                .flatten()
                .filter(|real| real.is_dir())
                .ok_or_else(|| not_a_dir(dir))?;
            (real != spaces.root).then_some(real)
        }
    };
    let place = spaces
        .session_dir(principal, requested.as_deref(), session_id)
        .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
    let to_prepare = requested.is_none().then(|| Workspace {
        root: place.dir.display().to_string(),
        allow_shell: config.allow_shell,
        boundary: place.boundary.display().to_string(),
        create: true,
    });
    Ok(NewSessionDir {
        dir: place.dir,
        to_prepare,
    })
}

/// The directory the session `meta` is confined to on a server: its
/// owner's directory, or the project holding its work_dir while the owner
/// is a member; "" without a root. A session whose work_dir is no longer
/// its owner's (the configuration changed) is refused.
pub(crate) fn boundary(config: &AgentLoopConfig, meta: &SessionMeta) -> Result<String, AgentError> {
    let Some(spaces) = workspaces(config) else {
        return Ok(String::new());
    };
    let owner = principal_of(Some(&owner_caller(&meta.owner)));
    // The stored work_dir was canonical when the session was made; it is
    // compared as written, and tool-executor checks what it resolves to now.
    spaces
        .boundary_of(&owner, Path::new(&meta.work_dir))
        .map(|dir| dir.display().to_string())
        .ok_or_else(|| {
            AgentError::InvalidInput(format!(
                "work_dir {} is outside this server's workspaces of {}",
                meta.work_dir, owner.user
            ))
        })
}

/// The workspace tool calls of session `meta` run in.
pub(crate) fn of_session(
    config: &AgentLoopConfig,
    meta: &SessionMeta,
) -> Result<Workspace, AgentError> {
    Ok(Workspace {
        root: meta.work_dir.clone(),
        allow_shell: config.allow_shell,
        boundary: boundary(config, meta)?,
        create: false,
    })
}

/// A session's own stdio MCP servers on a server start in its work_dir
/// (their `cwd` and their Landlock confinement): no `cwd`, or the root
/// (which stands for the caller's own directory, as for sessions), is the
/// session's work_dir; any other must lie inside the session's boundary.
pub(crate) fn confine_servers(
    config: &AgentLoopConfig,
    meta: &SessionMeta,
    mut servers: Vec<ServerSpec>,
) -> Result<Vec<ServerSpec>, AgentError> {
    let Some(spaces) = workspaces(config).filter(|_| !servers.is_empty()) else {
        return Ok(servers);
    };
    let fence = PathBuf::from(boundary(config, meta)?);
    for server in &mut servers {
        let Some(server_spec::Transport::Stdio(stdio)) = &mut server.transport else {
            continue;
        };
        // The broker hides the other users' directories from the process.
        stdio.boundary = fence.display().to_string();
        stdio.workspace_root = spaces.root.display().to_string();
        let real = std::fs::canonicalize(&stdio.cwd).ok();
        if stdio.cwd.is_empty() || real.as_ref() == Some(&spaces.root) {
            stdio.cwd = meta.work_dir.clone();
            continue;
        }
        let inside = real.is_some_and(|real| openheim_access::workspace::is_within(&real, &fence));
        if !inside {
            return Err(AgentError::InvalidInput(format!(
                "MCP server {}: cwd {} is outside the session's workspace {}",
                server.name,
                stdio.cwd,
                fence.display()
            )));
        }
    }
    Ok(servers)
}
