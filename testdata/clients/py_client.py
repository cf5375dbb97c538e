"""Python SDK client used by the integration tests.

usage: py_client.py URL MODE TOOL ARGS_JSON
MODE is "auto" (2026-07-28 first, falls back to initialize) or "legacy" (initialize only).
Prints one JSON object: negotiated protocol version, tool names, the call's result.
"""

import asyncio
import json
import sys

from mcp.client import Client


async def main() -> None:
    url, mode, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    async with Client(url, mode=mode) as client:
        tools = await client.list_tools()
        result = await client.call_tool(tool, args)
        print(
            json.dumps(
                {
                    "protocol": client.protocol_version,
                    "tools": sorted(t.name for t in tools.tools),
                    "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
                }
            )
        )


asyncio.run(main())
