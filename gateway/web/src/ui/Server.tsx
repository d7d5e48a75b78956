// The server: readiness of each service, the sandbox, models, MCP servers
// with their state, and every tool a session gets.

import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Client } from "../lib/client";
import type { McpServers, Readiness, Tools } from "../lib/protocol";
import { useStore } from "../lib/store";

interface Loaded { ready: Readiness | string; mcp: McpServers | string; tools: Tools | string }

export function ServerPanel({ client }: { client: Client }): VNode {
  const config = useStore(client.store, (s) => s.config);
  const models = useStore(client.store, (s) => s.models);
  const agent = useStore(client.store, (s) => s.agent);
  const [data, setData] = useState<Loaded | null>(null);

  const load = async () => {
    const get = <T,>(path: string) => client.api.get<T>(path).catch((e: Error) => e.message);
    // /readyz answers 503 with a body when a backend is down: read it either way.
    const ready = fetch("/readyz", { cache: "no-store" })
      .then((r) => r.json() as Promise<Readiness>)
      .catch(() => "The server cannot be reached.");
    const [r, mcp, tools] = await Promise.all([ready, get<McpServers>("/api/mcp-servers"), get<Tools>("/api/tools")]);
    setData({ ready: r, mcp, tools });
  };
  useEffect(() => void load(), []);

  return (
    <aside class="side-panel server" aria-label="Server">
      <div class="panel-head">
        <h2>Server</h2>
        <button type="button" class="link" onClick={() => void load()}>refresh</button>
        <button type="button" class="link" aria-label="Close server panel" onClick={() => client.setPanel(null)}>×</button>
      </div>
      <div class="panel-body">
        <section>
          <h3>Health</h3>
          {!data ? <p class="muted">Checking…</p> : typeof data.ready === "string" ? <p class="error-line">{data.ready}</p> : (
            <ul class="kv" data-ready={data.ready.status}>
              <li><span>status</span><strong class={data.ready.status === "ready" ? "ok" : "bad"}>{data.ready.status}</strong></li>
              {Object.entries(data.ready.backends).map(([name, state]) => (
                <li key={name}><span>{name}</span><span class={state === "ok" ? "ok" : "bad"}>{state}</span></li>
              ))}
            </ul>
          )}
          {agent?.agentInfo && <p class="muted small">{agent.agentInfo.title ?? agent.agentInfo.name} {agent.agentInfo.version}</p>}
          {config?.sandbox && <p class="muted small">Sandbox: {config.sandbox.detail || config.sandbox.confinement}</p>}
        </section>
        <section>
          <h3>Models</h3>
          <ul class="kv">
            {models?.providers.map((p) => (
              <li key={p.provider}><span>{p.provider}{p.provider === models.default_provider ? " (default)" : ""}</span><span>{[p.default_model, ...p.models.filter((m) => m !== p.default_model)].join(", ")}</span></li>
            ))}
          </ul>
        </section>
        <section>
          <h3>MCP servers</h3>
          {!data ? null : typeof data.mcp === "string" ? <p class="error-line">{data.mcp}</p> : data.mcp.servers.length === 0 ? (
            <p class="muted small">None configured.</p>
          ) : (
            <ul class="kv">
              {data.mcp.servers.map((s) => (
                <li key={s.name}>
                  <span>{s.name}</span>
                  <span class={s.state === "connected" ? "ok" : s.state === "failed" ? "bad" : ""}>
                    {s.state} · {s.tool_count} tools{s.error ? ` — ${s.error}` : ""}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section>
          <h3>Tools</h3>
          {!data ? null : typeof data.tools === "string" ? <p class="error-line">{data.tools}</p> : (
            <ul class="tools">
              {data.tools.tools.map((t) => (
                <li key={t.name} title={t.description}>
                  <code>{t.name}</code> <span class="badge">{t.kind}</span> <span class="muted small">{t.source}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
    </aside>
  );
}
