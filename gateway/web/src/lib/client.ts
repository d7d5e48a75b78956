// The app's client of the gateway: sign-in, the session list (REST), and the
// ACP conversation on the `/ws` agent channel (sessions, prompts, updates,
// permission questions, cancel, modes and models). It owns the socket and
// re-opens the shown session after a reconnect. Files are in `files.ts`.

import { Api, ApiFailure } from "./api";
import { Files } from "./files";
import type {
  ConfigView, ContentBlock, InitializeResult, Models, PermissionRequest, RpcRequest, SessionInfo, SessionNotification,
  SessionPage, SessionSetup, Skills, StopReason,
} from "./protocol";
import { ConnectionLost, RpcFailure, Socket, type SocketState } from "./socket";
import { type AppStore, type State, initialState } from "./state";
import { Store } from "./store";
import { savePreferences, type Preferences } from "./theme";
import {
  type SessionView, addError, addStop, addUserPrompt, applyUpdate, askPermission, emptyView, openQuestions,
  settlePermission,
} from "./transcript";

export const VERSION = "0.1.0";
const TOKEN_KEY = "openheim.token";
const PAGE = 30;

/** The words for a failed ACP request. */
export function rpcWords(error: unknown): string {
  if (error instanceof ConnectionLost) return "The connection to the server was lost during this request.";
  if (error instanceof RpcFailure) {
    switch (error.code) {
      case -32002: return `The server does not know this session: ${error.message}`;
      case -32602: return `The server rejected the request: ${error.message}`;
      case -32603: return `The server failed: ${error.message}`;
      default: return error.message;
    }
  }
  if (error instanceof ApiFailure) return error.message;
  return error instanceof Error ? error.message : String(error);
}

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function writeToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts for this page only.
  }
}

export function sessionFromHash(): string | null {
  const m = /^#\/s\/([\w-]+)$/.exec(location.hash);
  return m ? m[1] : null;
}

export interface NewSessionOptions { cwd: string; model: string | null; skills: string[]; readOnly: boolean }

export class Client {
  readonly store: AppStore = new Store<State>(initialState());
  readonly api = new Api(null);
  readonly socket: Socket;
  readonly files: Files;
  private token: string | null = null;

  constructor() {
    this.socket = new Socket(() => this.socketUrl(), {
      onOpen: (reconnected) => void this.onOpen(reconnected),
      onState: (state, detail) => this.onSocketState(state, detail),
      onAgentRequest: (request) => this.onAgentRequest(request),
      onAgentNotification: (method, params) => this.onAgentNotification(method, params),
      onFsEvent: (event) => this.files.onEvent(event),
    });
    this.files = new Files(this.store, this.socket);
  }

  private socketUrl(): string {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${scheme}//${location.host}/ws${query}`;
  }

  private set(patch: Partial<State> | ((s: State) => Partial<State>)): void {
    this.store.set(patch);
  }

  private view(id: string): SessionView | undefined {
    return this.store.get().views[id];
  }

  private updateView(id: string, change: (view: SessionView) => SessionView): void {
    this.set((s) => {
      const view = s.views[id];
      return view ? { views: { ...s.views, [id]: change(view) } } : {};
    });
  }

  // ---- sign-in ----

  /**
   * Finds out whether the server wants a token (a `401` to an unauthenticated
   * call) and signs in with the one this browser session remembers.
   */
  async start(): Promise<void> {
    const saved = readToken();
    this.api.setToken(saved);
    try {
      await this.api.get<SessionPage>("/api/sessions?limit=1");
      this.token = saved;
      await this.enter(saved !== null);
    } catch (error) {
      const failure = error instanceof ApiFailure ? error : null;
      if (failure?.isAuth) {
        writeToken(null);
        const message = saved ? "The saved token is no longer accepted. Sign in again." : null;
        this.set({ auth: { phase: "signed-out", error: message, required: true } });
      } else {
        this.set({ auth: { phase: "signed-out", error: rpcWords(error), required: true } });
      }
    }
  }

  async signIn(token: string): Promise<void> {
    const trimmed = token.trim();
    if (!trimmed) {
      this.set({ auth: { phase: "signed-out", error: "Enter the server's token.", required: true } });
      return;
    }
    this.api.setToken(trimmed);
    try {
      await this.api.get<SessionPage>("/api/sessions?limit=1");
    } catch (error) {
      this.api.setToken(null);
      this.set({ auth: { phase: "signed-out", error: rpcWords(error), required: true } });
      return;
    }
    this.token = trimmed;
    writeToken(trimmed);
    await this.enter(true);
  }

  signOut(): void {
    writeToken(null);
    this.token = null;
    this.api.setToken(null);
    this.socket.close();
    const prefs = this.store.get().prefs;
    this.set({ ...initialState(), prefs, auth: { phase: "signed-out", error: null, required: true } });
  }

  private async enter(required: boolean): Promise<void> {
    this.set({ auth: { phase: "signed-in", error: null, required } });
    const load = <T>(path: string) => this.api.get<T>(path).catch(() => null);
    const [config, models, skills] = await Promise.all([
      load<ConfigView>("/api/config"), load<Models>("/api/models"), load<Skills>("/api/skills"),
    ]);
    this.set({ config, models, skills });
    void this.listSessions(true);
    this.socket.connect();
  }

  /** The workspace root: the configured `work_dir`, else the sandbox's root. */
  workspaceRoot(): string {
    const config = this.store.get().config;
    return config?.work_dir ?? config?.sandbox?.workspace_root ?? "";
  }

  // ---- the socket ----

  /** The socket is open and ACP is initialised on it (the server refuses sessions before). */
  ready(): boolean {
    return this.socket.isOpen && this.store.get().agent !== null;
  }

  private async onOpen(reconnected: boolean): Promise<void> {
    try {
      const agent = await this.socket.request<InitializeResult>("initialize", {
        protocolVersion: 1,
        clientCapabilities: {
          fs: { readTextFile: false, writeTextFile: false },
          terminal: false,
          session: { notices: {}, compaction: {} },
        },
        clientInfo: { name: "openheim-web", title: "openheim web", version: VERSION },
      });
      this.set({ agent, banner: null });
    } catch (error) {
      this.set({ banner: `The server did not accept the agent connection: ${rpcWords(error)}` });
      return;
    }
    if (reconnected) void this.listSessions(true);
    void this.files.start();
    const wanted = this.store.get().current ?? sessionFromHash();
    if (wanted) await this.openSession(wanted);
  }

  /**
   * When the socket drops, the server cancels the turns of that connection
   * (docs/api.md, "Lifecycle"): say so at once, so the prompt box is free
   * again, and mark every session to be loaded again on the next socket.
   */
  private onSocketState(state: SocketState, detail: string | null): void {
    const was = this.store.get().conn.state;
    this.set({ conn: { state, detail } });
    if (was !== "open" || state === "open") return;
    this.set((s) => {
      const views: Record<string, SessionView> = {};
      for (const [id, view] of Object.entries(s.views)) {
        let next = view;
        for (const requestId of openQuestions(view)) next = settlePermission(next, requestId, "not answered: connection lost");
        if (view.running) next = addError(next, "The connection was lost; the turn ended with it.");
        views[id] = { ...next, attached: false, running: false, loading: false };
      }
      return { views, agent: null };
    });
  }

  private onAgentRequest(request: RpcRequest): void {
    if (request.method !== "session/request_permission") {
      this.socket.respondError(request.id, -32601, `the web app does not implement ${request.method}`);
      return;
    }
    const params = request.params as PermissionRequest;
    if (!this.view(params.sessionId)) {
      this.socket.respond(request.id, { outcome: { outcome: "cancelled" } });
      return;
    }
    this.updateView(params.sessionId, (v) => askPermission(v, request.id, params.toolCall, params.options, Date.now()));
  }

  private onAgentNotification(method: string, params: unknown): void {
    if (method !== "session/update") return;
    const { sessionId, update } = params as SessionNotification;
    if (!update || typeof update.sessionUpdate !== "string") return;
    this.updateView(sessionId, (v) => applyUpdate(v, update, v.loading ? null : Date.now()));
    if (update.sessionUpdate === "session_info_update") {
      const title = (update as { title?: string | null }).title;
      if (typeof title === "string") {
        this.set((s) => ({ list: { ...s.list, items: s.list.items.map((i) => (i.id === sessionId ? { ...i, title } : i)) } }));
      }
    }
  }

  // ---- sessions ----

  async listSessions(reset: boolean): Promise<void> {
    const list = this.store.get().list;
    if (!reset && !list.next) return;
    this.set((s) => ({ list: { ...s.list, loading: true, error: null } }));
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (!reset && list.next) params.set("cursor", list.next);
    if (list.query.trim()) params.set("q", list.query.trim());
    try {
      const page = await this.api.get<SessionPage>(`/api/sessions?${params}`);
      this.set((s) => {
        if (s.list.query !== list.query) return {};
        const items = reset ? page.sessions : [...s.list.items, ...page.sessions];
        return { list: { ...s.list, items, next: page.next_cursor, loading: false } };
      });
    } catch (error) {
      if (error instanceof ApiFailure && error.isAuth) return this.lostAuth();
      this.set((s) => ({ list: { ...s.list, loading: false, error: rpcWords(error) } }));
    }
  }

  search(query: string): void {
    this.set((s) => ({ list: { ...s.list, query, next: null } }));
    void this.listSessions(true);
  }

  private lostAuth(): void {
    this.signOut();
    this.set({ auth: { phase: "signed-out", error: "The server no longer accepts this token. Sign in again.", required: true } });
  }

  /** Shows a session, loading it (history replayed) unless this connection has it open. */
  async openSession(id: string): Promise<void> {
    this.set({ current: id, newSession: false, sidebar: false });
    if (location.hash !== `#/s/${id}`) history.replaceState(null, "", `#/s/${id}`);
    const known = this.view(id);
    if (known?.attached || known?.loading) return;
    const info = this.store.get().list.items.find((s) => s.id === id);
    const workDir = info?.work_dir ?? known?.workDir ?? this.workspaceRoot();
    // Without a socket it is loaded once the socket opens (`onOpen`).
    const loading = this.socket.isOpen;
    const view = { ...emptyView(id, workDir, info?.title ?? known?.title ?? ""), loading };
    this.set((s) => ({ views: { ...s.views, [id]: view } }));
    if (!loading) return;
    try {
      const setup = await this.socket.request<SessionSetup>("session/load", { sessionId: id, cwd: workDir || "/", mcpServers: [] });
      this.updateView(id, (v) => ({
        ...v, loading: false, attached: true, modes: setup.modes ?? null, configOptions: setup.configOptions ?? [],
      }));
    } catch (error) {
      this.updateView(id, (v) => addError({ ...v, loading: false }, rpcWords(error)));
    }
  }

  async newSession(options: NewSessionOptions): Promise<string | null> {
    if (!this.ready()) {
      this.set({ banner: "Not connected to the server yet; try again in a moment." });
      return null;
    }
    const meta: Record<string, unknown> = {};
    if (options.skills.length) meta.skills = options.skills;
    if (options.model) meta.model = options.model;
    if (options.readOnly) meta.readOnly = true;
    try {
      const setup = await this.socket.request<SessionSetup>("session/new", {
        cwd: options.cwd, mcpServers: [], ...(Object.keys(meta).length ? { _meta: meta } : {}),
      });
      const id = setup.sessionId;
      if (!id) throw new Error("The server created a session without an id.");
      const view: SessionView = {
        ...emptyView(id, options.cwd, ""), attached: true, modes: setup.modes ?? null, configOptions: setup.configOptions ?? [],
      };
      this.set((s) => ({ views: { ...s.views, [id]: view }, current: id, newSession: false, sidebar: false, banner: null }));
      history.replaceState(null, "", `#/s/${id}`);
      void this.listSessions(true);
      return id;
    } catch (error) {
      this.set({ banner: `The session could not be created: ${rpcWords(error)}` });
      return null;
    }
  }

  showNewSession(show: boolean): void {
    this.set({ newSession: show, sidebar: false });
  }

  // ---- turns ----

  /**
   * Sends a prompt in the shown session (a new one in the workspace root
   * when none is shown). Resolves `false` when the prompt did not reach the
   * server, so the composer keeps the text.
   */
  async prompt(text: string): Promise<boolean> {
    if (!this.ready()) {
      this.set({ banner: "Not connected to the server; your prompt is kept. Reconnecting…" });
      return false;
    }
    let id = this.store.get().current;
    if (!id) {
      const config = this.store.get().config;
      id = await this.newSession({ cwd: this.workspaceRoot(), model: null, skills: config?.default_skills ?? [], readOnly: false });
      if (!id) return false;
    }
    const view = this.view(id);
    if (!view || view.running) return false;
    const attachments = this.store.get().attachments;
    const blocks: ContentBlock[] = [{ type: "text", text }];
    for (const file of attachments) {
      blocks.push({ type: "resource", resource: { uri: file.uri, text: file.text, mimeType: "text/plain" } });
    }
    this.set({ attachments: [] });
    this.updateView(id, (v) => ({ ...addUserPrompt(v, blocks), running: true }));
    const sessionId = id;
    void this.socket
      .request<{ stopReason: StopReason }>("session/prompt", { sessionId, prompt: blocks })
      .then((result) => this.updateView(sessionId, (v) => addStop({ ...v, running: false }, result.stopReason)))
      .catch((error) => {
        if (error instanceof ConnectionLost) return; // onOpen reports it after reconnecting
        this.updateView(sessionId, (v) => addError({ ...v, running: false }, rpcWords(error)));
      })
      .finally(() => void this.listSessions(true));
    return true;
  }

  /** Cancels the shown session's turn; open permission questions count as cancelled. */
  cancel(): void {
    const id = this.store.get().current;
    const view = id ? this.view(id) : undefined;
    if (!id || !view?.running) return;
    for (const requestId of openQuestions(view)) {
      this.socket.respond(requestId, { outcome: { outcome: "cancelled" } });
      this.updateView(id, (v) => settlePermission(v, requestId, "cancelled"));
    }
    this.socket.notify("session/cancel", { sessionId: id });
  }

  answerPermission(sessionId: string, requestId: string | number, optionId: string, label: string): void {
    this.socket.respond(requestId, { outcome: { outcome: "selected", optionId } });
    this.updateView(sessionId, (v) => settlePermission(v, requestId, label));
  }

  async setMode(modeId: string): Promise<void> {
    const id = this.store.get().current;
    if (!id) return;
    try {
      await this.socket.request("session/set_mode", { sessionId: id, modeId });
      this.updateView(id, (v) => (v.modes ? { ...v, modes: { ...v.modes, currentModeId: modeId } } : v));
    } catch (error) {
      this.updateView(id, (v) => addError(v, `The mode could not be changed: ${rpcWords(error)}`));
    }
  }

  async setConfigOption(configId: string, value: string): Promise<void> {
    const id = this.store.get().current;
    if (!id) return;
    try {
      const result = await this.socket.request<{ configOptions?: SessionSetup["configOptions"] }>(
        "session/set_config_option", { sessionId: id, configId, value },
      );
      this.updateView(id, (v) => ({ ...v, configOptions: result.configOptions ?? v.configOptions }));
      void this.listSessions(true);
    } catch (error) {
      this.updateView(id, (v) => addError(v, `The setting could not be changed: ${rpcWords(error)}`));
    }
  }

  // ---- page state ----

  setPanel(panel: State["panel"]): void {
    this.set({ panel, sidebar: false });
  }

  toggleSidebar(open?: boolean): void {
    this.set((s) => ({ sidebar: open ?? !s.sidebar }));
  }

  dismissBanner(): void {
    this.set({ banner: null });
  }

  /** Changes some preferences (merged with the current ones, not a rendered copy). */
  setPreferences(change: Partial<Preferences>): void {
    const prefs = { ...this.store.get().prefs, ...change };
    savePreferences(prefs);
    this.set({ prefs });
  }

  sessionInfo(id: string): SessionInfo | undefined {
    return this.store.get().list.items.find((s) => s.id === id);
  }
}
