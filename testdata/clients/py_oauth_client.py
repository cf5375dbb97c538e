"""Python SDK client completing the OAuth 2.1 flow against a gateway protected by an
OpenID provider, with no browser: the SDK discovers the gateway's protected-resource
metadata from its 401, registers itself with the provider (dynamic client registration),
and runs authorization code + PKCE; the provider's login and consent pages (oidc-provider
development interactions) are answered over HTTP here, as a user would in a browser.

usage: py_oauth_client.py URL MODE TOOL ARGS_JSON
Prints one JSON object: protocol, tool names, the call's result, the token's audience,
subject and issuer.
"""

import asyncio
import base64
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:9999/callback"


class Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


class User:
    """Plays the user at the provider's login and consent pages."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None

    async def redirect(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False) as web:
            url = authorization_url
            for _ in range(10):
                resp = await web.get(url)
                if resp.status_code in (302, 303):
                    url = urljoin(url, resp.headers["location"])
                    if url.startswith(REDIRECT):
                        q = parse_qs(urlparse(url).query)
                        self.result = AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0])
                        return
                    continue
                form = re.search(r'<form[^>]*action="([^"]+)"', resp.text)
                prompt = re.search(r'name="prompt" value="([^"]+)"', resp.text)
                if not form or not prompt:
                    raise RuntimeError(f"unexpected page at {url}: {resp.status_code}")
                data = {"prompt": prompt.group(1)}
                if prompt.group(1) == "login":
                    data.update({"login": "alice", "password": "any"})
                action = urljoin(url, form.group(1))
                resp = await web.post(action, data=data)
                url = urljoin(action, resp.headers["location"])
        raise RuntimeError("authorization did not complete")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


async def main() -> None:
    url, mode, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    storage, user = Memory(), User()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="gatehouse-oauth-test",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.redirect,
        callback_handler=user.callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            tools = await client.list_tools()
            result = await client.call_tool(tool, args)
            token = storage.tokens.access_token if storage.tokens else ""
            payload = token.split(".")[1] if token.count(".") == 2 else ""
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) if payload else {}
            print(json.dumps({
                "protocol": client.protocol_version,
                "tools": sorted(t.name for t in tools.tools),
                "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
                "aud": claims.get("aud"),
                "sub": claims.get("sub"),
                "iss": claims.get("iss"),
            }))


asyncio.run(main())
