"""A stdio MCP server (official Python SDK) that misbehaves on request, for the gateway's
resilience tests: it can crash, hang, and add tools at run time.
"""

import asyncio
import os

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("gatehouse-flaky-peer")


@server.tool()
def whoami() -> str:
    """Returns this process id."""
    return f"pid:{os.getpid()}"


@server.tool()
def crash() -> str:
    """Exits the process without answering."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "unreachable"


@server.tool()
async def chatty(tag: str, ctx: Context) -> str:
    """Logs a message carrying `tag` while it runs."""
    await ctx.info(f"private log for {tag}")
    await asyncio.sleep(0.2)
    return tag


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool called `name` and announces the change."""

    def added() -> str:
        return f"added tool {name} from pid:{os.getpid()}"

    server.add_tool(added, name=name, description=f"Added at run time: {name}")
    await ctx.session.send_tool_list_changed()
    return f"grew {name}"


if __name__ == "__main__":
    server.run()
