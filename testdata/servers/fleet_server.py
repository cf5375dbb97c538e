"""An MCP server (official Python SDK, MCPServer, streamable HTTP) for the fleet test: a
resource clients subscribe to and a tool that announces it changed, a tool that asks the
client's LLM (sampling), a slow tool, an echo and a deploy that needs approval.

usage: fleet_server.py PORT
"""

import asyncio
import sys

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("gatehouse-fleet-peer")
# uri -> the upstream sessions (one per gateway replica) subscribed to it
subscribers: dict[str, list] = {}


async def on_subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscribers.setdefault(str(params.uri), []).append(ctx.session)
    return types.EmptyResult()


server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, on_subscribe)


@server.resource("fleet://status", mime_type="text/plain", description="The fleet's status")
def status() -> str:
    return "all well"


@server.tool(annotations={"readOnlyHint": True})
async def touch(resource: str) -> str:
    """Tells every session subscribed to `resource` that it changed."""
    sent = 0
    for s in list(subscribers.get(resource, [])):
        try:
            await s.send_resource_updated(resource)
            sent += 1
        except Exception:  # noqa: BLE001 - a session that went away
            pass
    return f"notified {sent}"


@server.tool(annotations={"readOnlyHint": True})
async def ask(prompt: str, ctx: Context) -> str:
    """Asks the client's LLM."""
    result = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))], max_tokens=50
    )
    text = result.content.text if isinstance(result.content, types.TextContent) else str(result.content)
    return f"the client's LLM said: {text}"


@server.tool(annotations={"readOnlyHint": True})
async def echo(text: str) -> str:
    """Returns its argument."""
    return text


@server.tool(annotations={"readOnlyHint": True})
async def slow(seconds: float) -> str:
    """Answers after a while."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool(annotations={"readOnlyHint": False, "destructiveHint": True})
def deploy(service: str) -> str:
    """Deploys a service."""
    return f"deployed {service}"


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
