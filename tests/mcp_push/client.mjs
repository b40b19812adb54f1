// Test scaffolding for tests/mcp_push.rs: an MCP client built on the official
// TypeScript SDK (@modelcontextprotocol/sdk, from npm) that runs `agentgather mcp` over
// stdio. It prints one JSON line per event on stdout:
//   {"event":"ready","capabilities":{...}}            after the handshake
//   {"event":"notification","t":<ms>,"method":...,"params":...}   (mode "listen" only)
//   {"event":"result","id":N,"result":{...}}           for each call asked on stdin
// and reads calls as JSON lines on stdin: {"id":N,"tool":"room_read","args":{...}}.
// Mode "ignore" registers no notification handler: the SDK drops what it does not know.
import { createInterface } from "node:readline";
import { join } from "node:path";

const [bin, mode] = process.argv.slice(2);
const sdk = join(process.env.AGENTGATHER_MCP_SDK, "@modelcontextprotocol/sdk/dist/esm");
const { Client } = await import(join(sdk, "client/index.js"));
const { StdioClientTransport } = await import(join(sdk, "client/stdio.js"));

const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
const client = new Client({ name: "agentgather-push-test", version: "1.0.0" });
if (mode === "listen") {
  client.fallbackNotificationHandler = async (n) =>
    out({ event: "notification", t: Date.now(), method: n.method, params: n.params });
}
const transport = new StdioClientTransport({
  command: bin,
  args: ["mcp"],
  env: { ...process.env },
  stderr: "ignore",
});
await client.connect(transport);
out({ event: "ready", capabilities: client.getServerCapabilities() });

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const { id, tool, args } = JSON.parse(line);
  try {
    const result = await client.callTool({ name: tool, arguments: args ?? {} });
    out({ event: "result", id, result });
  } catch (e) {
    out({ event: "result", id, error: String(e) });
  }
}
await client.close();
