// TypeScript SDK client used by the integration tests.
// usage: node ts_client.mjs URL TRANSPORT TOOL ARGS_JSON [PROGRESS]
// TRANSPORT is "http" (Streamable HTTP, 2025-11-25) or "sse" (legacy HTTP+SSE).
// Answers sampling requests with a fixed message so sampling can be routed end to end.
// Prints one JSON object: tool names, the call's result (or its JSON-RPC error) and the
// progress updates seen. GATEHOUSE_BEARER sends `Authorization: Bearer …`;
// GATEHOUSE_CLIENT_NAME sets clientInfo.name (an API key's application).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, kind, tool, argsJson, wantProgress] = process.argv.slice(2);
const client = new Client(
  { name: process.env.GATEHOUSE_CLIENT_NAME ?? "gatehouse-ts-test", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {} } },
);
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  model: "test-model",
  role: "assistant",
  content: { type: "text", text: "sampled-by-ts-client" },
}));
client.setRequestHandler(ElicitRequestSchema, async () => ({ action: "decline" }));
const bearer = process.env.GATEHOUSE_BEARER;
const requestInit = bearer ? { headers: { Authorization: `Bearer ${bearer}` } } : undefined;
const transport = kind === "sse"
  ? new SSEClientTransport(new URL(url), { requestInit })
  : new StreamableHTTPClientTransport(new URL(url), { requestInit });
await client.connect(transport);
const tools = await client.listTools();
const progress = [];
const opts = wantProgress ? { onprogress: (p) => progress.push(p), timeout: 30000 } : { timeout: 30000 };
let result;
let error = null;
try {
  result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) }, undefined, opts);
} catch (e) {
  error = { code: e.code ?? null, message: e.message, data: e.data ?? null };
}
console.log(JSON.stringify({
  protocol: transport.protocolVersion ?? null,
  tools: tools.tools.map((t) => t.name).sort(),
  result,
  error,
  progress,
}));
await client.close();
