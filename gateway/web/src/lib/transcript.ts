// A session's view as a pure function of ACP `session/update`s: the
// transcript (messages, thoughts, tool cards, notices) and the session's
// side state (plan, usage, mode, commands, title). Live turns and replayed
// history (`session/load`) go through the same reducer; update kinds the
// server does not send simply never appear.

import type {
  AvailableCommand, ConfigOption, ContentBlock, ModeState, PermissionOption, PlanEntry, SessionUpdate,
  StopReason, ToolCallFields, ToolContent, ToolStatus,
} from "./protocol";

export interface ToolItem {
  kind: "tool";
  key: string;
  id: string;
  title: string;
  toolKind: string;
  status: ToolStatus;
  rawInput: unknown;
  rawOutput: unknown;
  content: ToolContent[];
  locations: string[];
  /** ms timestamps, live turns only (a replay has no times): first seen,
   * started running (after any permission question), finished. */
  seenAt: number | null;
  runAt: number | null;
  endedAt: number | null;
  /** An open permission question about this call. */
  question: { requestId: string | number; options: PermissionOption[] } | null;
  /** What the user answered, once answered. */
  answer: string | null;
}

export type Item =
  | { kind: "user"; key: string; blocks: ContentBlock[] }
  | { kind: "agent"; key: string; text: string }
  | { kind: "thought"; key: string; text: string }
  | ToolItem
  | { kind: "notice"; key: string; severity: string; title: string; description: string | null }
  | { kind: "error"; key: string; message: string }
  | { kind: "stop"; key: string; reason: StopReason };

export interface Usage { used: number; size: number; cost: { amount: number; currency: string } | null }

export interface SessionView {
  id: string;
  workDir: string;
  title: string;
  items: Item[];
  plan: PlanEntry[] | null;
  usage: Usage | null;
  modes: ModeState | null;
  configOptions: ConfigOption[];
  commands: AvailableCommand[];
  /** A prompt is running. */
  running: boolean;
  /** `session/load` is replaying history. */
  loading: boolean;
  /** Opened on the current connection (after a reconnect it must be loaded again). */
  attached: boolean;
}

let counter = 0;
const key = (): string => `k${++counter}`;

export function emptyView(id: string, workDir: string, title: string): SessionView {
  return {
    id, workDir, title, items: [], plan: null, usage: null, modes: null, configOptions: [],
    commands: [], running: false, loading: false, attached: false,
  };
}

function textOf(block: ContentBlock | undefined): string {
  if (!block) return "";
  if (block.type === "text") return block.text;
  if (block.type === "resource_link") return `[${block.name}](${block.uri})`;
  return "";
}

/** Appends to the last item when it is of the same kind, else starts one. */
function appendText(items: Item[], kind: "agent" | "thought", text: string): Item[] {
  if (!text) return items;
  const last = items[items.length - 1];
  if (last && last.kind === kind) {
    return [...items.slice(0, -1), { ...last, text: last.text + text }];
  }
  return [...items, { kind, key: key(), text }];
}

function appendUser(items: Item[], block: ContentBlock): Item[] {
  const last = items[items.length - 1];
  if (last && last.kind === "user") {
    return [...items.slice(0, -1), { ...last, blocks: [...last.blocks, block] }];
  }
  return [...items, { kind: "user", key: key(), blocks: [block] }];
}

/** Merges a tool call's fields into its card (creating it when new). */
export function mergeTool(items: Item[], fields: ToolCallFields, now: number | null): Item[] {
  const index = items.findIndex((i) => i.kind === "tool" && i.id === fields.toolCallId);
  const old: ToolItem = index >= 0 ? (items[index] as ToolItem) : {
    kind: "tool", key: key(), id: fields.toolCallId, title: fields.toolCallId, toolKind: "other",
    status: "pending", rawInput: undefined, rawOutput: undefined, content: [], locations: [],
    seenAt: now, runAt: null, endedAt: null, question: null, answer: null,
  };
  const status = fields.status ?? old.status;
  const finished = status === "completed" || status === "failed";
  const next: ToolItem = {
    ...old,
    title: fields.title ?? old.title,
    toolKind: fields.kind ?? old.toolKind,
    status,
    rawInput: fields.rawInput !== undefined ? fields.rawInput : old.rawInput,
    rawOutput: fields.rawOutput !== undefined ? fields.rawOutput : old.rawOutput,
    content: fields.content ?? old.content,
    locations: fields.locations ? fields.locations.map((l) => l.path) : old.locations,
    runAt: old.runAt ?? (status === "in_progress" ? now : null),
    endedAt: finished ? (old.endedAt ?? now) : old.endedAt,
  };
  if (index < 0) return [...items, next];
  const copy = items.slice();
  copy[index] = next;
  return copy;
}

/**
 * Applies one update. `now` is the time of a live update (`null` during a
 * replay, whose tool calls have no durations).
 */
export function applyUpdate(view: SessionView, update: SessionUpdate, now: number | null): SessionView {
  switch (update.sessionUpdate) {
    case "user_message_chunk": {
      const u = update as Extract<SessionUpdate, { sessionUpdate: "user_message_chunk" }>;
      return { ...view, items: appendUser(view.items, u.content) };
    }
    case "agent_message_chunk": {
      const u = update as Extract<SessionUpdate, { sessionUpdate: "agent_message_chunk" }>;
      return { ...view, items: appendText(view.items, "agent", textOf(u.content)) };
    }
    case "agent_thought_chunk": {
      const u = update as Extract<SessionUpdate, { sessionUpdate: "agent_thought_chunk" }>;
      return { ...view, items: appendText(view.items, "thought", textOf(u.content)) };
    }
    case "tool_call":
    case "tool_call_update":
      return { ...view, items: mergeTool(view.items, update as ToolCallFields, now) };
    case "plan":
      return { ...view, plan: (update as { entries: PlanEntry[] }).entries ?? [] };
    case "available_commands_update":
      return { ...view, commands: (update as { availableCommands: AvailableCommand[] }).availableCommands ?? [] };
    case "current_mode_update": {
      const id = (update as { currentModeId: string }).currentModeId;
      return { ...view, modes: view.modes ? { ...view.modes, currentModeId: id } : { currentModeId: id, availableModes: [] } };
    }
    case "config_option_update":
      return { ...view, configOptions: (update as { configOptions: ConfigOption[] }).configOptions ?? [] };
    case "session_info_update": {
      const title = (update as { title?: string | null }).title;
      return typeof title === "string" ? { ...view, title } : view;
    }
    case "usage_update": {
      const u = update as { used: number; size: number; cost?: Usage["cost"] };
      return { ...view, usage: { used: u.used, size: u.size, cost: u.cost ?? null } };
    }
    case "notice": {
      const u = update as { severity: string; title: string; description?: string | null };
      const item: Item = { kind: "notice", key: key(), severity: u.severity, title: u.title, description: u.description ?? null };
      return { ...view, items: [...view.items, item] };
    }
    case "compaction_update": {
      const u = update as { status: string; error?: string | null };
      const title = u.error ? `Compacting the context failed: ${u.error}` : `Context compaction ${u.status.replace(/_/g, " ")}`;
      const item: Item = { kind: "notice", key: key(), severity: u.error ? "warning" : "info", title, description: null };
      return { ...view, items: [...view.items, item] };
    }
    default:
      return view;
  }
}

export function addUserPrompt(view: SessionView, blocks: ContentBlock[]): SessionView {
  return { ...view, items: [...view.items, { kind: "user", key: key(), blocks }] };
}

export function addError(view: SessionView, message: string): SessionView {
  return { ...view, items: [...view.items, { kind: "error", key: key(), message }] };
}

export function addStop(view: SessionView, reason: StopReason): SessionView {
  if (reason === "end_turn") return view;
  return { ...view, items: [...view.items, { kind: "stop", key: key(), reason }] };
}

/** Attaches a permission question to its tool card. */
export function askPermission(
  view: SessionView, requestId: string | number, toolCall: ToolCallFields, options: PermissionOption[], now: number,
): SessionView {
  const items = mergeTool(view.items, toolCall, now).map((item) =>
    item.kind === "tool" && item.id === toolCall.toolCallId
      ? { ...item, question: { requestId, options }, answer: null }
      : item,
  );
  return { ...view, items };
}

/** Closes the question of a request (answered, or cancelled with the turn). */
export function settlePermission(view: SessionView, requestId: string | number, answer: string): SessionView {
  const items = view.items.map((item) =>
    item.kind === "tool" && item.question?.requestId === requestId ? { ...item, question: null, answer } : item,
  );
  return { ...view, items };
}

/** How long a live call ran, in ms (`null` while running or when replayed). */
export function duration(item: ToolItem): number | null {
  const start = item.runAt ?? item.seenAt;
  return start !== null && item.endedAt !== null ? Math.max(0, item.endedAt - start) : null;
}

export function openQuestions(view: SessionView): (string | number)[] {
  return view.items.flatMap((i) => (i.kind === "tool" && i.question ? [i.question.requestId] : []));
}

export function stopWords(reason: StopReason): string {
  switch (reason) {
    case "cancelled": return "Cancelled.";
    case "max_tokens": return "Stopped: the model reached its output token limit.";
    case "max_turn_requests": return "Stopped: the turn reached max_iterations.";
    case "refusal": return "The model refused to answer.";
    default: return `Stopped (${reason}).`;
  }
}
