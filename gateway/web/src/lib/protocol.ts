// The wire types the app speaks: the gateway's REST and fs channel exactly as
// docs/api.md defines them, and the part of ACP v1 (JSON-RPC on the agent
// channel) the app uses. Nothing here is private to the app: it is the
// public protocol, so the app doubles as its reference client.

// ---- REST (docs/api.md, "REST") ----

export type ErrorCode =
  | "invalid_request" | "unauthorized" | "origin_not_allowed" | "forbidden" | "not_found"
  | "conflict" | "too_large" | "too_many_connections" | "shutting_down"
  | "backend_not_configured" | "backend_unavailable" | "backend_timeout" | "timeout" | "backend_error";

export interface ApiErrorBody { error: { code: ErrorCode; message: string } }

export interface Readiness { status: "ready" | "unavailable"; backends: Record<string, string> }

export interface ConfigView {
  default_provider: string | null;
  work_dir: string | null;
  allow_shell: boolean;
  default_skills: string[];
  sandbox: { confinement: string; detail: string; workspace_root: string | null } | null;
}

export interface Models {
  default_provider: string | null;
  providers: { provider: string; kind: string; default_model: string; models: string[]; context_window: number | null }[];
}

export interface Skills { default_skills: string[]; available: string[] | null }

export type ToolKind = "read" | "edit" | "delete" | "move" | "search" | "execute" | "think" | "fetch" | "other";

export interface Tool {
  name: string; description: string; kind: ToolKind; read_only: boolean; source: string;
}
export interface Tools { tools: Tool[] }

export interface McpServers {
  servers: { name: string; state: "connecting" | "connected" | "failed" | "unknown"; tool_count: number;
             error: string | null; session_id: string | null }[];
}

export interface SessionInfo {
  id: string; title: string; work_dir: string; model: string; skills: string[];
  created_at_ms: number; updated_at_ms: number; message_count: number;
  approval_mode: "ask" | "auto" | "deny"; read_only: boolean;
}
export interface SessionPage { sessions: SessionInfo[]; next_cursor: string | null }

// ---- /ws envelopes and the fs channel (docs/api.md, "WebSocket /ws") ----

export type Frame =
  | { channel: "agent"; data: JsonRpcMessage | string }
  | { channel: "fs"; data: FsReply | FsEvent | FsError };

export type FsRequest =
  | { action: "list"; path?: string; recursive?: boolean; max_entries?: number }
  | { action: "read"; path: string; max_bytes?: number }
  | { action: "write"; path: string; content: string; encoding?: "utf-8" | "base64" }
  | { action: "mkdir"; path: string }
  | { action: "delete"; path: string; recursive?: boolean }
  | { action: "rename"; from: string; to: string }
  | { action: "watch"; path?: string; recursive?: boolean }
  | { action: "unwatch"; path?: string };

export interface FileEntry { path: string; name: string; is_dir: boolean; size: number; modified: number }

export type FsReply =
  | { type: "file_list"; id?: unknown; path: string; entries: FileEntry[]; truncated: boolean }
  | { type: "file_content"; id?: unknown; path: string; content: string; encoding: "utf-8" | "base64";
      is_binary: boolean; truncated: boolean; size: number }
  | { type: "write_success"; id?: unknown; path: string }
  | { type: "mkdir_success"; id?: unknown; path: string }
  | { type: "delete_success"; id?: unknown; path: string }
  | { type: "rename_success"; id?: unknown; from: string; to: string }
  | { type: "watching"; id?: unknown; path: string }
  | { type: "unwatched"; id?: unknown; path: string };

export interface FsEvent {
  type: "fs_event";
  kind: "create" | "modify" | "remove" | "rename" | "other" | "overflow";
  paths: string[];
}

export interface FsError { type: "error"; id?: unknown; code: string; message: string }

// ---- JSON-RPC 2.0 ----

export type RpcId = number | string;
export interface RpcRequest { jsonrpc: "2.0"; id: RpcId; method: string; params?: unknown }
export interface RpcNotification { jsonrpc: "2.0"; method: string; params?: unknown }
export interface RpcResponse {
  jsonrpc: "2.0"; id: RpcId | null;
  result?: unknown; error?: { code: number; message: string; data?: unknown };
}
export type JsonRpcMessage = RpcRequest | RpcNotification | RpcResponse;

// ---- ACP v1 (the subset the app reads; unknown fields are ignored) ----

export interface InitializeResult {
  protocolVersion: number;
  agentCapabilities?: {
    loadSession?: boolean;
    promptCapabilities?: { image?: boolean; embeddedContext?: boolean };
  };
  agentInfo?: { name: string; title?: string; version?: string };
}

export interface SessionMode { id: string; name: string; description?: string | null }
export interface ModeState { currentModeId: string; availableModes: SessionMode[] }

export interface ConfigSelectOption { value: string; name: string; description?: string | null }
export interface ConfigOption {
  id: string; name: string; description?: string | null; category?: string | null;
  type: "select" | string; currentValue?: string;
  options?: ConfigSelectOption[] | { group: string; name: string; options: ConfigSelectOption[] }[];
}

export interface SessionSetup {
  sessionId?: string;
  modes?: ModeState | null;
  configOptions?: ConfigOption[] | null;
}

export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "image"; data: string; mimeType: string }
  | { type: "resource_link"; uri: string; name: string }
  | { type: "resource"; resource: { uri: string; text?: string; blob?: string; mimeType?: string | null } };

export type ToolStatus = "pending" | "in_progress" | "completed" | "failed";

export type ToolContent =
  | { type: "content"; content: ContentBlock }
  | { type: "diff"; path: string; oldText?: string | null; newText: string }
  | { type: "terminal"; terminalId: string };

export interface ToolCallFields {
  toolCallId: string;
  title?: string | null;
  kind?: string | null;
  status?: ToolStatus | null;
  content?: ToolContent[] | null;
  locations?: { path: string; line?: number | null }[] | null;
  rawInput?: unknown;
  rawOutput?: unknown;
}

export type PlanStatus = "pending" | "in_progress" | "completed";
export interface PlanEntry { content: string; priority: "high" | "medium" | "low"; status: PlanStatus }

export interface AvailableCommand { name: string; description: string; input?: { hint: string } | null }

export type SessionUpdate =
  | { sessionUpdate: "user_message_chunk"; content: ContentBlock }
  | { sessionUpdate: "agent_message_chunk"; content: ContentBlock }
  | { sessionUpdate: "agent_thought_chunk"; content: ContentBlock }
  | ({ sessionUpdate: "tool_call" } & ToolCallFields)
  | ({ sessionUpdate: "tool_call_update" } & ToolCallFields)
  | { sessionUpdate: "plan"; entries: PlanEntry[] }
  | { sessionUpdate: "available_commands_update"; availableCommands: AvailableCommand[] }
  | { sessionUpdate: "current_mode_update"; currentModeId: string }
  | { sessionUpdate: "config_option_update"; configOptions: ConfigOption[] }
  | { sessionUpdate: "session_info_update"; title?: string | null; updatedAt?: string | null }
  | { sessionUpdate: "usage_update"; used: number; size: number; cost?: { amount: number; currency: string } | null }
  | { sessionUpdate: "notice"; severity: "info" | "warning" | "error" | string; title: string; description?: string | null }
  | { sessionUpdate: "compaction_update"; compactionId: string; status: string; error?: string | null }
  | { sessionUpdate: string };

export interface SessionNotification { sessionId: string; update: SessionUpdate }

export interface PermissionOption { optionId: string; name: string; kind: "allow_once" | "allow_always" | "reject_once" | "reject_always" | string }
export interface PermissionRequest { sessionId: string; toolCall: ToolCallFields; options: PermissionOption[] }

export type StopReason = "end_turn" | "max_tokens" | "max_turn_requests" | "refusal" | "cancelled" | string;
