// Syntax highlighting for code blocks and the file viewer: a small
// regex tokenizer per language family (comments, strings, numbers,
// keywords, types), producing tokens that components render as text spans
// (never HTML strings, so nothing can be injected). Unknown languages stay
// plain; very large inputs too, to keep the page responsive.

export type Token = [cls: string | null, text: string];

type Rule = [cls: string, source: string];

const MAX_HIGHLIGHT = 200_000;

const words = (list: string): string => `\\b(?:${list.trim().split(/\s+/).join("|")})\\b`;

const NUMBER: Rule = ["num", String.raw`\b(?:0x[\da-fA-F_]+|0b[01_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)[a-zA-Z\d]*\b`];
const DQ: Rule = ["str", String.raw`"(?:[^"\\\n]|\\.)*"?`];
const SQ: Rule = ["str", String.raw`'(?:[^'\\\n]|\\.)*'?`];
const BT: Rule = ["str", String.raw`\x60(?:[^\x60\\]|\\[\s\S])*\x60?`];
const SLASH_COMMENTS: Rule[] = [["com", String.raw`//[^\n]*`], ["com", String.raw`/\*[\s\S]*?(?:\*/|$)`]];
const HASH_COMMENT: Rule = ["com", String.raw`#[^\n]*`];
const TYPE: Rule = ["type", String.raw`\b[A-Z][A-Za-z0-9_]*\b`];
const CALL: Rule = ["fn", String.raw`\b[a-z_][A-Za-z0-9_]*(?=\s*\()`];

const JS_KEYWORDS = words(`
  async await break case catch class const continue debugger default delete do else export extends
  false finally for from function if import in instanceof interface let new null of return static super
  switch this throw true try type typeof undefined var void while yield enum implements readonly
  private protected public as satisfies keyof`);
const RUST_KEYWORDS = words(`
  as async await break const continue crate dyn else enum extern false fn for if impl in let loop match
  mod move mut pub ref return self Self static struct super trait true type unsafe use where while Some
  None Ok Err`);
const GO_KEYWORDS = words(`
  break case chan const continue default defer else fallthrough for func go goto if import interface
  map package range return select struct switch type var nil true false`);
const C_KEYWORDS = words(`
  auto break case char const continue default do double else enum extern float for goto if inline int
  long register return short signed sizeof static struct switch typedef union unsigned void volatile
  while class namespace template typename public private protected virtual override new delete this
  true false nullptr bool using try catch throw final abstract extends implements import package
  boolean byte String null var val fun when is object companion data sealed`);
const PY_KEYWORDS = words(`
  and as assert async await break class continue def del elif else except False finally for from global
  if import in is lambda None nonlocal not or pass raise return True try while with yield match case self`);
const SH_KEYWORDS = words(`
  if then else elif fi for while until do done case esac in function return export local readonly
  set unset shift exit echo cd source`);
const SQL_WORDS = `select from where insert into values update set delete create table drop alter add
  index primary key foreign references join left right inner outer on group by order having limit offset
  as and or not null is in like distinct union all case when then else end begin commit rollback`;
const SQL_KEYWORDS = words(`${SQL_WORDS} ${SQL_WORDS.toUpperCase()}`);

const CLIKE = (keywords: string): Rule[] => [...SLASH_COMMENTS, DQ, SQ, NUMBER, ["kw", keywords], TYPE, CALL];

const LANGUAGES: Record<string, Rule[]> = {
  js: [...SLASH_COMMENTS, DQ, SQ, BT, NUMBER, ["kw", JS_KEYWORDS], TYPE, CALL],
  rust: [...SLASH_COMMENTS, DQ, ["str", String.raw`'(?:[^'\\\n]|\\.)'`], NUMBER, ["kw", RUST_KEYWORDS], ["attr", String.raw`#!?\[[^\]\n]*\]`], TYPE, CALL],
  go: [...SLASH_COMMENTS, DQ, SQ, BT, NUMBER, ["kw", GO_KEYWORDS], TYPE, CALL],
  c: CLIKE(C_KEYWORDS),
  python: [["str", String.raw`(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$))`], HASH_COMMENT, DQ, SQ, NUMBER, ["kw", PY_KEYWORDS], ["attr", String.raw`@[\w.]+`], TYPE, CALL],
  shell: [HASH_COMMENT, DQ, SQ, ["var", String.raw`\$(?:\{[^}\n]*\}|\w+|[@#?$!*-])`], ["kw", SH_KEYWORDS], NUMBER],
  json: [["key", String.raw`"(?:[^"\\\n]|\\.)*"(?=\s*:)`], DQ, NUMBER, ["kw", words("true false null")]],
  toml: [HASH_COMMENT, ["attr", String.raw`^\s*\[[^\]\n]*\]`], ["key", String.raw`^\s*[\w.-]+(?=\s*=)`], ["key", String.raw`^\s*[\w.-]+(?=\s*:)`], DQ, SQ, NUMBER, ["kw", words("true false null yes no")]],
  css: [["com", String.raw`/\*[\s\S]*?(?:\*/|$)`], DQ, SQ, ["attr", String.raw`@[\w-]+`], ["key", String.raw`[\w-]+(?=\s*:[^;{}]*[;}])`], ["num", String.raw`#[\da-fA-F]{3,8}\b`], NUMBER],
  html: [["com", String.raw`<!--[\s\S]*?(?:-->|$)`], ["kw", String.raw`</?[A-Za-z][\w:-]*`], ["key", String.raw`\b[\w:-]+(?==)`], DQ, SQ],
  sql: [["com", String.raw`--[^\n]*`], SQ, DQ, NUMBER, ["kw", SQL_KEYWORDS]],
};

const ALIASES: Record<string, string> = {
  javascript: "js", jsx: "js", ts: "js", typescript: "js", tsx: "js", mjs: "js", cjs: "js",
  rs: "rust", golang: "go", cpp: "c", "c++": "c", h: "c", hpp: "c", cc: "c", java: "c", kotlin: "c",
  kt: "c", cs: "c", csharp: "c", swift: "c", scala: "c", php: "c", dart: "c",
  py: "python", python3: "python", sh: "shell", bash: "shell", zsh: "shell", console: "shell",
  shellscript: "shell", yaml: "toml", yml: "toml", ini: "toml", cfg: "toml", conf: "toml",
  xml: "html", svg: "html", vue: "html", scss: "css", less: "css", jsonc: "json", json5: "json",
  webmanifest: "json", lock: "toml", dockerfile: "shell", makefile: "shell", mk: "shell",
};

const compiled = new Map<string, { re: RegExp; classes: string[] }>();

function grammar(lang: string): { re: RegExp; classes: string[] } | null {
  const name = ALIASES[lang] ?? lang;
  const rules = LANGUAGES[name];
  if (!rules) return null;
  let found = compiled.get(name);
  if (!found) {
    const re = new RegExp(rules.map(([, source]) => `(${source})`).join("|"), "gm");
    found = { re, classes: rules.map(([cls]) => cls) };
    compiled.set(name, found);
  }
  return found;
}

/** The language of a file name (extension or well-known name), or "". */
export function languageOf(path: string): string {
  const name = path.split("/").pop()?.toLowerCase() ?? "";
  if (name === "dockerfile" || name === "makefile") return name;
  const dot = name.lastIndexOf(".");
  const ext = dot >= 0 ? name.slice(dot + 1) : "";
  return ALIASES[ext] || (LANGUAGES[ext] ? ext : ext === "md" || ext === "markdown" ? "markdown" : "");
}

export function highlight(code: string, lang: string): Token[] {
  const g = grammar(lang.toLowerCase());
  if (!g || code.length > MAX_HIGHLIGHT) return [[null, code]];
  const tokens: Token[] = [];
  const re = g.re;
  re.lastIndex = 0;
  let at = 0;
  for (let m = re.exec(code); m; m = re.exec(code)) {
    if (m[0].length === 0) {
      re.lastIndex += 1;
      continue;
    }
    if (m.index > at) tokens.push([null, code.slice(at, m.index)]);
    const group = m.findIndex((value, i) => i > 0 && value !== undefined);
    tokens.push([g.classes[group - 1] ?? null, m[0]]);
    at = m.index + m[0].length;
  }
  if (at < code.length) tokens.push([null, code.slice(at)]);
  return tokens;
}
