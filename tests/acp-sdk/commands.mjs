// Slash commands and the session title over ACP with the official
// TypeScript SDK: the commands offered, the title from the first prompt,
// and commands answered without the model. Observations for
// tests/tests/e2e/acp/commands.rs.
//
//   node commands.mjs SDK_ENTRY OPENHEIM CWD

import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";

const [sdkEntry, openheim, cwd] = process.argv.slice(2);
const { PROTOCOL_VERSION, client, methods, ndJsonStream } = await import(sdkEntry);

const agent = spawn(openheim, ["acp"], { stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
const say = (what, data) => console.log(JSON.stringify({ what, ...data }));

let updates = [];
const app = client({ name: "openheim-commands-test" }).onNotification(
  methods.client.session.update,
  ({ params }) => updates.push(params.update),
);

await app.connectWith(stream, async (ctx) => {
  await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: {},
  });
  const { sessionId } = await ctx.request(methods.agent.session.new, { cwd, mcpServers: [] });
  const ask = async (what, text) => {
    updates = [];
    const answer = await ctx.request(methods.agent.session.prompt, {
      sessionId,
      prompt: [{ type: "text", text }],
    });
    say(what, {
      stopReason: answer.stopReason,
      kinds: updates.map((u) => u.sessionUpdate),
      text: updates
        .filter((u) => u.sessionUpdate === "agent_message_chunk" && u.content.type === "text")
        .map((u) => u.content.text)
        .join(""),
      titles: updates.filter((u) => u.sessionUpdate === "session_info_update").map((u) => u.title),
      commands: updates
        .filter((u) => u.sessionUpdate === "available_commands_update")
        .flatMap((u) => u.availableCommands.map((c) => c.name)),
      thinking: updates
        .filter((u) => u.sessionUpdate === "config_option_update")
        .flatMap((u) => u.configOptions.filter((o) => o.id === "thinking").map((o) => o.currentValue)),
    });
  };
  await ask("first", "Fix the parser bug\nIt fails on empty input.");
  await ask("second", "and the tests too");
  await ask("thinking", "/thinking high");
  await ask("model", "/model");
  await ask("tools", "/tools");
  await ask("bad_skills", "/skills frobnicate");
  await ask("mcp", "/mcp");
  await ask("memory", "/memory parser");
  const listed = await ctx.request(methods.agent.session.list, {});
  say("listed", { titles: listed.sessions.map((s) => s.title) });
});

agent.stdin.end();
await new Promise((resolve) => agent.on("exit", resolve));
