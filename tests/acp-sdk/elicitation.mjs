// An MCP server's elicitation request answered by an ACP client written
// with the official TypeScript SDK: `openheim acp` with the reference
// server `@modelcontextprotocol/server-everything` configured; the client
// advertises `elicitation.form` (unless MODE is `none`) and answers
// `elicitation/create`. Prints one JSON object per observation for
// tests/tests/e2e/mcp_elicitation.rs.
//
//   node elicitation.mjs SDK_ENTRY OPENHEIM CWD MODE   (MODE: answer | none)

import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";

const [sdkEntry, openheim, cwd, mode] = process.argv.slice(2);
const { PROTOCOL_VERSION, client, methods, ndJsonStream } = await import(sdkEntry);
const say = (what, data) => console.log(JSON.stringify({ what, ...data }));

const agent = spawn(openheim, ["acp"], { stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));

let updates = [];
const asked = [];
const text = () =>
  updates
    .filter((u) => u.sessionUpdate === "agent_message_chunk" && u.content.type === "text")
    .map((u) => u.content.text)
    .join("");
const app = client({ name: "openheim-elicitation-test" })
  .onNotification(methods.client.session.update, ({ params }) => updates.push(params.update))
  .onRequest(methods.client.session.requestPermission, ({ params }) => {
    const once = params.options.find((o) => o.kind === "allow_once") ?? params.options[0];
    return { outcome: { outcome: "selected", optionId: once.optionId } };
  })
  .onRequest(methods.client.elicitation.create, ({ params }) => {
    asked.push({
      mode: params.mode,
      message: params.message,
      sessionId: params.sessionId,
      toolCallId: params.toolCallId ?? null,
      fields: Object.keys(params.requestedSchema?.properties ?? {}),
      server: params._meta?.openheim?.mcpServer ?? null,
    });
    return { action: "accept", content: { name: "Ada Lovelace", check: true, integer: 7 } };
  });

const capabilities = mode === "none" ? {} : { elicitation: { form: {} } };
await app.connectWith(stream, async (ctx) => {
  await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: capabilities,
  });
  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd, mcpServers: [] });
  const prompt = (text) =>
    ctx.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text }] });
  // `/tools` is answered without the model: wait until the server is up.
  let tools = "";
  for (let i = 0; i < 300 && !tools.includes("everything__echo"); i++) {
    updates = [];
    await prompt("/tools");
    tools = text();
    if (!tools.includes("everything__echo")) await new Promise((r) => setTimeout(r, 100));
  }
  say("tools", { text: tools });
  updates = [];
  const answer = await prompt("ask me something");
  const results = updates
    .filter((u) => u.sessionUpdate === "tool_call_update" && u.status === "completed")
    .flatMap((u) => (u.content ?? []).map((c) => c.content?.text ?? ""));
  say("turn", { stopReason: answer.stopReason, text: text(), asked, results });
});
agent.stdin.end();
process.exit(0);
