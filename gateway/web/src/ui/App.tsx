// The page: sign-in, or the sidebar, the chat and a side panel (files or
// server), with the global keyboard shortcuts.

import type { VNode } from "preact";
import { useEffect } from "preact/hooks";
import type { Client } from "../lib/client";
import { useStore } from "../lib/store";
import { Chat } from "./Chat";
import { FilesPanel } from "./Files";
import { NewSession } from "./NewSession";
import { ServerPanel } from "./Server";
import { Sidebar } from "./Sidebar";
import { SignIn } from "./SignIn";

function Shortcuts({ client }: { client: Client }): null {
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (mod && event.shiftKey && key === "o") {
        event.preventDefault();
        client.showNewSession(true);
      } else if (mod && !event.shiftKey && key === "k") {
        event.preventDefault();
        client.toggleSidebar(true);
        window.dispatchEvent(new Event("openheim:search"));
      } else if (event.key === "Escape") {
        const s = client.store.get();
        if (s.newSession) client.showNewSession(false);
        else if (s.current && s.views[s.current]?.running) client.cancel();
        else if (s.sidebar) client.toggleSidebar(false);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [client]);
  return null;
}

function Banner({ client }: { client: Client }): VNode | null {
  const banner = useStore(client.store, (s) => s.banner);
  if (!banner) return null;
  return (
    <div class="banner" role="alert">
      <span>{banner}</span>
      <button type="button" class="link" aria-label="Dismiss" onClick={() => client.dismissBanner()}>×</button>
    </div>
  );
}

export function App({ client }: { client: Client }): VNode {
  const phase = useStore(client.store, (s) => s.auth.phase);
  const panel = useStore(client.store, (s) => s.panel);
  const newSession = useStore(client.store, (s) => s.newSession);
  const sidebar = useStore(client.store, (s) => s.sidebar);
  if (phase !== "signed-in") return <SignIn client={client} />;
  return (
    <div class={`shell${panel ? " with-panel" : ""}`}>
      <Shortcuts client={client} />
      <button type="button" class="menu" aria-label="Sessions" aria-expanded={sidebar} onClick={() => client.toggleSidebar()}>☰</button>
      <Sidebar client={client} />
      {sidebar && <div class="scrim" onClick={() => client.toggleSidebar(false)} />}
      <div class="main">
        <Banner client={client} />
        <Chat client={client} />
      </div>
      {panel === "files" && <FilesPanel client={client} />}
      {panel === "server" && <ServerPanel client={client} />}
      {newSession && <NewSession client={client} />}
    </div>
  );
}
