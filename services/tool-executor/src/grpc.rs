//! The gRPC adapter: implements the generated `ToolExecutor` service on top of
//! the tool registry, the sandbox and the file operations. The only module
//! that sees tonic's request, response and status types.
//!
//! Tool failures are answered as `ExecuteResponse { is_error: true, .. }` so
//! the model can read them; a `Status` means the request itself was
//! malformed. Dropping an `Execute` call (the client cancelled it) drops the
//! handler future, which cancels the call's token and kills whatever process
//! group the tool started.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use openheim_proto::tool_executor::v1::tool_executor_server::ToolExecutor;
use openheim_proto::tool_executor::v1::{
    DeleteRequest, ExecuteRequest, ExecuteResponse, FileOpResponse, FsEvent, GetSandboxInfoRequest,
    ListDirRequest, ListDirResponse, ListToolsRequest, ListToolsResponse, MakeDirRequest,
    ReadFileRequest, ReadFileResponse, RenameRequest, RunHookRequest, RunHookResponse, SandboxInfo,
    WatchRequest, Workspace, WriteFileRequest,
};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::ToolExecutorConfig;
use crate::confinement::{Confinement, Level};
use crate::env::EnvPolicy;
use crate::error::ToolError;
use crate::fileops;
use crate::sandbox::WorkspaceRoot;
use crate::tools::{BuiltinSettings, ToolContext, ToolHandler, ToolRegistry, error_response};
use crate::web::{AddressPolicy, WebFetcher};

/// What a handler answers: a response, or the status of a malformed request.
type Answer<T> = Result<Response<T>, Status>;

/// The service behind [`crate::grpc_server`].
pub struct ToolExecutorService {
    config: ToolExecutorConfig,
    registry: Arc<ToolRegistry>,
    builtins: Arc<BuiltinSettings>,
}

impl ToolExecutorService {
    /// Probes the OS confinement the shell will run under and logs it.
    pub fn new(config: ToolExecutorConfig, custom_tools: Vec<Arc<dyn ToolHandler>>) -> Self {
        let confinement = Confinement::probe(config.sandbox, config.writable_paths.clone());
        log_confinement(&confinement);
        let policy = if config.web_fetch_allow_private {
            AddressPolicy::AllowPrivate
        } else {
            AddressPolicy::PublicOnly
        };
        let builtins = BuiltinSettings {
            confinement,
            env: EnvPolicy::new(&config.env_allow, &config.env_deny),
            child_env: config.child_env.clone(),
            web: WebFetcher::new(policy),
        };
        Self {
            config,
            registry: Arc::new(ToolRegistry::new(custom_tools)),
            builtins: Arc::new(builtins),
        }
    }

    /// Whether the shell may be offered and run in a workspace that allows
    /// it: not when confinement is enforced but unavailable.
    fn shell_runs(&self, workspace_allows: bool) -> bool {
        workspace_allows && self.builtins.confinement.allows_commands()
    }

    /// The context of one `Execute` call.
    fn context(
        &self,
        workspace: WorkspaceRoot,
        cancel: CancellationToken,
        timeout_secs: u32,
    ) -> ToolContext {
        let shell_timeout = match timeout_secs {
            0 => self.config.shell_timeout,
            secs => std::time::Duration::from_secs(u64::from(secs)),
        };
        ToolContext {
            workspace,
            cancel,
            shell_timeout,
            max_result_bytes: self.config.max_result_bytes,
            builtins: Arc::clone(&self.builtins),
        }
    }

    /// Runs a file operation on the blocking pool, inside the request's
    /// workspace.
    async fn fs_op<T: Send + 'static>(
        &self,
        workspace: Option<Workspace>,
        op: impl FnOnce(&WorkspaceRoot) -> Result<T, ToolError> + Send + 'static,
    ) -> Answer<T> {
        let workspace = workspace.ok_or_else(|| Status::invalid_argument("missing workspace"))?;
        let allowed = self.config.allowed_root.clone();
        let run = move || {
            let root = open_workspace(&workspace, allowed.as_deref())?;
            op(&root)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(Ok(value)) => Ok(Response::new(value)),
            Ok(Err(error)) => Err(status(&error)),
            Err(join) => Err(Status::internal(format!("file operation failed: {join}"))),
        }
    }
}

/// The root a request's workspace names, created when asked and held to
/// its boundary.
fn open_workspace(
    workspace: &Workspace,
    allowed: Option<&Path>,
) -> Result<WorkspaceRoot, ToolError> {
    WorkspaceRoot::open_bounded(
        &workspace.root,
        allowed,
        &workspace.boundary,
        workspace.create,
    )
}

#[tonic::async_trait]
impl ToolExecutor for ToolExecutorService {
    async fn list_tools(&self, request: Request<ListToolsRequest>) -> Answer<ListToolsResponse> {
        let request = request.into_inner();
        let allow_shell = self.shell_runs(request.workspace.is_some_and(|w| w.allow_shell));
        let tools = self.registry.definitions(allow_shell, request.read_only);
        Ok(Response::new(ListToolsResponse { tools }))
    }

    async fn execute(&self, request: Request<ExecuteRequest>) -> Answer<ExecuteResponse> {
        let request = request.into_inner();
        let workspace = request
            .workspace
            .ok_or_else(|| Status::invalid_argument("missing workspace"))?;
        let call = request
            .call
            .ok_or_else(|| Status::invalid_argument("missing call"))?;
        let root = match open_workspace(&workspace, self.config.allowed_root.as_deref()) {
            Ok(root) => root,
            Err(error) => {
                return Ok(Response::new(error_response(
                    &error,
                    self.config.max_result_bytes,
                )));
            }
        };
        let cancel = CancellationToken::new();
        // Cancels the token when this future is dropped mid-call, e.g. when
        // the client gave up on the RPC.
        let _cancel_on_drop = cancel.clone().drop_guard();
        let ctx = self.context(root, cancel, request.timeout_secs);
        let execution = self.registry.execute(&ctx, &call, workspace.allow_shell);
        Ok(Response::new(
            crate::telemetry::timed(&call.name, execution).await,
        ))
    }

    async fn run_hook(&self, request: Request<RunHookRequest>) -> Answer<RunHookResponse> {
        let request = request.into_inner();
        let workspace = request
            .workspace
            .ok_or_else(|| Status::invalid_argument("missing workspace"))?;
        if request.command.trim().is_empty() {
            return Err(Status::invalid_argument("empty hook command"));
        }
        let root = open_workspace(&workspace, self.config.allowed_root.as_deref())
            .map_err(|e| status(&e))?;
        let cancel = CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let ctx = self.context(root, cancel, request.timeout_secs);
        Ok(Response::new(
            crate::hook::run(&ctx, &request.command, request.input).await,
        ))
    }

    async fn get_sandbox_info(
        &self,
        _request: Request<GetSandboxInfoRequest>,
    ) -> Answer<SandboxInfo> {
        let workspace_root = self
            .config
            .allowed_root
            .as_ref()
            .map(|root| root.display().to_string())
            .unwrap_or_default();
        let confinement = &self.builtins.confinement;
        Ok(Response::new(SandboxInfo {
            workspace_root,
            confinement: confinement.name().to_owned(),
            detail: confinement.detail(),
        }))
    }

    async fn list_dir(&self, request: Request<ListDirRequest>) -> Answer<ListDirResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| {
            fileops::list_dir(ws, &r.path, r.recursive, r.max_entries)
        })
        .await
    }

    async fn read_file(&self, request: Request<ReadFileRequest>) -> Answer<ReadFileResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| {
            fileops::read_file(ws, &r.path, r.max_bytes)
        })
        .await
    }

    async fn write_file(&self, request: Request<WriteFileRequest>) -> Answer<FileOpResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| {
            fileops::write_file(ws, &r.path, &r.content)
        })
        .await
    }

    async fn make_dir(&self, request: Request<MakeDirRequest>) -> Answer<FileOpResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| fileops::make_dir(ws, &r.path))
            .await
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Answer<FileOpResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| {
            fileops::delete(ws, &r.path, r.recursive)
        })
        .await
    }

    async fn rename(&self, request: Request<RenameRequest>) -> Answer<FileOpResponse> {
        let r = request.into_inner();
        self.fs_op(r.workspace, move |ws| fileops::rename(ws, &r.from, &r.to))
            .await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<FsEvent, Status>> + Send>>;

    /// Streams the changes under the path until the client drops the call,
    /// which drops the stream and with it the OS watcher.
    async fn watch(&self, request: Request<WatchRequest>) -> Answer<Self::WatchStream> {
        let r = request.into_inner();
        let watch = self
            .fs_op(r.workspace, move |ws| {
                crate::watch::watch(ws, &r.path, r.recursive)
            })
            .await?
            .into_inner();
        let stream: Self::WatchStream = Box::pin(watch.map(Ok));
        Ok(Response::new(stream))
    }
}

/// The startup line saying how shell commands are confined; a warning when
/// they are not confined although confinement was asked for.
fn log_confinement(confinement: &Confinement) {
    let detail = confinement.detail();
    let (name, mode) = (confinement.name(), confinement.mode_name());
    match confinement.level() {
        Level::Unavailable { .. } => {
            tracing::warn!(confinement = name, mode, "shell sandbox: {detail}");
        }
        Level::Full { .. } | Level::Partial { .. } | Level::Off => {
            tracing::info!(confinement = name, mode, "shell sandbox: {detail}");
        }
    }
}

/// The status a failed file operation is answered with.
fn status(error: &ToolError) -> Status {
    let message = error.to_string();
    match error {
        ToolError::UnknownTool { .. } => Status::not_found(message),
        ToolError::InvalidArguments { .. } => Status::invalid_argument(message),
        ToolError::OutsideWorkspace { .. }
        | ToolError::ShellDisabled
        | ToolError::Unconfined { .. }
        | ToolError::Blocked { .. } => Status::permission_denied(message),
        ToolError::Timeout { .. } => Status::deadline_exceeded(message),
        ToolError::Failed(_) => Status::failed_precondition(message),
        ToolError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => Status::not_found(message),
            std::io::ErrorKind::AlreadyExists => Status::already_exists(message),
            std::io::ErrorKind::PermissionDenied => Status::permission_denied(message),
            std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::IsADirectory
            | std::io::ErrorKind::DirectoryNotEmpty
            | std::io::ErrorKind::InvalidInput => Status::failed_precondition(message),
            _ => Status::internal(message),
        },
    }
}
