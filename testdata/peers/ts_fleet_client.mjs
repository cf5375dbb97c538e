// TypeScript SDK client for the fleet test: one session through the load balancer, calling
// an echo tool over and over for SECONDS; a failed call (its replica killed) is followed by
// the next one on the same session, which any replica can serve.
// usage: node ts_fleet_client.mjs URL SECONDS TAG
// GATEHOUSE_BEARER sends `Authorization: Bearer …`; GATEHOUSE_CLIENT_NAME sets clientInfo.name.
// Prints one JSON object: {calls: [{at, ms, ok, text}]}, `at` in ms since the epoch.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, seconds, tag] = process.argv.slice(2);
const client = new Client({ name: process.env.GATEHOUSE_CLIENT_NAME ?? "gatehouse-ts-test", version: "1.0.0" });
const requestInit = { headers: { Authorization: `Bearer ${process.env.GATEHOUSE_BEARER}` } };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit });
await client.connect(transport);
const calls = [];
const until = Date.now() + Number(seconds) * 1000;
while (Date.now() < until) {
  const text = `${tag}-${calls.length}`;
  const started = performance.now();
  let ok = false;
  try {
    const r = await client.callTool({ name: "fl__echo", arguments: { text } }, undefined, { timeout: 5000 });
    ok = !r.isError && r.content?.[0]?.text === text;
  } catch {
    ok = false;
  }
  calls.push({ at: Date.now(), ms: performance.now() - started, ok, text });
  if (!ok) await new Promise((r) => setTimeout(r, 100));
}
console.log(JSON.stringify({ calls }));
await client.close().catch(() => {});
