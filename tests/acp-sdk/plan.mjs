// The task plan over ACP with the official TypeScript SDK: `plan` updates
// live during a prompt, with `session/resume` (no replay, the latest plan
// only) and with `session/load` (replayed where it was set). Observations
// for tests/tests/e2e/plans.rs.
//
//   node plan.mjs SDK_ENTRY OPENHEIM CWD

import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";

const [sdkEntry, openheim, cwd] = process.argv.slice(2);
const { PROTOCOL_VERSION, client, methods, ndJsonStream } = await import(sdkEntry);

const agent = spawn(openheim, ["acp"], { stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
const say = (what, data) => console.log(JSON.stringify({ what, ...data }));

let updates = [];
const app = client({ name: "openheim-plan-test" })
  .onNotification(methods.client.session.update, ({ params }) => updates.push(params.update))
  .onRequest(methods.client.session.requestPermission, ({ params }) => ({
    outcome: { outcome: "selected", optionId: params.options[0].optionId },
  }));
const report = (what) => {
  say(what, {
    kinds: updates.map((u) => u.sessionUpdate),
    plans: updates.filter((u) => u.sessionUpdate === "plan").map((u) => u.entries),
  });
  updates = [];
};

await app.connectWith(stream, async (ctx) => {
  await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: {},
  });
  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd, mcpServers: [] });
  await ctx.request(methods.agent.session.prompt, {
    sessionId,
    prompt: [{ type: "text", text: "fix the bug" }],
  });
  report("live");
  await ctx.request(methods.agent.session.close, { sessionId });
  await ctx.request(methods.agent.session.resume, { sessionId, cwd, mcpServers: [] });
  report("resumed");
  await ctx.request(methods.agent.session.close, { sessionId });
  await ctx.request(methods.agent.session.load, { sessionId, cwd, mcpServers: [] });
  report("loaded");
});

agent.stdin.end();
await new Promise((resolve) => agent.on("exit", resolve));
