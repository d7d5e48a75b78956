// The chat of the shown session: its header (title, directory, mode and
// model pickers, usage and cost), the plan checklist, the transcript and
// the prompt box. With no session shown, a prompt starts one.

import type { VNode } from "preact";
import { useCallback } from "preact/hooks";
import type { Client } from "../lib/client";
import { money, tokens } from "../lib/format";
import type { ConfigOption, ConfigSelectOption, PlanEntry } from "../lib/protocol";
import { useStore } from "../lib/store";
import type { SessionView, Usage } from "../lib/transcript";
import { Composer } from "./Composer";
import { Transcript } from "./Transcript";

function flatOptions(option: ConfigOption): ConfigSelectOption[] {
  const options = option.options ?? [];
  return options.flatMap((o) => ("group" in o ? o.options : [o]));
}

function Plan({ entries }: { entries: PlanEntry[] }): VNode {
  const done = entries.filter((e) => e.status === "completed").length;
  return (
    <details class="plan" open>
      <summary>Plan · {done}/{entries.length}</summary>
      <ul>
        {entries.map((entry, i) => (
          <li key={i} class={`plan-${entry.status}`}>
            <span class="plan-mark" aria-hidden="true">{entry.status === "completed" ? "✓" : entry.status === "in_progress" ? "▸" : "○"}</span>
            <span>{entry.content}</span>
          </li>
        ))}
      </ul>
    </details>
  );
}

function UsageMeter({ usage }: { usage: Usage }): VNode {
  const cost = usage.cost && <span class="cost">{money(usage.cost.amount, usage.cost.currency)}</span>;
  // A model whose context window is unknown reports size 0: no meter then.
  if (usage.size <= 0) {
    return (
      <div class="usage" title={`${usage.used.toLocaleString()} tokens in context`}>
        <span>{tokens(usage.used)} tokens</span>
        {cost}
      </div>
    );
  }
  const share = Math.min(100, Math.round((usage.used / usage.size) * 100));
  return (
    <div class="usage" title={`${usage.used.toLocaleString()} of ${usage.size.toLocaleString()} tokens in context`}>
      <meter min={0} max={100} value={share} aria-label="context used" />
      <span>{tokens(usage.used)} / {tokens(usage.size)}</span>
      {cost}
    </div>
  );
}

function Header({ client, view }: { client: Client; view: SessionView }): VNode {
  const info = useStore(client.store, (s) => s.list.items.find((i) => i.id === view.id));
  const title = view.title || info?.title || "New session";
  return (
    <header class="chat-head">
      <div class="chat-title">
        <h2 title={title}>{title}</h2>
        <span class="muted" title={view.workDir}>{view.workDir}</span>
        {info && info.skills.length > 0 && <span class="muted">skills: {info.skills.join(", ")}</span>}
      </div>
      <div class="chat-controls">
        {view.modes && view.modes.availableModes.length > 0 && (
          <label class="picker">
            <span>Mode</span>
            <select
              aria-label="Mode"
              value={view.modes.currentModeId}
              disabled={view.running}
              onChange={(e) => void client.setMode((e.target as HTMLSelectElement).value)}
            >
              {view.modes.availableModes.map((m) => <option key={m.id} value={m.id} title={m.description ?? ""}>{m.name}</option>)}
            </select>
          </label>
        )}
        {view.configOptions.filter((o) => o.type === "select").map((option) => (
          <label class="picker" key={option.id}>
            <span>{option.name}</span>
            <select
              aria-label={option.name}
              value={option.currentValue}
              disabled={view.running}
              onChange={(e) => void client.setConfigOption(option.id, (e.target as HTMLSelectElement).value)}
            >
              {flatOptions(option).map((o) => <option key={o.value} value={o.value}>{o.name}</option>)}
            </select>
          </label>
        ))}
        {view.usage && <UsageMeter usage={view.usage} />}
      </div>
    </header>
  );
}

export function Chat({ client }: { client: Client }): VNode {
  const current = useStore(client.store, (s) => s.current);
  const view = useStore(client.store, (s) => (s.current ? s.views[s.current] : undefined));
  const connected = useStore(client.store, (s) => s.conn.state === "open" && s.agent !== null);
  const attachments = useStore(client.store, (s) => s.attachments);
  const onAnswer = useCallback(
    (requestId: string | number, optionId: string, label: string) => {
      const id = client.store.get().current;
      if (id) client.answerPermission(id, requestId, optionId, label);
    },
    [client],
  );
  const send = useCallback((text: string) => client.prompt(text), [client]);
  const cancel = useCallback(() => client.cancel(), [client]);
  const detach = useCallback((path: string) => client.files.detach(path), [client]);
  return (
    <main class="chat">
      {view ? (
        <>
          <Header client={client} view={view} />
          {view.loading && <div class="loading">Loading the conversation…</div>}
          <Transcript items={view.items} running={view.running} onAnswer={onAnswer} />
          {view.plan && view.plan.length > 0 && <Plan entries={view.plan} />}
        </>
      ) : (
        <div class="empty">
          <h2>What should openheim do?</h2>
          <p class="muted">
            A prompt starts a session in <code>{client.workspaceRoot() || "the server's workspace"}</code>; use
            <strong> New session</strong> to pick a directory, model or skills.
          </p>
        </div>
      )}
      <Composer
        session={current}
        running={view?.running ?? false}
        connected={connected}
        attachments={attachments}
        commands={view?.commands ?? []}
        onSend={send}
        onCancel={cancel}
        onDetach={detach}
      />
    </main>
  );
}
