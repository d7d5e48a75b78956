// Markdown for the model's answers, rendered straight to Preact elements:
// headings, paragraphs, emphasis, inline code, links, lists (nested, task
// items), block quotes, tables, rules and fenced code with highlighting. No
// HTML string is ever built or parsed, so a model's output cannot inject
// markup; raw HTML in the text shows as text. Links go only to http(s) and
// mailto, and images become links: the page never fetches from elsewhere.
// It re-renders the whole text per streamed chunk, so an unclosed fence or
// emphasis simply shows as it stands until the rest arrives.

import type { ComponentChildren, VNode } from "preact";
import { CodeBlock } from "../ui/Code";

type Block =
  | { t: "p"; text: string }
  | { t: "h"; level: number; text: string }
  | { t: "code"; lang: string; text: string }
  | { t: "quote"; blocks: Block[] }
  | { t: "list"; ordered: boolean; start: number; items: { task: boolean | null; blocks: Block[] }[] }
  | { t: "table"; align: ("left" | "center" | "right" | null)[]; head: string[]; rows: string[][] }
  | { t: "hr" };

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(\s+|$)(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function splitRow(line: string): string[] {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function startsBlock(line: string): boolean {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

export function parseBlocks(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const body: string[] = [];
      i++;
      while (i < lines.length && !(lines[i].trim().startsWith(marker) && lines[i].trim().replace(/[`~]/g, "") === "")) {
        body.push(lines[i]);
        i++;
      }
      i++;
      blocks.push({ t: "code", lang: fence[2].toLowerCase(), text: body.join("\n") });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ t: "h", level: heading[1].length, text: heading[2] ?? "" });
      i++;
      continue;
    }
    if (RULE.test(line)) {
      blocks.push({ t: "hr" });
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body: string[] = [];
      while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
        body.push(QUOTE.exec(lines[i])![1]);
        i++;
      }
      blocks.push({ t: "quote", blocks: parseBlocks(body.join("\n")) });
      continue;
    }
    const item = ITEM.exec(line);
    if (item) {
      i = parseList(lines, i, blocks);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const head = splitRow(line);
      const align = splitRow(lines[i + 1]).map((cell) => {
        const left = cell.startsWith(":");
        const right = cell.endsWith(":");
        return left && right ? "center" : right ? "right" : left ? "left" : null;
      });
      const rows: string[][] = [];
      i += 2;
      while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
        rows.push(splitRow(lines[i]));
        i++;
      }
      blocks.push({ t: "table", align, head, rows });
      continue;
    }
    const para: string[] = [line];
    i++;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
      para.push(lines[i]);
      i++;
    }
    blocks.push({ t: "p", text: para.join("\n") });
  }
  return blocks;
}

/** One list from line `i`; returns the index after it. */
function parseList(lines: string[], start: number, out: Block[]): number {
  const first = ITEM.exec(lines[start])!;
  const ordered = /\d/.test(first[2]);
  const items: { task: boolean | null; blocks: Block[] }[] = [];
  let i = start;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || /\d/.test(m[2]) !== ordered) break;
    const indent = m[1].length + m[2].length + Math.max(1, Math.min(m[3].length, 4));
    const body: string[] = [m[4]];
    i++;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        const following = lines[i + 1];
        if (following !== undefined && following.length - following.trimStart().length >= indent) {
          body.push("");
          i++;
          continue;
        }
        break;
      }
      const leading = next.length - next.trimStart().length;
      if (leading >= indent) body.push(next.slice(indent));
      else if (ITEM.exec(next) || startsBlock(next)) break;
      else body.push(next.trimStart());
      i++;
    }
    const task = /^\[([ xX])\]\s+/.exec(body[0]);
    if (task) body[0] = body[0].slice(task[0].length);
    items.push({ task: task ? task[1] !== " " : null, blocks: parseBlocks(body.join("\n")) });
    while (i < lines.length && !lines[i].trim()) {
      const after = lines[i + 1];
      if (after === undefined || !ITEM.exec(after)) break;
      i++;
    }
  }
  out.push({ t: "list", ordered, start: ordered ? parseInt(first[2], 10) : 1, items });
  return i;
}

// ---- inline ----

const SAFE_URL = /^(https?:|mailto:)/i;
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|!?\[([^\]\n]*)\]\(\s*<?((?:[^()\s<>]|\([^()\s]*\))*)>?(?:\s+"[^"]*")?\s*\)|<(https?:\/\/[^>\s]+)>|(https?:\/\/[^\s<]*[^\s<.,;:!?)\]'"])|(\*\*|__)(?=\S)([\s\S]*?\S)\7|(\*|_)(?=[^\s*_])([\s\S]*?[^\s\\])\9(?![A-Za-z0-9])|~~(?=\S)([\s\S]*?\S)~~|( {2,}|\\)\n/g;

function link(href: string, children: ComponentChildren, key: number): VNode {
  if (!SAFE_URL.test(href)) return <span key={key}>{children}</span>;
  return <a key={key} href={href} target="_blank" rel="noopener noreferrer nofollow">{children}</a>;
}

export function inline(text: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let at = 0;
  let n = 0;
  const re = new RegExp(INLINE.source, "g");
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    at = m.index + m[0].length;
    n++;
    if (m[1] !== undefined) {
      out.push(<code key={n}>{m[2].replace(/^ (.*) $/, "$1")}</code>);
    } else if (m[3] !== undefined) {
      const label = m[0].startsWith("!") ? `image: ${m[3] || m[4]}` : m[3];
      out.push(link(m[4], inline(label), n));
    } else if (m[5] !== undefined) {
      out.push(link(m[5], m[5], n));
    } else if (m[6] !== undefined) {
      out.push(link(m[6], m[6], n));
    } else if (m[8] !== undefined) {
      out.push(<strong key={n}>{inline(m[8])}</strong>);
    } else if (m[10] !== undefined) {
      out.push(<em key={n}>{inline(m[10])}</em>);
    } else if (m[11] !== undefined) {
      out.push(<del key={n}>{inline(m[11])}</del>);
    } else {
      out.push(<br key={n} />);
    }
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

function renderBlock(block: Block, key: number): VNode {
  switch (block.t) {
    case "p":
      return <p key={key}>{inline(block.text)}</p>;
    case "h": {
      const Tag = `h${Math.min(block.level + 2, 6)}` as "h3";
      return <Tag key={key}>{inline(block.text)}</Tag>;
    }
    case "code":
      return <CodeBlock key={key} lang={block.lang} code={block.text} />;
    case "quote":
      return <blockquote key={key}>{block.blocks.map(renderBlock)}</blockquote>;
    case "hr":
      return <hr key={key} />;
    case "table":
      return (
        <div class="table-wrap" key={key}>
          <table>
            <thead>
              <tr>{block.head.map((cell, i) => <th key={i} class={block.align[i] ? `a-${block.align[i]}` : undefined}>{inline(cell)}</th>)}</tr>
            </thead>
            <tbody>
              {block.rows.map((row, r) => (
                <tr key={r}>{block.head.map((_, i) => <td key={i} class={block.align[i] ? `a-${block.align[i]}` : undefined}>{inline(row[i] ?? "")}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </div>
      );
    case "list": {
      const items = block.items.map((item, i) => {
        const tight = item.blocks.length === 1 && item.blocks[0].t === "p";
        const body = tight ? inline((item.blocks[0] as { text: string }).text) : item.blocks.map(renderBlock);
        return (
          <li key={i} class={item.task === null ? undefined : "task"}>
            {item.task !== null && <input type="checkbox" checked={item.task} disabled aria-label={item.task ? "done" : "to do"} />}
            {body}
          </li>
        );
      });
      return block.ordered ? <ol key={key} start={block.start}>{items}</ol> : <ul key={key}>{items}</ul>;
    }
  }
}

export function Markdown({ text }: { text: string }): VNode {
  return <div class="md">{parseBlocks(text).map(renderBlock)}</div>;
}
