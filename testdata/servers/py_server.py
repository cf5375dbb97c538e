"""A small MCP server written with the official Python SDK (MCPServer), used as an
upstream in the integration and conformance tests.

usage: py_server.py [stdio | http PORT]
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("gatehouse-py-peer", instructions="Arithmetic and text helpers.")


@server.tool(annotations={"readOnlyHint": True})
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Say hello to {name}."


@server.resource("py://notes/{topic}")
def note(topic: str) -> str:
    """A note on a topic."""
    return f"Notes about {topic}."


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
