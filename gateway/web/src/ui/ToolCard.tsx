// A tool call as a card: status, title, kind, duration, the exit code of a
// command; unfolded, its arguments, its output, the diff of a file edit, and
// while it waits, the permission question (allow once / always / reject).

import type { VNode } from "preact";
import { memo } from "../lib/memo";
import { useMemo, useState } from "preact/hooks";
import { type DiffLine, diffLines, diffStats, hunks } from "../lib/diff";
import { duration as formatDuration } from "../lib/format";
import type { ToolContent } from "../lib/protocol";
import { type ToolItem, duration } from "../lib/transcript";

const STATUS_WORDS: Record<string, string> = {
  pending: "waiting", in_progress: "running", completed: "done", failed: "failed",
};

function exitCode(item: ToolItem): number | null {
  const raw = item.rawOutput as { exit_code?: unknown } | null | undefined;
  if (raw && typeof raw === "object" && typeof raw.exit_code === "number") return raw.exit_code;
  for (const c of item.content) {
    if (c.type === "content" && c.content.type === "text") {
      const m = /^exit code: (-?\d+)/m.exec(c.content.text);
      if (m) return parseInt(m[1], 10);
    }
  }
  return null;
}

function pretty(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function DiffView({ path, oldText, newText }: { path: string; oldText: string | null; newText: string }): VNode {
  const lines = useMemo(() => diffLines(oldText ?? "", newText), [oldText, newText]);
  const stats = diffStats(lines);
  const sign = (line: DiffLine) => (line.op === "+" ? "add" : line.op === "-" ? "del" : "ctx");
  return (
    <div class="diff" data-path={path}>
      <div class="diff-head">
        <span class="path">{path}</span>
        {oldText === null || oldText === undefined ? <span class="badge">new file</span> : null}
        <span class="add">+{stats.added}</span> <span class="del">−{stats.removed}</span>
      </div>
      <pre>
        {hunks(lines).map((hunk, h) =>
          "skipped" in hunk ? (
            <div key={h} class="diff-skip">⋯ {hunk.skipped} unchanged line{hunk.skipped === 1 ? "" : "s"}</div>
          ) : (
            hunk.lines.map((line, i) => (
              <div key={`${h}-${i}`} class={`diff-line ${sign(line)}`}>
                <span class="ln">{line.old ?? ""}</span>
                <span class="ln">{line.new ?? ""}</span>
                <span class="op">{line.op}</span>
                <span class="text">{line.text}</span>
              </div>
            ))
          ),
        )}
      </pre>
    </div>
  );
}

function Output({ content }: { content: ToolContent }): VNode | null {
  if (content.type === "diff") return <DiffView path={content.path} oldText={content.oldText ?? null} newText={content.newText} />;
  if (content.type === "content" && content.content.type === "text") {
    return <pre class="tool-output">{content.content.text}</pre>;
  }
  if (content.type === "terminal") return <pre class="tool-output">(output in terminal {content.terminalId})</pre>;
  return null;
}

interface Props {
  item: ToolItem;
  onAnswer: (requestId: string | number, optionId: string, label: string) => void;
}

export const ToolCard = memo(function ToolCard({ item, onAnswer }: Props): VNode {
  const [unfolded, setUnfolded] = useState<boolean | null>(null);
  const hasDiff = item.content.some((c) => c.type === "diff");
  const open = unfolded ?? (item.question !== null || hasDiff || item.status === "failed");
  const took = duration(item);
  const code = exitCode(item);
  const input = pretty(item.rawInput);
  return (
    <div class={`tool-card status-${item.status}`} data-tool-id={item.id} data-status={item.status}>
      <button type="button" class="tool-head" aria-expanded={open} onClick={() => setUnfolded(!open)}>
        <span class={`tool-icon ${item.status}`} aria-hidden="true" />
        <span class="tool-title">{item.title}</span>
        <span class="tool-kind">{item.toolKind}</span>
        {code !== null && <span class={`badge ${code === 0 ? "ok" : "bad"}`} title="exit code">exit {code}</span>}
        {took !== null && <span class="tool-time">{formatDuration(took)}</span>}
        <span class="tool-status">{STATUS_WORDS[item.status] ?? item.status}</span>
      </button>
      {item.question && (
        <div class="permission" role="group" aria-label="Permission">
          <span>Allow <strong>{item.title}</strong>?</span>
          <div class="choices">
            {item.question.options.map((option) => (
              <button
                key={option.optionId}
                type="button"
                class={option.kind.startsWith("allow") ? "primary" : "danger"}
                data-option={option.optionId}
                onClick={() => onAnswer(item.question!.requestId, option.optionId, option.name)}
              >
                {option.name}
              </button>
            ))}
          </div>
        </div>
      )}
      {item.answer && !item.question && <div class="answered">{item.answer}</div>}
      {open && (
        <div class="tool-body">
          {input && (
            <section>
              <h4>Arguments</h4>
              <pre class="tool-input">{input}</pre>
            </section>
          )}
          {item.content.length > 0 && (
            <section>
              <h4>Result</h4>
              {item.content.map((c, i) => <Output key={i} content={c} />)}
            </section>
          )}
        </div>
      )}
    </div>
  );
});
