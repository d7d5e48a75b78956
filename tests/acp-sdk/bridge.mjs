// Drives `openheim acp --connect` (the stdio bridge) with the official
// TypeScript SDK, through a TCP proxy this script owns so it can drop the
// connection: a prompt whose turn writes a file through this client (a
// permission question and an fs request cross the bridge back), a prompt
// in flight when the connection is cut (it gets the bridge's error), then
// a prompt in the same session after the bridge reconnected. Prints one
// JSON object per observation for tests/tests/e2e/acp/bridge.rs.
//
//   node bridge.mjs SDK_ENTRY OPENHEIM CWD SERVER_HOST:PORT TOKEN_VAR
//
// It waits for a line on stdin before cutting the connection (the test
// sends it once the server's turn has reached the model).

import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import readline from "node:readline";
import { Readable, Writable } from "node:stream";

const [sdkEntry, openheim, cwd, server, tokenVar] = process.argv.slice(2);
const { PROTOCOL_VERSION, client, methods, ndJsonStream } = await import(sdkEntry);
const say = (what, data) => console.log(JSON.stringify({ what, ...data }));

// The proxy: every accepted connection piped to the server; `cut` drops them all.
const [serverHost, serverPort] = server.split(":");
const open = new Set();
let accepted = 0;
const proxy = net.createServer((inbound) => {
  accepted += 1;
  const outbound = net.connect(Number(serverPort), serverHost);
  const end = () => {
    inbound.destroy();
    outbound.destroy();
    open.delete(inbound);
  };
  open.add(inbound);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
  for (const socket of [inbound, outbound]) {
    socket.on("error", end);
    socket.on("close", end);
  }
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const cut = () => {
  for (const socket of [...open]) socket.destroy();
};

const url = `ws://127.0.0.1:${proxy.address().port}/acp`;
const bridge = spawn(openheim, ["acp", "--connect", url, "--token-env", tokenVar], {
  stdio: ["pipe", "pipe", "pipe"],
});
let stderr = "";
bridge.stderr.on("data", (chunk) => (stderr += chunk));
const stream = ndJsonStream(Writable.toWeb(bridge.stdin), Readable.toWeb(bridge.stdout));

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const asked = [];
let updates = [];
const text = () =>
  updates
    .filter((u) => u.sessionUpdate === "agent_message_chunk" && u.content.type === "text")
    .map((u) => u.content.text)
    .join("");
const failure = async (promise) => {
  try {
    return { answered: (await promise) ?? null };
  } catch (error) {
    return { code: error.code, message: error.message, data: error.data ?? null };
  }
};

const app = client({ name: "openheim-bridge-test" })
  .onNotification(methods.client.session.update, ({ params }) => updates.push(params.update))
  .onRequest(methods.client.session.requestPermission, ({ params }) => {
    asked.push("session/request_permission");
    const once = params.options.find((o) => o.kind === "allow_once") ?? params.options[0];
    return { outcome: { outcome: "selected", optionId: once.optionId } };
  })
  .onRequest(methods.client.fs.writeTextFile, async ({ params }) => {
    asked.push("fs/write_text_file");
    await writeFile(params.path, params.content);
    return {};
  })
  .onRequest(methods.client.fs.readTextFile, async ({ params }) => {
    asked.push("fs/read_text_file");
    return { content: await readFile(params.path, "utf8") };
  });

await app.connectWith(stream, async (ctx) => {
  const init = await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: { fs: { readTextFile: true, writeTextFile: true } },
  });
  say("initialized", { agent: init.agentInfo?.name ?? null });
  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd, mcpServers: [] });
  const prompt = (text) =>
    ctx.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text }] });

  const first = await prompt("write hello.txt");
  say("first", { stopReason: first.stopReason, text: text(), asked });

  const slow = failure(prompt("take your time"));
  say("prompt_sent", {});
  await lines.next();
  cut();
  say("in_flight", { outcome: await slow });

  // The same session, on the bridge's new connection. A turn the dropped
  // connection left may still hold the session for a moment: the server
  // says when to retry.
  updates = [];
  let retries = 0;
  let after;
  for (;;) {
    after = await failure(prompt("are you still there?"));
    if (!after.data?.retryable || retries >= 20) break;
    retries += 1;
    await new Promise((resolve) => setTimeout(resolve, after.data.retryAfterMs ?? 250));
  }
  say("after", { outcome: after, text: text(), retries, connections: accepted });
});

bridge.stdin.end();
const code = await new Promise((resolve) => bridge.on("exit", resolve));
say("bridge_exit", { code, stderr });
proxy.close();
process.exit(0);
