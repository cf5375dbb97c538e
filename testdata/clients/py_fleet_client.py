"""Python SDK client for the fleet test: through a load balancer that sends its GET stream
to one replica and its POSTs to others, it subscribes to a resource, has the upstream
announce a change, and answers the upstream's sampling request.

usage: py_fleet_client.py URL TOKEN
Prints one JSON object: whether the update arrived, and the sampled tool's answer.
"""

import asyncio
import json
import sys

import httpx2
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, token = sys.argv[1:3]
    updated = asyncio.Event()
    seen: list[str] = []

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.append(message.params.uri)
            updated.set()

    async def on_sampling(context, params: types.CreateMessageRequestParams):
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled across replicas"),
            model="fleet-test-model",
        )

    out: dict = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            client_info=types.Implementation(name="fleet-test", version="1"),
            sampling_callback=on_sampling,
            message_handler=on_message,
        ) as client:
            # Give the standalone GET stream a moment to open.
            await asyncio.sleep(0.5)
            await client.subscribe_resource("fleet://status")
            touched = await client.call_tool("fl__touch", {"resource": "fleet://status"})
            out["touch"] = touched.content[0].text if touched.content else None
            try:
                await asyncio.wait_for(updated.wait(), 10)
            except TimeoutError:
                pass
            out["updated"] = seen
            asked = await client.call_tool("fl__ask", {"prompt": "hello"})
            out["ask"] = asked.content[0].text if asked.content else None
            out["ask_error"] = asked.is_error
    print(json.dumps(out))


asyncio.run(main())
