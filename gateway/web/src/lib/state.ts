// The app's state: one value in a `Store`, changed only by the client
// (`client.ts`, `files.ts`). Components read it and call the client.

import type { ConfigView, FileEntry, InitializeResult, Models, SessionInfo, Skills } from "./protocol";
import type { SocketState } from "./socket";
import { Store } from "./store";
import type { SessionView } from "./transcript";
import { type Preferences, loadPreferences } from "./theme";

export interface OpenFile {
  path: string;
  content: string;
  isBinary: boolean;
  truncated: boolean;
  size: number;
  loading: boolean;
  error: string | null;
  /** The file changed on disk while the editor had unsaved changes. */
  changedOnDisk: boolean;
  /** Bumped on every (re)load, so a view can tell a live update. */
  version: number;
  /** The editor's text while editing, `null` when viewing. */
  draft: string | null;
  saving: boolean;
}

export interface FilesState {
  dirs: Record<string, { entries: FileEntry[]; loading: boolean; error: string | null; truncated: boolean }>;
  expanded: Record<string, boolean>;
  open: OpenFile | null;
  watching: boolean;
  error: string | null;
}

export interface Attachment { path: string; uri: string; text: string }

/** The side panel beside the chat (over it on narrow screens). */
export type Panel = "files" | "server" | null;

export interface State {
  auth: { phase: "checking" | "signed-out" | "signed-in"; error: string | null; required: boolean };
  conn: { state: SocketState; detail: string | null };
  agent: InitializeResult | null;
  config: ConfigView | null;
  models: Models | null;
  skills: Skills | null;
  list: { items: SessionInfo[]; next: string | null; loading: boolean; error: string | null; query: string };
  views: Record<string, SessionView>;
  current: string | null;
  banner: string | null;
  files: FilesState;
  attachments: Attachment[];
  panel: Panel;
  newSession: boolean;
  sidebar: boolean;
  prefs: Preferences;
}

export function initialState(): State {
  return {
    auth: { phase: "checking", error: null, required: false },
    conn: { state: "closed", detail: null },
    agent: null,
    config: null,
    models: null,
    skills: null,
    list: { items: [], next: null, loading: false, error: null, query: "" },
    views: {},
    current: null,
    banner: null,
    files: { dirs: {}, expanded: { "": true }, open: null, watching: false, error: null },
    attachments: [],
    panel: null,
    newSession: false,
    sidebar: false,
    prefs: loadPreferences(),
  };
}

export type AppStore = Store<State>;
