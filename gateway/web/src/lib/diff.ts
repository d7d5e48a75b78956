// Line diffs of a tool call's `diff` content (old text → new text), shown
// as unified hunks with a few lines of context. Myers' O(ND) algorithm;
// past a bound of edits it gives up on alignment and shows the whole old
// text removed and the new one added, which is still correct.

export type DiffLine = { op: " " | "+" | "-"; text: string; old: number | null; new: number | null };
export type Hunk = { lines: DiffLine[] } | { skipped: number };

const MAX_EDITS = 2000;
const CONTEXT = 3;

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The edit script from `a` to `b` as a list of operations. */
function myers(a: string[], b: string[]): ("=" | "-" | "+")[] | null {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDITS);
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1]) ? v[offset + k + 1] : v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) {
        trace.push(next);
        return backtrack(trace, n, m, offset);
      }
    }
    v = next;
  }
  return null;
}

function backtrack(trace: Int32Array[], n: number, m: number, offset: number): ("=" | "-" | "+")[] {
  const ops: ("=" | "-" | "+")[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 2; d >= 0; d--) {
    const v = trace[d];
    const k = x - y;
    const prevK = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1]) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : v[offset + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push("=");
      x--;
      y--;
    }
    if (d > 0) ops.push(x === prevX ? "+" : "-");
    x = prevX;
    y = prevY;
  }
  while (x > 0 && y > 0) {
    ops.push("=");
    x--;
    y--;
  }
  return ops.reverse();
}

export function diffLines(oldText: string, newText: string): DiffLine[] {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const ops = myers(a, b) ?? [...a.map(() => "-" as const), ...b.map(() => "+" as const)];
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  for (const op of ops) {
    if (op === "=") out.push({ op: " ", text: a[i++], old: i, new: ++j });
    else if (op === "-") out.push({ op: "-", text: a[i++], old: i, new: null });
    else out.push({ op: "+", text: b[j++], old: null, new: j });
  }
  return out;
}

/** Changed lines with `CONTEXT` lines around them; long unchanged runs folded. */
export function hunks(lines: DiffLine[]): Hunk[] {
  const keep = lines.map(() => false);
  lines.forEach((line, i) => {
    if (line.op === " ") return;
    for (let j = Math.max(0, i - CONTEXT); j <= Math.min(lines.length - 1, i + CONTEXT); j++) keep[j] = true;
  });
  const out: Hunk[] = [];
  let skipped = 0;
  let current: DiffLine[] = [];
  lines.forEach((line, i) => {
    if (keep[i]) {
      if (skipped) out.push({ skipped });
      skipped = 0;
      current.push(line);
    } else {
      if (current.length) out.push({ lines: current });
      current = [];
      skipped++;
    }
  });
  if (current.length) out.push({ lines: current });
  if (skipped) out.push({ skipped });
  return out;
}

export function diffStats(lines: DiffLine[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const line of lines) {
    if (line.op === "+") added++;
    else if (line.op === "-") removed++;
  }
  return { added, removed };
}
