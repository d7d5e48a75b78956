// A minimal ACP client for `openheim acp`, written with the official
// TypeScript SDK (@agentclientprotocol/sdk 2.x). It starts the agent, opens
// a session in a workspace, sends one prompt, prints the streamed answer and
// the tool calls, allows every permission question once, and serves the
// agent's file reads and writes from disk (as an editor would from its
// buffers). docs/acp.md explains each step; CI runs it against the real
// binary (tests/tests/e2e/acp_sdk_client.rs).
//
//   node client.mjs [--openheim PATH] [--cwd DIR] PROMPT...

import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import { parseArgs } from "node:util";

import { PROTOCOL_VERSION, client, methods, ndJsonStream } from "@agentclientprotocol/sdk";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    openheim: { type: "string", default: "openheim" },
    cwd: { type: "string", default: process.cwd() },
  },
});
const prompt = positionals.join(" ") || "Say hello.";

const agent = spawn(values.openheim, ["acp"], { stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));

const app = client({ name: "openheim-example-client" })
  .onNotification(methods.client.session.update, ({ params }) => {
    const update = params.update;
    switch (update.sessionUpdate) {
      case "agent_message_chunk":
        if (update.content.type === "text") process.stdout.write(update.content.text);
        break;
      case "tool_call":
        console.log(`\n[tool] ${update.title} (${update.status ?? "pending"})`);
        break;
      case "tool_call_update":
        if (update.status) console.log(`[tool] ${update.toolCallId}: ${update.status}`);
        break;
      default:
        break;
    }
  })
  .onRequest(methods.client.session.requestPermission, ({ params }) => {
    const once = params.options.find((o) => o.kind === "allow_once") ?? params.options[0];
    console.log(`[permission] ${params.toolCall.title ?? params.toolCall.toolCallId}: ${once.name}`);
    return { outcome: { outcome: "selected", optionId: once.optionId } };
  })
  .onRequest(methods.client.fs.readTextFile, async ({ params }) => ({
    content: await readFile(params.path, "utf8"),
  }))
  .onRequest(methods.client.fs.writeTextFile, async ({ params }) => {
    await writeFile(params.path, params.content);
    return {};
  });

const stopReason = await app.connectWith(stream, async (ctx) => {
  const init = await ctx.request(methods.agent.initialize, {
    protocolVersion: PROTOCOL_VERSION,
    clientCapabilities: { fs: { readTextFile: true, writeTextFile: true } },
  });
  console.log(`[agent] ${init.agentInfo?.name} ${init.agentInfo?.version}`);
  const session = await ctx.request(methods.agent.session.new, {
    cwd: values.cwd,
    mcpServers: [],
  });
  const answer = await ctx.request(methods.agent.session.prompt, {
    sessionId: session.sessionId,
    prompt: [{ type: "text", text: prompt }],
  });
  return answer.stopReason;
});

console.log(`\n[stop] ${stopReason}`);
agent.stdin.end();
const code = await new Promise((resolve) => agent.on("exit", resolve));
process.exit(code === 0 && stopReason === "end_turn" ? 0 : 1);
