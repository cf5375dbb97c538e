"""Python SDK client for the approval tests: calls one tool as one principal (API key),
collecting the progress notifications a held call receives.

usage: py_approval_client.py URL TOKEN APP MODE TOOL ARGS_JSON
MODE is "legacy" (2025 session: the gateway holds the call open) or "auto" (2026-07-28,
stateless: answered at once). Prints one JSON object: the result or the JSON-RPC error,
and the progress messages.
"""

import asyncio
import json
import sys

import httpx2
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def main() -> None:
    url, token, app, mode, tool = sys.argv[1:6]
    args = json.loads(sys.argv[6])
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or str(value))

    out: dict = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            client_info=types.Implementation(name=app, version="1"),
        ) as client:
            try:
                result = await client.call_tool(tool, args, progress_callback=on_progress)
                out["result"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
            except MCPError as e:
                out["error"] = {"code": e.error.code, "message": e.error.message, "data": e.error.data}
    out["progress"] = progress
    print(json.dumps(out))


asyncio.run(main())
