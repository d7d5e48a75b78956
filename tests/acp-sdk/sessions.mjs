// Drives `openheim acp` with the official TypeScript SDK through the session
// lifecycle: new, prompt, close, resume (no replay), prompt again, list,
// delete. Prints one JSON object per observation for the Rust test
// (tests/tests/e2e/acp/lifecycle.rs) to check.
//
//   node sessions.mjs SDK_ENTRY OPENHEIM CWD

import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";

const [sdkEntry, openheim, cwd] = process.argv.slice(2);
const { PROTOCOL_VERSION, client, methods, ndJsonStream } = await import(sdkEntry);

const agent = spawn(openheim, ["acp"], { stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
const say = (what, data) => console.log(JSON.stringify({ what, ...data }));

let updates = [];
const app = client({ name: "openheim-lifecycle-test" }).onNotification(
  methods.client.session.update,
  ({ params }) => updates.push(params.update),
);
const kinds = () => updates.map((u) => u.sessionUpdate);
const failure = async (promise) => {
  try {
    const value = await promise;
    return { answered: value ?? null };
  } catch (error) {
    return { code: error.code, message: error.message };
  }
};

await app.connectWith(stream, async (ctx) => {
  const init = await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: {},
  });
  say("capabilities", { session: init.agentCapabilities?.sessionCapabilities ?? {} });
  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd, mcpServers: [] });
  const first = await ctx.request(methods.agent.session.prompt, {
    sessionId,
    prompt: [{ type: "text", text: "remember the word tangerine" }],
  });
  say("first", { stopReason: first.stopReason, kinds: kinds() });

  await ctx.request(methods.agent.session.close, { sessionId });
  const closed = await failure(
    ctx.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "x" }] }),
  );
  say("prompt_after_close", { error: closed });

  updates = [];
  const resumed = await ctx.request(methods.agent.session.resume, { sessionId, cwd, mcpServers: [] });
  say("resumed", {
    kinds: kinds(),
    configOptions: (resumed.configOptions ?? []).map((o) => o.id),
    mode: resumed.modes?.currentModeId ?? null,
  });
  updates = [];
  const second = await ctx.request(methods.agent.session.prompt, {
    sessionId,
    prompt: [{ type: "text", text: "which word?" }],
  });
  const text = updates
    .filter((u) => u.sessionUpdate === "agent_message_chunk" && u.content.type === "text")
    .map((u) => u.content.text)
    .join("");
  say("second", { stopReason: second.stopReason, text });

  const listed = await ctx.request(methods.agent.session.list, {});
  say("listed", { ids: listed.sessions.map((s) => s.sessionId) });
  await ctx.request(methods.agent.session.delete, { sessionId });
  const after = await ctx.request(methods.agent.session.list, {});
  say("deleted", { ids: after.sessions.map((s) => s.sessionId) });
  const gone = await failure(ctx.request(methods.agent.session.resume, { sessionId, cwd }));
  say("resume_deleted", { error: gone });
  // The agent answers -32002; the SDK reports that as done (deleting is
  // idempotent for it).
  const again = await failure(ctx.request(methods.agent.session.delete, { sessionId }));
  say("delete_again", { outcome: again });
});

agent.stdin.end();
await new Promise((resolve) => agent.on("exit", resolve));
