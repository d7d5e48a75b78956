// Unit tests of the app's pure logic, run with node's test runner
// (`npm test`, and tests/tests/e2e/web.rs): the ACP update reducer
// (every update kind the UI renders, including those the server does not
// send yet), diffs, the highlighter, the markdown parser and the store. The modules are
// TypeScript, so they are bundled with esbuild first.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "openheim-web-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));
await build({
  stdin: {
    contents: `
      export * from "./src/lib/transcript.ts";
      export { diffLines, hunks, diffStats } from "./src/lib/diff.ts";
      export { highlight, languageOf } from "./src/lib/highlight.ts";
      export { parseBlocks, inline } from "./src/lib/markdown.tsx";
      export { Store, follow } from "./src/lib/store.ts";`,
    resolveDir: root,
    loader: "ts",
  },
  bundle: true,
  format: "esm",
  platform: "node",
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: join(dir, "lib.mjs"),
  logLevel: "error",
});
const lib = await import(join(dir, "lib.mjs"));

const view = () => lib.emptyView("s1", "/w", "");
const apply = (v, updates, now = 1000) => updates.reduce((acc, u) => lib.applyUpdate(acc, u, now), v);
const text = (t) => ({ type: "text", text: t });

describe("the update reducer", () => {
  test("streamed chunks join into one message; thinking is kept apart", () => {
    const v = apply(view(), [
      { sessionUpdate: "agent_thought_chunk", content: text("Let me ") },
      { sessionUpdate: "agent_thought_chunk", content: text("think.") },
      { sessionUpdate: "agent_message_chunk", content: text("Hel") },
      { sessionUpdate: "agent_message_chunk", content: text("lo") },
    ]);
    assert.deepEqual(v.items.map((i) => [i.kind, i.text]), [["thought", "Let me think."], ["agent", "Hello"]]);
  });

  test("a tool call is one card updated in place, with its diff, output and time", () => {
    let v = lib.applyUpdate(view(), {
      sessionUpdate: "tool_call", toolCallId: "c1", title: "write_file a.txt", kind: "edit", status: "pending",
      rawInput: { path: "a.txt" }, locations: [{ path: "/w/a.txt" }],
    }, 1000);
    v = lib.applyUpdate(v, { sessionUpdate: "tool_call_update", toolCallId: "c1", status: "in_progress" }, 1500);
    v = lib.applyUpdate(v, {
      sessionUpdate: "tool_call_update", toolCallId: "c1", status: "completed",
      content: [{ type: "content", content: text("Wrote 3 bytes") }, { type: "diff", path: "/w/a.txt", oldText: "a\n", newText: "a\nb\n" }],
      rawOutput: { bytes: 3 },
    }, 1750);
    assert.equal(v.items.length, 1);
    const card = v.items[0];
    assert.equal(card.status, "completed");
    assert.equal(card.title, "write_file a.txt");
    assert.deepEqual(card.locations, ["/w/a.txt"]);
    assert.equal(card.content[1].type, "diff");
    assert.deepEqual(card.rawOutput, { bytes: 3 });
    assert.equal(lib.duration(card), 250, "from running to done, not counting the wait for permission");
  });

  test("replayed calls have no duration", () => {
    const v = apply(view(), [
      { sessionUpdate: "tool_call", toolCallId: "c1", title: "ls", status: "pending" },
      { sessionUpdate: "tool_call_update", toolCallId: "c1", status: "completed" },
    ], null);
    assert.equal(lib.duration(v.items[0]), null);
  });

  test("plan, usage and cost, mode, title, commands, notices and compaction", () => {
    const v = apply(view(), [
      { sessionUpdate: "plan", entries: [{ content: "read", priority: "high", status: "completed" }, { content: "edit", priority: "medium", status: "in_progress" }] },
      { sessionUpdate: "usage_update", used: 1200, size: 128000, cost: { amount: 0.0123, currency: "USD" } },
      { sessionUpdate: "current_mode_update", currentModeId: "read-only" },
      { sessionUpdate: "session_info_update", title: "Fix the parser" },
      { sessionUpdate: "available_commands_update", availableCommands: [{ name: "review", description: "Review the diff" }] },
      { sessionUpdate: "notice", severity: "warning", title: "overloaded; retrying in 500 ms (attempt 1)" },
      { sessionUpdate: "compaction_update", compactionId: "k1", status: "completed" },
      { sessionUpdate: "some_future_update", whatever: true },
    ]);
    assert.deepEqual(v.plan.map((e) => e.status), ["completed", "in_progress"]);
    assert.deepEqual(v.usage, { used: 1200, size: 128000, cost: { amount: 0.0123, currency: "USD" } });
    assert.equal(v.modes.currentModeId, "read-only");
    assert.equal(v.title, "Fix the parser");
    assert.equal(v.commands[0].name, "review");
    assert.deepEqual(v.items.map((i) => [i.kind, i.title]), [
      ["notice", "overloaded; retrying in 500 ms (attempt 1)"],
      ["notice", "Context compaction completed"],
    ]);
  });

  test("a permission question sits on its card until answered", () => {
    let v = lib.askPermission(view(), 7, { toolCallId: "c1", title: "rm x", status: "pending" },
      [{ optionId: "allow_once", name: "Allow once", kind: "allow_once" }], 1000);
    assert.deepEqual(lib.openQuestions(v), [7]);
    v = lib.settlePermission(v, 7, "Allow once");
    assert.deepEqual(lib.openQuestions(v), []);
    assert.equal(v.items[0].answer, "Allow once");
  });

  test("stop reasons other than end_turn are shown in words", () => {
    assert.equal(lib.addStop(view(), "end_turn").items.length, 0);
    assert.equal(lib.stopWords("cancelled"), "Cancelled.");
    assert.match(lib.stopWords("max_turn_requests"), /max_iterations/);
  });
});

describe("diffs", () => {
  test("one line added between context lines", () => {
    const lines = lib.diffLines("a\nb\nc\n", "a\nb\nx\nc\n");
    assert.deepEqual(lines.map((l) => l.op + l.text), [" a", " b", "+x", " c"]);
    assert.deepEqual(lib.diffStats(lines), { added: 1, removed: 0 });
  });

  test("a change in a long file is shown with context, the rest folded", () => {
    const old = Array.from({ length: 40 }, (_, i) => `line ${i}`).join("\n");
    const changed = old.replace("line 20", "line twenty");
    const hunks = lib.hunks(lib.diffLines(old, changed));
    assert.deepEqual(hunks.map((h) => ("skipped" in h ? h.skipped : h.lines.length)), [17, 8, 16]);
  });

  test("a new file is all additions; an emptied one all removals", () => {
    assert.deepEqual(lib.diffStats(lib.diffLines("", "a\nb\n")), { added: 2, removed: 0 });
    assert.deepEqual(lib.diffStats(lib.diffLines("a\nb\n", "")), { added: 0, removed: 2 });
  });

  test("inputs past the edit bound fall back to remove-all, add-all, still correct", () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`).join("\n");
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`).join("\n");
    const lines = lib.diffLines(a, b);
    assert.deepEqual(lib.diffStats(lines), { added: 3000, removed: 3000 });
  });

  test("random edits: applying the diff gives the new text", () => {
    let seed = 42;
    const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let round = 0; round < 200; round++) {
      const a = Array.from({ length: rand(30) }, () => `l${rand(6)}`);
      const b = Array.from({ length: rand(30) }, () => `l${rand(6)}`);
      const lines = lib.diffLines(a.join("\n"), b.join("\n"));
      assert.deepEqual(lines.filter((l) => l.op !== "+").map((l) => l.text), a);
      assert.deepEqual(lines.filter((l) => l.op !== "-").map((l) => l.text), b);
    }
  });
});

describe("highlighting", () => {
  test("keywords, strings, comments and numbers of Rust", () => {
    const tokens = lib.highlight('fn main() { let x = "s"; // note\n 42 }', "rust");
    const classes = Object.fromEntries(tokens.filter(([c]) => c).map(([c, t]) => [t.trim(), c]));
    assert.equal(classes.fn, "kw");
    assert.equal(classes.let, "kw");
    assert.equal(classes['"s"'], "str");
    assert.equal(classes["// note"], "com");
    assert.equal(classes["42"], "num");
  });

  test("tokens always add up to the input, in every language", () => {
    const samples = ['x = "a\\"b" # c', "SELECT * FROM t -- x", "<a href='x'>y</a>", "{\"k\": [1, true]}", "a: b # c\n[x]", "`t ${x}`", "/* open"];
    for (const lang of ["rust", "js", "python", "shell", "sql", "html", "json", "toml", "css", "go", "c", "nope"]) {
      for (const code of samples) assert.equal(lib.highlight(code, lang).map(([, t]) => t).join(""), code, `${lang}: ${code}`);
    }
  });

  test("languages from file names", () => {
    assert.equal(lib.languageOf("src/main.rs"), "rust");
    assert.equal(lib.languageOf("a/b.tsx"), "js");
    assert.equal(lib.languageOf("Makefile"), "makefile");
    assert.equal(lib.languageOf("README"), "");
  });
});

describe("markdown", () => {
  test("blocks: heading, list with a nested list, table, quote, fence", () => {
    const blocks = lib.parseBlocks("# T\n\n- a\n  - b\n- c\n\n| x | y |\n|---|--:|\n| 1 | 2 |\n\n> q\n\n```js\nlet a;\n```");
    assert.deepEqual(blocks.map((b) => b.t), ["h", "list", "table", "quote", "code"]);
    assert.equal(blocks[1].items.length, 2);
    assert.equal(blocks[1].items[0].blocks[1].t, "list");
    assert.deepEqual(blocks[2].align, [null, "right"]);
    assert.equal(blocks[4].lang, "js");
  });

  test("a fence still open while streaming is a code block of what arrived", () => {
    const blocks = lib.parseBlocks("Look:\n\n```rust\nfn main() {");
    assert.deepEqual(blocks.map((b) => b.t), ["p", "code"]);
    assert.equal(blocks[1].text, "fn main() {");
  });

  test("inline: links only to http(s) and mailto; markup stays text", () => {
    const parts = lib.inline("[a](javascript:alert(1)) [b](https://x.y) <b>c</b> **d**");
    const kinds = parts.map((p) => (typeof p === "string" ? p : p.type));
    assert.deepEqual(kinds, ["span", " ", "a", " <b>c</b> ", "strong"]);
    assert.equal(parts[2].props.href, "https://x.y");
    const wiki = lib.inline("[w](https://en.wikipedia.org/wiki/Rust_(language)).");
    assert.equal(wiki[0].props.href, "https://en.wikipedia.org/wiki/Rust_(language)");
    assert.equal(wiki[1], ".");
  });
});

describe("the store", () => {
  const settled = () => new Promise((resolve) => setTimeout(resolve, 40));

  test("a change between a render and its subscription is not missed", async () => {
    const store = new lib.Store({ agent: null, other: 0 });
    // A component renders the slice, then subscribes later (after paint).
    const rendered = { select: (s) => s.agent, selected: store.get().agent };
    store.set({ agent: "ready" });
    await settled(); // its notification went out before anyone listened
    let changes = 0;
    const stop = lib.follow(store, () => rendered, () => { changes += 1; });
    assert.equal(changes, 1, "the missed change is caught at subscription");
    rendered.selected = "ready"; // the re-render
    store.set({ other: 1 });
    await settled();
    assert.equal(changes, 1, "a change to another slice does not re-render");
    store.set({ agent: "gone" });
    await settled();
    assert.equal(changes, 2);
    stop();
    store.set({ agent: "again" });
    await settled();
    assert.equal(changes, 2, "no calls after unsubscribing");
  });

  test("a burst of changes is announced once", async () => {
    const store = new lib.Store({ n: 0 });
    let heard = 0;
    store.subscribe(() => { heard += 1; });
    for (let i = 1; i <= 50; i++) store.set((s) => ({ n: s.n + 1 }));
    assert.equal(store.get().n, 50, "changes apply at once");
    await settled();
    assert.equal(heard, 1);
  });
});
