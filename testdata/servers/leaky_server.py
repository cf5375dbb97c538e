"""An MCP server (official Python SDK, MCPServer) whose failures reveal internals, as real
servers' do: a stack trace, an internal hostname, an SQL error. Used by the error-hygiene
tests: none of it may reach a client through the gateway.

usage: leaky_server.py   (stdio)
"""

import traceback

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

server = MCPServer("gatehouse-leaky-peer")


def _connect() -> None:
    raise ConnectionError("could not connect to pg-primary.prod.internal:5432 (10.12.0.7)")


@server.tool(annotations={"readOnlyHint": True})
def report(month: str) -> CallToolResult:
    """Monthly report."""
    try:
        _connect()
    except ConnectionError:
        # A server that returns its traceback as the tool's error text.
        return CallToolResult(content=[TextContent(type="text", text=traceback.format_exc())], is_error=True)
    return CallToolResult(content=[TextContent(type="text", text="unreachable")])


@server.tool(annotations={"readOnlyHint": True})
def lookup(table: str) -> str:
    """Looks a table up: fails with a JSON-RPC error carrying the database's message."""
    raise MCPError(-32603, f'relation "{table}" does not exist at /srv/app/db.py line 88')


@server.tool(annotations={"readOnlyHint": True})
def validate(value: int) -> CallToolResult:
    """Fails with a plain validation message."""
    return CallToolResult(content=[TextContent(type="text", text="value must be between 1 and 10")], is_error=True)


if __name__ == "__main__":
    server.run("stdio")
