// The sessions: newest first in pages, searched by title on the server,
// each showing its directory, model and age; the connection state and the
// settings (theme, sign-out) at the bottom.

import type { VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Client } from "../lib/client";
import { ago, baseName } from "../lib/format";
import { useStore } from "../lib/store";
import { ACCENTS, type Accent, SCHEMES, type Scheme } from "../lib/theme";

function Connection({ client }: { client: Client }): VNode {
  const conn = useStore(client.store, (s) => s.conn);
  // Connected once ACP is initialised on the socket, not when it opens.
  const initialised = useStore(client.store, (s) => s.agent !== null);
  const state = conn.state === "open" && !initialised ? "connecting" : conn.state;
  const words = {
    open: "Connected", connecting: "Connecting…", reconnecting: "Reconnecting…", closed: "Offline",
  }[state];
  return (
    <div class={`conn conn-${state}`} role="status" data-conn={state}>
      <span class="dot" aria-hidden="true" />
      <span>{words}{conn.detail ? ` — ${conn.detail}` : ""}</span>
      {conn.state === "reconnecting" && (
        <button type="button" class="link" onClick={() => client.socket.reconnectNow()}>retry now</button>
      )}
    </div>
  );
}

function Settings({ client }: { client: Client }): VNode {
  const prefs = useStore(client.store, (s) => s.prefs);
  const required = useStore(client.store, (s) => s.auth.required);
  return (
    <details class="settings">
      <summary>Settings</summary>
      <label>
        Theme
        <select aria-label="Theme" value={prefs.accent} onChange={(e) => client.setPreferences({ accent: (e.target as HTMLSelectElement).value as Accent })}>
          {ACCENTS.map((a) => <option key={a} value={a}>{a}</option>)}
        </select>
      </label>
      <label>
        Appearance
        <select aria-label="Appearance" value={prefs.scheme} onChange={(e) => client.setPreferences({ scheme: (e.target as HTMLSelectElement).value as Scheme })}>
          {SCHEMES.map((s) => <option key={s} value={s}>{s === "system" ? "follow the system" : s}</option>)}
        </select>
      </label>
      <p class="muted small">
        Enter send · Shift+Enter new line · Esc cancel · Ctrl+Shift+O new session · Ctrl+K search
      </p>
      {required && <button type="button" onClick={() => client.signOut()}>Sign out</button>}
    </details>
  );
}

export function Sidebar({ client }: { client: Client }): VNode {
  const list = useStore(client.store, (s) => s.list);
  const current = useStore(client.store, (s) => s.current);
  const views = useStore(client.store, (s) => s.views);
  const open = useStore(client.store, (s) => s.sidebar);
  const [query, setQuery] = useState(list.query);
  const search = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const timer = setTimeout(() => {
      if (query !== client.store.get().list.query) client.search(query);
    }, 250);
    return () => clearTimeout(timer);
  }, [query]);

  useEffect(() => {
    const focus = () => search.current?.focus();
    window.addEventListener("openheim:search", focus);
    return () => window.removeEventListener("openheim:search", focus);
  }, []);

  return (
    <nav class={`sidebar${open ? " open" : ""}`} aria-label="Sessions">
      <div class="brand">
        <span class="logo" aria-hidden="true">◆</span> openheim
      </div>
      <button type="button" class="primary wide" onClick={() => client.showNewSession(true)} title="Ctrl+Shift+O">
        + New session
      </button>
      <input
        ref={search}
        type="search"
        placeholder="Search titles…"
        aria-label="Search sessions"
        value={query}
        onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
      />
      <ul class="session-list">
        {list.items.map((s) => {
          const view = views[s.id];
          const waiting = view?.items.some((i) => i.kind === "tool" && i.question);
          return (
            <li key={s.id}>
              <button
                type="button"
                class={`session${s.id === current ? " current" : ""}`}
                aria-current={s.id === current ? "page" : undefined}
                onClick={() => void client.openSession(s.id)}
                data-session={s.id}
              >
                <span class="session-title">{s.title || "Untitled"}</span>
                <span class="session-meta">
                  {view?.running && <span class={`badge ${waiting ? "warn" : "ok"}`}>{waiting ? "asks" : "running"}</span>}
                  {baseName(s.work_dir)} · {ago(s.updated_at_ms)}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {list.error && <p class="error-line" role="alert">{list.error}</p>}
      {!list.loading && list.items.length === 0 && !list.error && (
        <p class="muted small">{list.query ? "No session title matches." : "No sessions yet."}</p>
      )}
      {list.next && (
        <button type="button" class="wide" disabled={list.loading} onClick={() => void client.listSessions(false)}>
          {list.loading ? "Loading…" : "Load more"}
        </button>
      )}
      <div class="sidebar-foot">
        <Connection client={client} />
        <div class="row">
          <button type="button" onClick={() => client.setPanel(client.store.get().panel === "files" ? null : "files")}>Files</button>
          <button type="button" onClick={() => client.setPanel(client.store.get().panel === "server" ? null : "server")}>Server</button>
        </div>
        <Settings client={client} />
      </div>
    </nav>
  );
}
