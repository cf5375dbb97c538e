"""Python SDK client for the tool-search test: with only the gateway's meta-tools listed,
it searches for a tool by what it does, describes the best match and calls it through the
call meta-tool.

usage: py_search_client.py URL TOKEN APP QUERY ARGS_JSON
ARGS_JSON `null` only searches. Prints one JSON object: the listed tools, the search results, the description and the
call's result.
"""

import asyncio
import json
import sys

import httpx2
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, token, app, query = sys.argv[1:5]
    args = json.loads(sys.argv[5])
    out: dict = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            client_info=types.Implementation(name=app, version="1"),
        ) as client:
            listed = await client.list_tools()
            out["listed"] = sorted(t.name for t in listed.tools)
            found = await client.call_tool("gatehouse_search_tools", {"query": query, "limit": 5})
            out["found"] = [t["name"] for t in (found.structured_content or {}).get("tools", [])]
            if out["found"] and args is not None:
                best = out["found"][0]
                described = await client.call_tool("gatehouse_describe_tool", {"name": best})
                out["described"] = described.structured_content
                called = await client.call_tool("gatehouse_call_tool", {"name": best, "arguments": args})
                out["called"] = called.model_dump(mode="json", by_alias=True, exclude_none=True)
    print(json.dumps(out))


asyncio.run(main())
