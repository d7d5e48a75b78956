// Highlighted code: blocks in answers (with a copy button) and the file
// viewer (with line numbers). Tokens become spans; text stays text.

import type { VNode } from "preact";
import { useMemo, useState } from "preact/hooks";
import { highlight } from "../lib/highlight";

function Tokens({ code, lang }: { code: string; lang: string }): VNode {
  const tokens = useMemo(() => highlight(code, lang), [code, lang]);
  return <>{tokens.map(([cls, text], i) => (cls ? <span key={i} class={`t-${cls}`}>{text}</span> : text))}</>;
}

export function CodeBlock({ code, lang }: { code: string; lang: string }): VNode {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(code).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    });
  };
  return (
    <div class="code-block">
      <div class="code-head">
        <span>{lang || "text"}</span>
        <button type="button" class="link" onClick={copy}>{copied ? "copied" : "copy"}</button>
      </div>
      <pre><code data-lang={lang}><Tokens code={code} lang={lang} /></code></pre>
    </div>
  );
}

export function CodeView({ code, lang }: { code: string; lang: string }): VNode {
  const lines = useMemo(() => code.split("\n").length, [code]);
  return (
    <div class="code-view">
      <pre class="gutter" aria-hidden="true">{Array.from({ length: lines }, (_, i) => `${i + 1}\n`).join("")}</pre>
      <pre class="source"><code data-lang={lang}><Tokens code={code} lang={lang} /></code></pre>
    </div>
  );
}
