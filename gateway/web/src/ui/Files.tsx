// The workspace: a tree loaded directory by directory, kept current by the
// server's watch; the open file with highlighting, a simple editor that
// saves it, and "attach to prompt".

import type { VNode } from "preact";
import type { Client } from "../lib/client";
import { bytes } from "../lib/format";
import { languageOf } from "../lib/highlight";
import { useStore } from "../lib/store";
import { CodeView } from "./Code";

function Tree({ client, path, depth }: { client: Client; path: string; depth: number }): VNode {
  const dir = useStore(client.store, (s) => s.files.dirs[path]);
  const expanded = useStore(client.store, (s) => s.files.expanded);
  const openPath = useStore(client.store, (s) => s.files.open?.path);
  if (!dir) return <div class="muted small">…</div>;
  return (
    <ul class="tree" role={depth === 0 ? "tree" : "group"}>
      {dir.error && <li class="error-line">{dir.error}</li>}
      {dir.entries.map((entry) => (
        <li key={entry.path} role="treeitem" aria-expanded={entry.is_dir ? !!expanded[entry.path] : undefined}>
          <button
            type="button"
            class={`entry${entry.path === openPath ? " current" : ""}`}
            data-path={entry.path}
            onClick={() => (entry.is_dir ? client.files.toggle(entry.path) : void client.files.open(entry.path))}
          >
            <span aria-hidden="true">{entry.is_dir ? (expanded[entry.path] ? "▾" : "▸") : "·"}</span> {entry.name}
          </button>
          {entry.is_dir && expanded[entry.path] && <Tree client={client} path={entry.path} depth={depth + 1} />}
        </li>
      ))}
      {dir.truncated && <li class="muted small">(more entries not shown)</li>}
      {!dir.loading && dir.entries.length === 0 && !dir.error && <li class="muted small">empty</li>}
    </ul>
  );
}

function Viewer({ client }: { client: Client }): VNode | null {
  const open = useStore(client.store, (s) => s.files.open);
  if (!open) return null;
  const editing = open.draft !== null;
  return (
    <section class="viewer" aria-label={`File ${open.path}`} data-version={open.version}>
      <div class="viewer-head">
        <strong class="path">{open.path}</strong>
        <span class="muted small">{bytes(open.size)}{open.truncated ? " (shown in part)" : ""}</span>
        <div class="row">
          {!editing && !open.isBinary && !open.truncated && <button type="button" onClick={() => client.files.edit()}>Edit</button>}
          {editing && <button type="button" class="primary" disabled={open.saving} onClick={() => void client.files.save()}>{open.saving ? "Saving…" : "Save"}</button>}
          {editing && <button type="button" onClick={() => client.files.discard()}>Discard</button>}
          {!open.isBinary && <button type="button" onClick={() => client.files.attach(client.workspaceRoot())}>Attach to prompt</button>}
          <button type="button" class="link" aria-label="Close file" onClick={() => client.files.close()}>×</button>
        </div>
      </div>
      {open.changedOnDisk && <div class="notice warning">The file changed on disk while you were editing. Save to overwrite, or discard to load it.</div>}
      {open.error && <div class="error-line" role="alert">{open.error}</div>}
      {open.loading ? (
        <div class="muted">Loading…</div>
      ) : open.isBinary ? (
        <div class="muted">Binary file ({bytes(open.size)}); not shown.</div>
      ) : editing ? (
        <textarea class="editor" aria-label="Edit file" spellcheck={false} value={open.draft ?? ""} onInput={(e) => client.files.changeDraft((e.target as HTMLTextAreaElement).value)} />
      ) : (
        <CodeView code={open.content} lang={languageOf(open.path)} />
      )}
    </section>
  );
}

export function FilesPanel({ client }: { client: Client }): VNode {
  const files = useStore(client.store, (s) => s.files);
  return (
    <aside class="side-panel files" aria-label="Files">
      <div class="panel-head">
        <h2>Files</h2>
        <span class={`badge ${files.watching ? "ok" : ""}`} title="Changes on disk show up live">{files.watching ? "live" : "not watching"}</span>
        <button type="button" class="link" aria-label="Close files" onClick={() => client.setPanel(null)}>×</button>
      </div>
      {files.error && <div class="notice warning">{files.error}</div>}
      <div class="files-body">
        <div class="tree-box"><Tree client={client} path="" depth={0} /></div>
        <Viewer client={client} />
      </div>
    </aside>
  );
}
