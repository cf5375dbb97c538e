"""A 2026-07-28-only MCP server over Streamable HTTP: the Python SDK's server, behind a
filter that refuses the `initialize` handshake with -32022 the way a modern-only server
does. Used to show the gateway serving old clients from a server that has no handshake.

usage: modern_only_server.py PORT
"""

import json
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("gatehouse-modern-only-peer", instructions="Speaks 2026-07-28 only.")


@server.tool(annotations={"readOnlyHint": True})
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


inner = server.streamable_http_app(stateless_http=True, json_response=True)


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["method"] != "POST":
        return await inner(scope, receive, send)
    chunks, more = [], True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    body = b"".join(chunks)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("method") == "initialize":
        answer = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": parsed.get("id"),
                "error": {
                    "code": -32022,
                    "message": "this server speaks 2026-07-28 only",
                    "data": {"supported": ["2026-07-28"], "requested": parsed.get("params", {}).get("protocolVersion")},
                },
            }
        ).encode()
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
        return
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    await inner(scope, replay, send)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
