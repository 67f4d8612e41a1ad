"""Credentials on the wire: URL `user:password@` is sent as Basic auth on the direct route and on a
proxy route; OAuth2 client-credentials tokens are fetched once, cached, refreshed on a 401,
bounded by the call's max_seconds and never shown.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
import pytest

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.credentials import CLIENT_SECRET, SECRET
from tests.acceptance.network import closed_port, forward_proxy, origin
from tests.acceptance.results import MARGIN, batch_of, error_of, ids, text_of
from tests.acceptance.upstreams import events, two_events
from tests.sse_server import Request, Response, serve, wait_disconnect

pytestmark = pytest.mark.anyio


async def test_url_credentials_are_basic_auth_with_and_without_a_proxy(tmp_path: Path) -> None:
    """`http://user:password@host/...` is sent as HTTP Basic auth, as httpx2.AsyncClient does:
    on the direct route (which skips the client's auth layer) as on a proxy route. Before the
    fix the direct route dropped the credentials, so a call failed with 401 unless a proxy was
    set."""
    expected = "Basic " + base64.b64encode(f"feed-user:{SECRET}".encode()).decode()
    authorizations: list[str | None] = []

    async def basic_only(request: Request, response: Response) -> None:
        authorizations.append(request.headers.get("authorization"))
        if authorizations[-1] != expected:
            await response.simple(401, "who are you?", headers={"WWW-Authenticate": "Basic"})
            return
        await two_events(request, response)

    async with serve(basic_only) as up, forward_proxy() as proxy:
        url = f"http://feed-user:${{URL_PASSWORD}}@127.0.0.1:{up.port}/s"
        manual = write_manual(tmp_path / "userinfo.json", tool("feed", url))
        for env in ({}, {"HTTP_PROXY": proxy.url}):
            async with stdio_bridge(manual, {"URL_PASSWORD": SECRET, **env}) as client:
                result = await client.call_tool("feed", {"max_seconds": 5})
                assert ids(batch_of(result)) == ["1", "2"] and SECRET not in text_of(result)
    assert authorizations == [expected, expected]
    assert [method for method, _ in proxy.seen] == ["GET"]  # the second bridge's call


class OAuthServer:
    """/token issues tok-1, tok-2, ... (the secret echoed in a field nobody should show);
    /slow-token never answers; /s streams for a token that was issued and is not revoked,
    and answers 401 otherwise."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.bearers: list[str] = []

    async def __call__(self, request: Request, response: Response) -> None:
        if request.path == "/token":
            form = dict(parse_qsl(request.body.decode()))
            if form.get("client_secret") != CLIENT_SECRET or form.get("client_id") != "acc3":
                await response.simple(401, '{"error": "invalid_client"}', "application/json")
                return
            self.issued.append(f"tok-{len(self.issued) + 1}")
            token = {"access_token": self.issued[-1], "expires_in": 3600, "echo": CLIENT_SECRET}
            await response.simple(200, json.dumps(token), "application/json")
        elif request.path == "/slow-token":
            await wait_disconnect(response)
        else:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.bearers.append(bearer)
            if bearer not in self.issued or bearer in self.revoked:
                await response.simple(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
                return
            await events(response, 1, 2)
            await response.finish()


async def test_oauth2_tokens_are_cached_refreshed_and_never_shown(tmp_path: Path) -> None:
    """The token request goes through httpx2.AsyncClient over StreamTransport: fetched once and
    cached across calls, refreshed once on a 401 and the call retried with the new token; a
    token endpoint that never answers is an error by the call's max_seconds, one that is down
    an error at once, and neither the client secret nor the token shows anywhere."""
    server = OAuthServer()
    async with serve(server) as up:
        base = origin(up)

        def oauth(token_url: str) -> dict[str, str]:
            return {
                "auth_type": "oauth2",
                "token_url": token_url,
                "client_id": "acc3",
                "client_secret": "${CLIENT_SECRET}",
            }

        manual = write_manual(
            tmp_path / "oauth.json",
            tool("feed", f"{base}/s", auth=oauth(f"{base}/token")),
            tool("slow", f"{base}/s", auth=oauth(f"{base}/slow-token")),
            tool("down", f"{base}/s", auth=oauth(f"http://127.0.0.1:{closed_port()}/token")),
        )
        async with stdio_bridge(manual, {"CLIENT_SECRET": CLIENT_SECRET}) as client:
            cached = [batch_of(await client.call_tool("feed", {})) for _ in range(3)]
            assert server.issued == ["tok-1"] and server.bearers == ["tok-1"] * 3
            server.revoked.add("tok-1")
            refreshed = batch_of(await client.call_tool("feed", {}))
            again = batch_of(await client.call_tool("feed", {}))
            start = anyio.current_time()
            slow = await client.call_tool("slow", {"max_seconds": 1.5})
            slow_took = anyio.current_time() - start
            start = anyio.current_time()
            down = await client.call_tool("down", {"max_seconds": 10})
            down_took = anyio.current_time() - start
    assert all(ids(batch) == ["1", "2"] for batch in [*cached, refreshed, again])
    assert server.issued == ["tok-1", "tok-2"]
    assert server.bearers == ["tok-1"] * 3 + ["tok-1", "tok-2", "tok-2"]
    error_of(slow, "no response", "1.5 s", "token endpoint")
    assert 1.5 <= slow_took <= 1.5 + MARGIN
    error_of(down, "OAuth2 token", "/token")
    assert down_took < 2
    for result in (slow, down):
        assert "tok-" not in text_of(result)
