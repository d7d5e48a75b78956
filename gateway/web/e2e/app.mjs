// Browser scenarios of the web app, run by tests/tests/e2e/web.rs against a
// real `openheim serve` (and the mock provider, which answers by prompt).
//
//   node e2e/app.mjs main|resilience
//
// Env: OPENHEIM_URL, OPENHEIM_TOKEN, ARTIFACTS (screenshots), CHROMIUM.
// Prints `ok - STEP` per step; `@@stop-server` / `@@start-server` ask the
// Rust side to act and wait for `done` on stdin. Any failed step, page
// error, CSP violation or request to another host fails the run.

import assert from "node:assert/strict";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const BASE = process.env.OPENHEIM_URL;
const TOKEN = process.env.OPENHEIM_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS;
const SCENARIO = process.argv[2];
const HOST = new URL(BASE).host;
const TIMEOUT = 20_000;
const BUDGET = 200 * 1024;

const stdin = createInterface({ input: process.stdin });
const replies = [];
const waiting = [];
stdin.on("line", (line) => (waiting.length ? waiting.shift()(line) : replies.push(line)));

/** Asks the Rust test to do something (stop or start the server). */
function command(name) {
  console.log(`@@${name}`);
  return new Promise((resolve) => (replies.length ? resolve(replies.shift()) : waiting.push(resolve)));
}

let current = null;
async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`not ok - ${name}`);
    if (current) await current.screenshot({ path: join(ARTIFACTS, `failure-${name.replace(/\W+/g, "-")}.png`) }).catch(() => {});
    throw error;
  }
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

/**
 * Watches a page for what must never happen: script errors, CSP or Trusted
 * Types violations, and requests to any host but the server.
 */
function guard(page, problems, { allowSocketErrors = false } = {}) {
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    // While the server is down (allowSocketErrors), failing connections are expected.
    const unreachable = /WebSocket connection to|net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|CONNECTION_CLOSED)/.test(text);
    if (/Content Security Policy|Trusted ?(Type|HTML|Script)|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    else if (unreachable && !allowSocketErrors) problems.push(`connection: ${text}`);
    else if (message.type() === "error" && !unreachable && !/status of 401/.test(text)) problems.push(`console error: ${text}`);
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol !== "data:" && url.host !== HOST) problems.push(`request to another host: ${request.url()}`);
  });
  page.on("websocket", (socket) => {
    if (new URL(socket.url()).host !== HOST) problems.push(`socket to another host: ${socket.url()}`);
  });
}

/** Chromium with a fresh profile (Playwright makes one per launch). */
async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--no-first-run", "--disable-sync", "--disable-quic",
    ],
  });
}

async function signIn(page, token = TOKEN) {
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function prompt(page, text) {
  const box = page.getByLabel("Prompt");
  await box.fill(text);
  await box.press("Enter");
}

const lastAgent = (page) => page.locator(".msg.agent").last();
const card = (page, id) => page.locator(`.tool-card[data-tool-id="${id}"]`).last();

// ---------------------------------------------------------------- main

async function main(browser) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, colorScheme: "dark" });
  const page = await context.newPage();
  current = page;
  const problems = [];
  guard(page, problems);
  page.setDefaultTimeout(TIMEOUT);

  const firstLoad = [];
  page.on("requestfinished", (request) => firstLoad.push(request));

  await step("the app loads without a token and asks for one", async () => {
    await page.goto(BASE);
    await page.getByLabel("Token").waitFor();
  });

  await step("first load is within the budget, compressed, from the server only", async () => {
    await page.waitForLoadState("networkidle");
    let total = 0;
    const seen = [];
    for (const request of firstLoad) {
      const sizes = await request.sizes();
      const response = await request.response();
      total += sizes.responseBodySize + sizes.responseHeadersSize;
      seen.push(`${new URL(request.url()).pathname} ${sizes.responseBodySize} B ${response?.headers()["content-encoding"] ?? ""}`);
      if (/\.(js|css)$/.test(request.url())) {
        assert.equal(response?.headers()["content-encoding"], "br", `${request.url()} not compressed`);
        assert.match(response?.headers()["cache-control"] ?? "", /immutable/);
      }
    }
    console.log(`  first load: ${total} bytes over the wire: ${seen.join(", ")}`);
    assert.ok(seen.some((s) => s.startsWith("/assets/") && s.includes(".js")), "no script loaded");
    assert.ok(total <= BUDGET, `first load ${total} B > ${BUDGET} B`);
  });

  await step("sign in with the server's token", async () => {
    await signIn(page);
    await page.locator('[data-conn="open"]').waitFor();
  });

  await step("start a new session in a chosen directory", async () => {
    await page.getByRole("button", { name: "+ New session" }).click();
    const dialog = page.getByRole("dialog", { name: "New session" });
    await dialog.getByRole("button", { name: "src/" }).waitFor();
    await dialog.getByLabel("Model").selectOption("mock/mock-large");
    await dialog.getByRole("button", { name: "src/" }).click();
    await dialog.locator(".cwd[data-cwd$='/src']").waitFor();
    await shot(page, "new-session");
    await dialog.getByRole("button", { name: "↑ .." }).click();
    await dialog.locator(".cwd").filter({ hasNotText: "/src" }).waitFor();
    await dialog.getByRole("button", { name: "Start session" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.waitForURL(/#\/s\/[\w-]+$/);
    assert.equal(await page.getByLabel("Model", { exact: true }).inputValue(), "mock/mock-large");
  });

  await step("a prompt streams a markdown answer with highlighted code and folded thinking", async () => {
    await prompt(page, "Say hello with some code");
    await page.locator(".msg.user", { hasText: "Say hello with some code" }).waitFor();
    // Seen while streaming: part of the answer, not yet its end.
    await page.waitForFunction(() => {
      const answers = document.querySelectorAll(".msg.agent");
      const text = answers[answers.length - 1]?.textContent ?? "";
      return text.includes("Hello") && !text.includes("All done.");
    }, null, { polling: 10 });
    await lastAgent(page).getByText("All done.").waitFor();
    await page.locator(".working").waitFor({ state: "detached" });
    const code = lastAgent(page).locator(".code-block code[data-lang=rust]");
    assert.match(await code.textContent(), /println!\("hello"\);/);
    assert.ok(await code.locator(".t-kw").count() > 0, "no highlighted keyword");
    assert.ok(await code.locator(".t-com").count() > 0, "no highlighted comment");
    assert.equal(await lastAgent(page).locator("strong").textContent(), "bold");
    assert.equal(await lastAgent(page).locator("li").count(), 2);
    const thought = page.locator("details.thought").last();
    assert.equal(await thought.evaluate((d) => d.open), false, "thinking must be folded");
    assert.match(await thought.locator(".thought-text").textContent(), /greeting with some code/);
    await shot(page, "chat");
  });

  await step("open a file from the tree", async () => {
    await page.getByRole("button", { name: "Files", exact: true }).click();
    await page.locator('button.entry[data-path="notes.md"]').click();
    await page.locator(".viewer .source", { hasText: "first line" }).waitFor();
    assert.equal(await page.locator(".viewer").getAttribute("data-version"), "1");
  });

  await step("approve a permission; the tool card shows the diff; the open file changes live", async () => {
    await prompt(page, "Update the notes please");
    const write = card(page, "w1");
    await write.locator(".permission").waitFor();
    assert.deepEqual(
      await write.locator(".permission button").allTextContents(),
      ["Allow once", "Always allow", "Reject", "Always reject"],
    );
    await shot(page, "permission");
    await write.locator('button[data-option="allow_once"]').click();
    await page.locator('.tool-card[data-tool-id="w1"][data-status="completed"]').waitFor();
    await write.locator(".diff .diff-line.add", { hasText: "second line, from the agent" }).waitFor();
    assert.equal(await write.locator(".diff-head .path").textContent(), await write.locator(".diff").getAttribute("data-path"));
    assert.match(await write.locator(".tool-time").textContent(), /\d+(\.\d)? (ms|s)$/);
    assert.match(await write.locator(".answered").textContent(), /Allow once/);
    // The viewer reloaded on the watch events (one or more per write); nobody clicked it.
    await page.locator(".viewer .source", { hasText: "second line, from the agent" }).waitFor();
    assert.ok(Number(await page.locator(".viewer").getAttribute("data-version")) > 1);
    await lastAgent(page).getByText("The notes are updated.").waitFor();
    await shot(page, "tool-diff");
  });

  await step("attach the open file to a prompt", async () => {
    await page.getByRole("button", { name: "Attach to prompt" }).click();
    await page.locator(".composer .chip", { hasText: "notes.md" }).waitFor();
    await prompt(page, "Summarise the attached file");
    await page.locator(".msg.user", { hasText: "Summarise the attached file" }).locator(".chip", { hasText: "notes.md" }).waitFor();
    await lastAgent(page).getByText("OK.").waitFor();
    assert.equal(await page.locator(".composer .chip").count(), 0);
  });

  await step("edit a file in the viewer and save it", async () => {
    await page.locator('button.entry[data-path="src"]').click();
    await page.locator('button.entry[data-path="src/main.rs"]').click();
    await page.locator(".viewer .code-view code[data-lang=rust] .t-kw", { hasText: "fn" }).first().waitFor();
    await page.getByRole("button", { name: "Edit", exact: true }).click();
    const editor = page.getByLabel("Edit file");
    await editor.fill('fn main() {\n    println!("edited in the browser");\n}\n');
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.locator(".viewer .source", { hasText: "edited in the browser" }).waitFor();
    await page.getByLabel("Edit file").waitFor({ state: "detached" });
  });

  await step("model output cannot inject markup or script links", async () => {
    await prompt(page, "Show some html");
    await lastAgent(page).getByText("end of html").waitFor();
    assert.equal(await page.locator(".msg.agent img, .msg.agent script, .msg.agent iframe").count(), 0);
    assert.match(await lastAgent(page).textContent(), /<img src=x onerror=/);
    // javascript: stays text; an image becomes a link, never a fetch.
    const links = await lastAgent(page).locator("a").evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute("href"), a.rel]));
    assert.deepEqual(links, [
      ["docs", "https://example.org/docs", "noopener noreferrer nofollow"],
      ["image: pic", "https://example.org/p.png", "noopener noreferrer nofollow"],
    ]);
  });

  await step("a command's card shows its exit code", async () => {
    await prompt(page, "Run the tests");
    const run = card(page, "x1");
    await run.locator(".permission").waitFor();
    await run.locator('button[data-option="allow_once"]').click();
    await run.locator(".badge.bad", { hasText: "exit 3" }).waitFor();
    await lastAgent(page).getByText("The tests failed with exit code 3.").waitFor();
    await run.locator(".tool-head").click();
    await run.locator(".tool-output", { hasText: "running the tests" }).waitFor();
  });

  await step("Esc cancels a slow turn", async () => {
    await prompt(page, "Write a long story");
    await lastAgent(page).getByText("Once upon a time").waitFor();
    await page.getByLabel("Prompt").press("Escape");
    await page.locator(".stop.cancelled", { hasText: "Cancelled." }).waitFor();
    assert.ok(!(await lastAgent(page).textContent()).includes("THE END"), "the turn was not cut short");
    await page.getByRole("button", { name: "Send" }).waitFor();
    await shot(page, "cancelled");
  });

  await step("a retried model call shows a notice", async () => {
    await prompt(page, "A flaky request");
    await page.locator(".notice", { hasText: /retrying in \d+ ms/ }).waitFor();
    await lastAgent(page).getByText("OK.").waitFor();
  });

  await step("the agent's plan shows as a checklist", async () => {
    await prompt(page, "Make a plan first");
    await lastAgent(page).getByText("Planned.").waitFor();
    const plan = page.locator("details.plan");
    await plan.locator("summary", { hasText: "Plan · 1/3" }).waitFor();
    assert.deepEqual(
      await plan.locator("li").evaluateAll((items) => items.map((li) => [li.className, li.textContent])),
      [["plan-completed", "✓Read the code"], ["plan-in_progress", "▸Write the fix"], ["plan-pending", "○Check the result"]],
    );
    // The mock's context window is unknown: a count, no meter.
    await page.locator(".usage", { hasText: /^\d+ tokens$/ }).waitFor();
    assert.equal(await page.locator(".usage meter").count(), 0);
    await shot(page, "plan");
  });

  await step("after a reload the session is found by title and replayed", async () => {
    await page.goto(`${BASE}/`);
    await page.locator('[data-conn="open"]').waitFor();
    await page.getByLabel("Search sessions").fill("HELLO");
    await page.locator(".session").first().waitFor();
    await page.waitForFunction(() => document.querySelectorAll(".session").length === 1);
    await page.locator(".session", { hasText: "Say hello with some code" }).click();
    await page.locator(".msg.user", { hasText: "Say hello with some code" }).waitFor();
    await page.locator(".msg.agent .code-block code[data-lang=rust]").first().waitFor();
    await page.locator('.tool-card[data-tool-id="w1"][data-status="completed"]').waitFor();
    await page.locator('.tool-card[data-tool-id="x1"] .badge', { hasText: "exit 3" }).waitFor();
    // The plan is part of the history.
    await page.locator("details.plan summary", { hasText: "Plan · 1/3" }).waitFor();
    // The attached file shows as a file, not as the text the model got.
    await page.locator(".msg.user", { hasText: "Summarise the attached file" }).locator(".chip", { hasText: "@notes.md" }).waitFor();
    assert.equal(await page.locator(".msg.user", { hasText: "<context" }).count(), 0);
    await page.getByLabel("Search sessions").fill("");
    await shot(page, "sessions");
  });

  await step("the server panel shows health, MCP servers and tools", async () => {
    await page.getByRole("button", { name: "Server", exact: true }).click();
    await page.locator('.kv[data-ready="ready"]').waitFor();
    await page.locator(".server li", { hasText: /^test/ }).filter({ hasText: "connected" }).waitFor();
    await page.locator(".tools code", { hasText: "read_file" }).waitFor();
    await page.locator(".tools code", { hasText: "test__" }).first().waitFor();
    await shot(page, "server");
  });

  await step("themes: an accent and a light scheme", async () => {
    await page.getByRole("button", { name: "Files", exact: true }).click();
    await page.locator(".settings summary").click();
    await page.getByLabel("Theme").selectOption("blue");
    await page.getByLabel("Appearance").selectOption("light");
    const root = await page.evaluate(() => ({ ...document.documentElement.dataset }));
    assert.deepEqual(root, { accent: "blue", scheme: "light" });
    const accent = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--accent").trim());
    assert.equal(accent, "#1d4ed8");
    await shot(page, "theme-light");
    await page.getByLabel("Theme").selectOption("green");
    await page.getByLabel("Appearance").selectOption("system");
  });

  await step("the mode and model pickers change the session, which the server keeps", async () => {
    await page.getByLabel("Mode", { exact: true }).selectOption("read-only");
    await page.getByLabel("Model", { exact: true }).selectOption("mock/mock-model");
    // The API says so too.
    await page.waitForFunction(async (token) => {
      const response = await fetch("/api/sessions?limit=50", { headers: { Authorization: `Bearer ${token}` } });
      const [session] = (await response.json()).sessions;
      return session.read_only && session.model === "mock/mock-model";
    }, TOKEN, { polling: 100 });
    await page.reload();
    await page.locator(".msg.agent .code-block").first().waitFor();
    assert.equal(await page.getByLabel("Mode", { exact: true }).inputValue(), "read-only");
    assert.equal(await page.getByLabel("Model", { exact: true }).inputValue(), "mock/mock-model");
    assert.equal(await page.locator(".error-line").count(), 0);
  });

  await step("keyboard: Ctrl+Shift+O opens a new session, Esc closes it", async () => {
    await page.keyboard.press("Control+Shift+O");
    await page.getByRole("dialog", { name: "New session" }).waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog", { name: "New session" }).waitFor({ state: "detached" });
  });

  assert.deepEqual(problems, []);
  await context.close();
}

// ---------------------------------------------------------------- resilience

async function resilience(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  current = page;
  const problems = [];
  guard(page, problems, { allowSocketErrors: true });
  page.setDefaultTimeout(TIMEOUT);

  await step("a wrong token is refused in words", async () => {
    await page.goto(BASE);
    await signIn(page, "not-the-token");
    const error = page.getByRole("alert");
    await error.waitFor();
    assert.match(await error.textContent(), /did not accept this token/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("openheim.token")), null);
    await shot(page, "sign-in-error");
  });

  await step("a prompt from the empty page starts a session", async () => {
    await signIn(page);
    await page.locator('[data-conn="open"]').waitFor();
    await prompt(page, "Say hello");
    await lastAgent(page).getByText("All done.").waitFor();
    await page.getByRole("button", { name: "Send" }).waitFor();
    await page.waitForURL(/#\/s\/[\w-]+$/);
  });

  await step("the socket drops mid-turn: the app says so and keeps the typed prompt", async () => {
    await prompt(page, "Write a long story");
    await lastAgent(page).getByText("Once upon a time").waitFor();
    await page.getByLabel("Prompt").fill("a prompt typed while the server is gone");
    await command("stop-server");
    await page.locator('[data-conn="reconnecting"]').waitFor();
    await page.locator(".error-line", { hasText: "connection was lost" }).waitFor();
    await page.getByLabel("Prompt").press("Enter");
    await page.getByRole("alert").filter({ hasText: "your prompt is kept" }).waitFor();
    assert.equal(await page.getByLabel("Prompt").inputValue(), "a prompt typed while the server is gone");
    await shot(page, "reconnecting");
  });

  await step("the server comes back: the app reconnects, reloads the session, sends the prompt", async () => {
    await command("start-server");
    await page.locator('[data-conn="open"]').waitFor({ timeout: 30_000 });
    await page.locator(".msg.agent", { hasText: "All done." }).waitFor();
    // The history as stored: both prompts, the cancelled story recorded once.
    assert.deepEqual(await page.locator(".msg.user").allTextContents(), ["Say hello", "Write a long story"]);
    await page.getByLabel("Prompt").press("Enter");
    await page.locator(".msg.user", { hasText: "a prompt typed while the server is gone" }).waitFor();
    await lastAgent(page).getByText("OK.").waitFor();
    assert.equal(await page.getByLabel("Prompt").inputValue(), "");
  });

  await step("a typed prompt survives a page reload", async () => {
    await page.getByLabel("Prompt").fill("unsent words");
    await page.reload();
    await page.locator('[data-conn="open"]').waitFor();
    await page.locator(".msg.agent", { hasText: "All done." }).waitFor();
    assert.equal(await page.getByLabel("Prompt").inputValue(), "unsent words");
  });

  await step("an unknown session is explained in words", async () => {
    await page.goto(`${BASE}/#/s/00000000-0000-4000-8000-000000000000`);
    await page.reload();
    await page.locator(".error-line", { hasText: "does not know this session" }).waitFor();
  });

  await step("a phone-sized screen: drawer, chat, no sideways scrolling", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const small = await phone.newPage();
    current = small;
    guard(small, problems);
    small.setDefaultTimeout(TIMEOUT);
    await small.goto(BASE);
    await signIn(small);
    await small.locator('[data-conn="open"]').waitFor({ state: "attached" });
    assert.equal(await small.locator("nav.sidebar").isVisible(), true, "the drawer is in the DOM");
    const box = await small.locator("nav.sidebar").boundingBox();
    assert.ok(box && box.x + box.width <= 0, "the drawer starts closed");
    await small.getByRole("button", { name: "Sessions" }).tap();
    await small.locator(".session", { hasText: "Say hello" }).tap();
    await small.locator(".msg.agent .code-block").first().waitFor();
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, "the page scrolls sideways");
    await shot(small, "phone");
    await phone.close();
  });

  assert.deepEqual(problems, []);
  await context.close();
}

const scenarios = { main, resilience };
const run = scenarios[SCENARIO];
if (!run) {
  console.error(`unknown scenario ${SCENARIO}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const browser = await launch();
let failed = false;
try {
  await run(browser);
  console.log(`scenario ${SCENARIO}: passed`);
} catch (error) {
  failed = true;
  console.log(String(error?.stack ?? error));
} finally {
  await browser.close().catch(() => {});
  stdin.close();
}
process.exit(failed ? 1 : 0);
