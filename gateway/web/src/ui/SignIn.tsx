// Sign-in with the server's bearer token (server.auth_tokens). The token is
// kept in sessionStorage: it lasts for this tab and is gone when it closes.
// Whatever issues the token (a configured one today, an identity provider
// later) the app only ever holds a bearer token, so another sign-in method
// adds a way to obtain one, not a second way to talk to the server.

import type { VNode } from "preact";
import { useState } from "preact/hooks";
import type { Client } from "../lib/client";
import { useStore } from "../lib/store";

export function SignIn({ client }: { client: Client }): VNode {
  const auth = useStore(client.store, (s) => s.auth);
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    await client.signIn(token);
    setBusy(false);
  };
  if (auth.phase === "checking") return <div class="center muted">Connecting to the server…</div>;
  return (
    <div class="center">
      <form class="dialog sign-in" onSubmit={submit} aria-label="Sign in">
        <h1><span class="logo" aria-hidden="true">◆</span> openheim</h1>
        <p class="muted">This server asks for a token (<code>server.auth_tokens</code>).</p>
        <label>
          Token
          <input
            type="password"
            autocomplete="current-password"
            aria-label="Token"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            autofocus
          />
        </label>
        {auth.error && <p class="error-line" role="alert">{auth.error}</p>}
        <button type="submit" class="primary wide" disabled={busy}>{busy ? "Checking…" : "Sign in"}</button>
        <p class="muted small">Kept in this browser tab only, until it closes.</p>
      </form>
    </div>
  );
}
