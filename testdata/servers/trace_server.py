"""An MCP server (official Python SDK, MCPServer) that reports the W3C trace context each
call arrived with (the `traceparent` HTTP header and `params._meta.traceparent`) and every
header of a call. Used by the tracing and header tests to see what the gateway hands on to
upstreams.

usage: trace_server.py [stdio | http PORT]
"""

import json
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("gatehouse-trace-peer")


@server.tool(annotations={"readOnlyHint": True})
def trace_context(ctx: Context) -> str:
    """The trace context of this call, as JSON: {"meta": …, "header": …}."""
    rc = ctx.request_context
    meta = (rc.meta or {}).get("traceparent")
    headers = getattr(rc.request, "headers", None)
    header = headers.get("traceparent") if headers is not None else None
    return json.dumps({"meta": meta, "header": header})


@server.tool(annotations={"readOnlyHint": True})
def request_headers(ctx: Context) -> str:
    """Every HTTP header this call arrived with, as JSON pairs (names lowercase)."""
    headers = getattr(ctx.request_context.request, "headers", None)
    return json.dumps([[k.lower(), v] for k, v in headers.items()] if headers is not None else [])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
