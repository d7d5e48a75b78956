// The conversation: the user's prompts, streamed answers (markdown), the
// model's thinking (folded), tool cards, notices, errors and stop reasons.
// It follows the bottom while new output arrives, unless the user scrolled up.

import type { VNode } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { memo } from "../lib/memo";
import { Markdown } from "../lib/markdown";
import type { ContentBlock } from "../lib/protocol";
import { type Item, stopWords } from "../lib/transcript";
import { ToolCard } from "./ToolCard";

/** A file attached to a prompt, as the server stores it (docs/acp.md). */
const CONTEXT = /^<context uri="([^"]*)">\n[\s\S]*\n<\/context>$/;

const fileName = (uri: string): string => decodeURIComponent(uri.split("/").pop() ?? uri);

function UserBlock({ block }: { block: ContentBlock }): VNode | null {
  switch (block.type) {
    case "text": {
      const attached = CONTEXT.exec(block.text);
      if (attached) return <div class="chip" title={attached[1]}>@{fileName(attached[1])}</div>;
      return <div class="user-text">{block.text}</div>;
    }
    case "image":
      return <img class="user-image" alt="attached image" src={`data:${block.mimeType};base64,${block.data}`} />;
    case "resource":
      return <div class="chip" title={block.resource.uri}>@{fileName(block.resource.uri)}</div>;
    case "resource_link":
      return <div class="chip" title={block.uri}>@{block.name}</div>;
    default:
      return null;
  }
}

const Thought = memo(function Thought({ text, live }: { text: string; live: boolean }): VNode {
  return (
    <details class="thought">
      <summary>{live ? "Thinking…" : "Thought"}</summary>
      <div class="thought-text">{text}</div>
    </details>
  );
});

const Answer = memo(function Answer({ text }: { text: string }): VNode {
  return <div class="msg agent"><Markdown text={text} /></div>;
});

interface Props {
  items: Item[];
  running: boolean;
  onAnswer: (requestId: string | number, optionId: string, label: string) => void;
}

export function Transcript({ items, running, onAnswer }: Props): VNode {
  const box = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  });
  const onScroll = () => {
    const el = box.current;
    if (el) pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  };
  const last = items[items.length - 1];
  return (
    <div class="transcript" ref={box} onScroll={onScroll} aria-live="polite">
      {items.map((item) => {
        switch (item.kind) {
          case "user":
            return <div key={item.key} class="msg user">{item.blocks.map((b, i) => <UserBlock key={i} block={b} />)}</div>;
          case "agent":
            return <Answer key={item.key} text={item.text} />;
          case "thought":
            return <Thought key={item.key} text={item.text} live={running && item === last} />;
          case "tool":
            return <ToolCard key={item.key} item={item} onAnswer={onAnswer} />;
          case "notice":
            return (
              <div key={item.key} class={`notice ${item.severity}`} role="status">
                <strong>{item.title}</strong>
                {item.description && <span> — {item.description}</span>}
              </div>
            );
          case "error":
            return <div key={item.key} class="error-line" role="alert">{item.message}</div>;
          case "stop":
            return <div key={item.key} class={`stop ${item.reason}`}>{stopWords(item.reason)}</div>;
        }
      })}
      {running && <div class="working" aria-label="working"><span /><span /><span /></div>}
    </div>
  );
}
