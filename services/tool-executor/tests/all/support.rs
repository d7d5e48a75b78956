//! Shared fixtures: a workspace next to an "outside" directory, a client
//! connected in process, and bounded waits for processes to disappear.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openheim_proto::GrpcChannel;
use openheim_proto::common::v1::ToolCall;
use openheim_proto::tool_executor::v1::tool_executor_client::ToolExecutorClient;
use openheim_proto::tool_executor::v1::{
    ExecuteRequest, ExecuteResponse, GetSandboxInfoRequest, SandboxInfo, ToolErrorKind, Workspace,
};
use openheim_tool_executor::{ToolExecutorConfig, ToolHandler};

pub type Client = ToolExecutorClient<GrpcChannel>;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Harness {
    /// Holds the workspace and "outside"; removed when the test ends.
    pub dir: tempfile::TempDir,
    /// The canonical workspace root.
    pub root: PathBuf,
    /// A sibling of the workspace holding `secret.txt`; must never change.
    pub outside: PathBuf,
    pub client: Client,
}

pub fn config() -> ToolExecutorConfig {
    ToolExecutorConfig {
        allowed_root: None,
        shell_timeout: Duration::from_secs(30),
        max_result_bytes: 64 * 1024,
        // What a binary hands on: the environment it was started with.
        child_env: std::env::vars().collect(),
        ..ToolExecutorConfig::default()
    }
}

pub fn harness() -> Harness {
    harness_with(config(), Vec::new())
}

/// A scratch directory that is NOT inside the temp directories confined
/// commands may write to (/tmp, /var/tmp, /dev/shm): the workspace's parent
/// and "outside" must be places they cannot write. The target dir is used
/// unless the checkout itself lives under a temp dir (CI clones into /tmp),
/// then `$HOME/.cache/openheim-tests`.
pub fn scratch_dir() -> tempfile::TempDir {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let under_temp = openheim_tool_executor::confinement::TEMP_DIRS
        .iter()
        .any(|t| target.starts_with(t));
    let base = if under_temp {
        let home = std::env::var_os("HOME").expect("HOME is set");
        let base = std::path::Path::new(&home).join(".cache/openheim-tests");
        std::fs::create_dir_all(&base).unwrap();
        base
    } else {
        target.to_path_buf()
    };
    tempfile::tempdir_in(base).unwrap()
}

pub fn harness_with(config: ToolExecutorConfig, custom: Vec<Arc<dyn ToolHandler>>) -> Harness {
    let dir = scratch_dir();
    let root = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    let outside = std::fs::canonicalize(outside).unwrap();
    let client = ToolExecutorClient::new(openheim_tool_executor::in_process(config, custom));
    Harness {
        dir,
        root,
        outside,
        client,
    }
}

impl Harness {
    pub fn workspace(&self, allow_shell: bool) -> Workspace {
        Workspace {
            root: self.root.display().to_string(),
            allow_shell,
            ..Workspace::default()
        }
    }

    /// Calls `tool` with the shell allowed.
    pub async fn call(&self, tool: &str, args: serde_json::Value) -> ExecuteResponse {
        self.call_with(true, tool, args).await
    }

    pub async fn call_with(
        &self,
        allow_shell: bool,
        tool: &str,
        args: serde_json::Value,
    ) -> ExecuteResponse {
        let request = execute_request(self.workspace(allow_shell), tool, &args);
        self.client
            .clone()
            .execute(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Names and contents of everything in the outside directory.
    pub fn outside_snapshot(&self) -> Vec<(String, String)> {
        let mut entries: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let content = std::fs::read_to_string(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), content)
            })
            .collect();
        entries.sort();
        entries
    }

    /// Runs a shell command and returns the response.
    pub async fn shell(&self, command: &str) -> ExecuteResponse {
        self.call("execute_command", serde_json::json!({"command": command}))
            .await
    }

    /// The executor's sandbox report.
    pub async fn sandbox_info(&self) -> SandboxInfo {
        self.client
            .clone()
            .get_sandbox_info(GetSandboxInfoRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    pub fn assert_outside_untouched(&self) {
        assert_eq!(
            self.outside_snapshot(),
            [("secret.txt".to_owned(), "secret".to_owned())]
        );
    }
}

pub fn execute_request(
    workspace: Workspace,
    tool: &str,
    args: &serde_json::Value,
) -> ExecuteRequest {
    ExecuteRequest {
        workspace: Some(workspace),
        call: Some(ToolCall {
            id: "call-1".to_owned(),
            name: tool.to_owned(),
            arguments_json: args.to_string(),
        }),
        timeout_secs: 0,
    }
}

pub fn kind(response: &ExecuteResponse) -> ToolErrorKind {
    ToolErrorKind::try_from(response.error_kind).unwrap()
}

pub fn raw(response: &ExecuteResponse) -> serde_json::Value {
    serde_json::from_str(&response.raw_output_json).unwrap()
}

/// Whether shell commands run confined here; prints why not when they do
/// not, so a skipped check is visible in the test output.
pub async fn confined(h: &Harness, test: &str) -> bool {
    let info = h.sandbox_info().await;
    if info.confinement != "landlock" {
        eprintln!("{test}: skipped, no OS confinement here: {}", info.detail);
        return false;
    }
    true
}

/// Whether `pid` no longer runs (gone, or a zombie nobody reaped yet).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            matches!(state, Some("Z" | "X") | None)
        }
    }
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// The pid a command wrote to `path`, once it is there.
pub async fn read_pid(path: &Path) -> i32 {
    let mut pid = None;
    let found = eventually(|| {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await;
    assert!(found, "no pid in {}", path.display());
    pid.unwrap()
}
