// The workspace on the `/ws` fs channel (docs/api.md, "The fs channel"): a
// lazily loaded tree, one recursive watch on the root that refreshes the
// directories and the open file a change touches, a viewer, an editor that
// saves with `write`, and attaching a file to the next prompt.

import type { FileEntry, FsError, FsEvent, FsReply } from "./protocol";
import { ConnectionLost, FsFailure, type Socket } from "./socket";
import type { AppStore, FilesState, OpenFile, State } from "./state";

/** Largest file shown (and attached); the server says when it cut more. */
const MAX_READ = 1024 * 1024;

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

function words(error: unknown): string {
  if (error instanceof FsFailure) {
    switch (error.code) {
      case "not_found": return `Not found: ${error.message}`;
      case "forbidden": return `Refused: ${error.message}`;
      default: return error.message;
    }
  }
  if (error instanceof ConnectionLost) return "Not connected to the server.";
  return error instanceof Error ? error.message : String(error);
}

export function sortEntries(entries: FileEntry[]): FileEntry[] {
  return [...entries].sort((a, b) => (a.is_dir === b.is_dir ? a.name.localeCompare(b.name) : a.is_dir ? -1 : 1));
}

/** Changes on disk come in bursts (a write is often several events): wait this long and refresh once. */
const SETTLE_MS = 80;

export class Files {
  private stale = new Set<string>();
  private openStale = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly store: AppStore, private readonly socket: Socket) {}

  private get state(): FilesState {
    return this.store.get().files;
  }

  private set(change: (files: FilesState) => Partial<FilesState>): void {
    this.store.set((s: State) => ({ files: { ...s.files, ...change(s.files) } }));
  }

  private setOpen(change: (open: OpenFile) => Partial<OpenFile>): void {
    this.set((f) => (f.open ? { open: { ...f.open, ...change(f.open) } } : {}));
  }

  /** After (re)connecting: watch the workspace, reload what is shown. */
  async start(): Promise<void> {
    try {
      await this.socket.fs({ action: "watch", path: "", recursive: true });
      this.set(() => ({ watching: true, error: null }));
    } catch (error) {
      this.set(() => ({ watching: false, error: `Live updates are off: ${words(error)}` }));
    }
    const expanded = Object.keys(this.state.expanded).filter((p) => this.state.expanded[p]);
    await Promise.all(expanded.map((path) => this.list(path)));
    const open = this.state.open;
    if (open && open.draft === null) await this.reload(open.path);
  }

  async list(path: string): Promise<void> {
    this.set((f) => ({ dirs: { ...f.dirs, [path]: { entries: f.dirs[path]?.entries ?? [], loading: true, error: null, truncated: false } } }));
    try {
      const reply = await this.socket.fs<Extract<FsReply, { type: "file_list" }>>(
        path ? { action: "list", path, recursive: false } : { action: "list", recursive: false },
      );
      this.set((f) => ({
        dirs: { ...f.dirs, [path]: { entries: sortEntries(reply.entries), loading: false, error: null, truncated: reply.truncated } },
      }));
    } catch (error) {
      this.set((f) => ({ dirs: { ...f.dirs, [path]: { entries: [], loading: false, error: words(error), truncated: false } } }));
    }
  }

  toggle(path: string): void {
    const open = !this.state.expanded[path];
    this.set((f) => ({ expanded: { ...f.expanded, [path]: open } }));
    if (open) void this.list(path);
  }

  async open(path: string): Promise<void> {
    this.set(() => ({
      open: { path, content: "", isBinary: false, truncated: false, size: 0, loading: true, error: null, changedOnDisk: false, version: 0, draft: null, saving: false },
    }));
    await this.reload(path);
  }

  close(): void {
    this.set(() => ({ open: null }));
  }

  private async reload(path: string): Promise<void> {
    try {
      const reply = await this.socket.fs<Extract<FsReply, { type: "file_content" }>>({ action: "read", path, max_bytes: MAX_READ });
      this.setOpen((o) => (o.path !== path ? {} : {
        content: reply.content, isBinary: reply.is_binary, truncated: reply.truncated, size: reply.size,
        loading: false, error: null, changedOnDisk: false, version: o.version + 1,
      }));
    } catch (error) {
      this.setOpen((o) => (o.path !== path ? {} : { loading: false, error: words(error) }));
    }
  }

  /** A change on disk: refresh listings of touched directories and the open file. */
  onEvent(event: FsEvent | FsError): void {
    if (event.type === "error") {
      this.set(() => ({ watching: false, error: `Live updates stopped: ${event.message}` }));
      return;
    }
    const { dirs, open } = this.state;
    const touched = event.kind === "overflow" ? Object.keys(dirs) : event.paths.map(parentOf);
    for (const path of touched) if (dirs[path]) this.stale.add(path);
    if (open && (event.kind === "overflow" || event.paths.includes(open.path))) this.openStale = true;
    if (!this.timer) this.timer = setTimeout(() => this.refresh(), SETTLE_MS);
  }

  private refresh(): void {
    this.timer = null;
    for (const path of this.stale) void this.list(path);
    this.stale.clear();
    const open = this.state.open;
    if (!this.openStale || !open) return;
    this.openStale = false;
    if (open.draft !== null) this.setOpen(() => ({ changedOnDisk: true }));
    else void this.reload(open.path);
  }

  edit(): void {
    this.setOpen((o) => ({ draft: o.content }));
  }

  changeDraft(text: string): void {
    this.setOpen(() => ({ draft: text }));
  }

  discard(): void {
    const open = this.state.open;
    this.setOpen(() => ({ draft: null }));
    if (open?.changedOnDisk) void this.reload(open.path);
  }

  async save(): Promise<void> {
    const open = this.state.open;
    if (!open || open.draft === null) return;
    const content = open.draft;
    this.setOpen(() => ({ saving: true, error: null }));
    try {
      await this.socket.fs({ action: "write", path: open.path, content });
      this.setOpen(() => ({ saving: false, draft: null, content, changedOnDisk: false }));
    } catch (error) {
      this.setOpen(() => ({ saving: false, error: `Not saved: ${words(error)}` }));
    }
  }

  /** Adds the open file to the next prompt (as an embedded resource). */
  attach(root: string): void {
    const open = this.state.open;
    if (!open || open.isBinary) return;
    const absolute = `${root.replace(/\/$/, "")}/${open.path}`;
    const uri = `file://${absolute.split("/").map(encodeURIComponent).join("/")}`;
    const text = open.draft ?? open.content;
    // On a narrow screen the files cover the chat: go back to it.
    const narrow = window.matchMedia("(max-width: 1099px)").matches;
    this.store.set((s) => ({
      attachments: [...s.attachments.filter((a) => a.path !== open.path), { path: open.path, uri, text }],
      panel: narrow ? null : s.panel,
    }));
  }

  detach(path: string): void {
    this.store.set((s) => ({ attachments: s.attachments.filter((a) => a.path !== path) }));
  }
}
