// The prompt box. What is typed is saved in the browser session as it is
// typed (per session), so a reload, a dropped connection or a refused
// prompt never loses it; it is cleared only once the server has the prompt.
// Enter sends, Shift+Enter starts a new line, Esc cancels the running turn.

import type { VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Attachment } from "../lib/state";
import type { AvailableCommand } from "../lib/protocol";

const draftKey = (session: string | null) => `openheim.draft.${session ?? "new"}`;

function loadDraft(session: string | null): string {
  try {
    return sessionStorage.getItem(draftKey(session)) ?? "";
  } catch {
    return "";
  }
}

function saveDraft(session: string | null, text: string): void {
  try {
    if (text) sessionStorage.setItem(draftKey(session), text);
    else sessionStorage.removeItem(draftKey(session));
  } catch {
    // Storage disabled: the text stays in the box.
  }
}

interface Props {
  session: string | null;
  running: boolean;
  connected: boolean;
  attachments: Attachment[];
  commands: AvailableCommand[];
  onSend: (text: string) => Promise<boolean>;
  onCancel: () => void;
  onDetach: (path: string) => void;
}

export function Composer(props: Props): VNode {
  const { session, running, connected, attachments, commands } = props;
  const [text, setText] = useState(() => loadDraft(session));
  const area = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    setText(loadDraft(session));
    area.current?.focus();
  }, [session]);

  useEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
  }, [text]);

  const change = (value: string) => {
    setText(value);
    saveDraft(session, value);
  };

  const send = async () => {
    const prompt = text.trim();
    if (!prompt || running) return;
    const sent = await props.onSend(prompt);
    if (sent) {
      // The prompt may have created the session: clear both drafts.
      saveDraft(session, "");
      saveDraft(null, "");
      setText("");
    }
  };

  const onKey = (event: KeyboardEvent) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void send();
    } else if (event.key === "Escape" && running) {
      // Handled here; the page-wide Esc would cancel a second time.
      event.preventDefault();
      event.stopPropagation();
      props.onCancel();
    }
  };

  const slash = text.startsWith("/") && !text.includes(" ") && !text.includes("\n");
  const matching = slash ? commands.filter((c) => `/${c.name}`.startsWith(text)) : [];

  return (
    <div class="composer">
      {attachments.length > 0 && (
        <div class="attachments">
          {attachments.map((a) => (
            <span key={a.path} class="chip">
              @{a.path}
              <button type="button" class="link" aria-label={`remove ${a.path}`} onClick={() => props.onDetach(a.path)}>×</button>
            </span>
          ))}
        </div>
      )}
      {matching.length > 0 && (
        <ul class="commands" role="listbox" aria-label="Commands">
          {matching.map((c) => (
            <li key={c.name}>
              <button type="button" onClick={() => change(`/${c.name} `)}>
                <strong>/{c.name}</strong> <span>{c.description}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="composer-row">
        <textarea
          ref={area}
          rows={1}
          value={text}
          placeholder={connected ? "Ask openheim…" : "Reconnecting… you can keep typing"}
          aria-label="Prompt"
          onInput={(e) => change((e.target as HTMLTextAreaElement).value)}
          onKeyDown={onKey}
        />
        {running ? (
          <button type="button" class="danger" onClick={props.onCancel} title="Cancel (Esc)">Cancel</button>
        ) : (
          <button type="button" class="primary" onClick={() => void send()} disabled={!connected || !text.trim()} title="Send (Enter)">
            Send
          </button>
        )}
      </div>
    </div>
  );
}
