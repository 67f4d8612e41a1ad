"""Proxies from the environment: HTTP_PROXY, HTTPS_PROXY and NO_PROXY as httpx2 reads them (plain
http in absolute form, https through a CONNECT tunnel, reconnects, POST bodies and token
requests too); a proxy httpx2 cannot use fails only the calls it would carry.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
import trustme

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.credentials import CLIENT_SECRET
from tests.acceptance.network import forward_proxy, origin, server_tls
from tests.acceptance.results import batch_of, error_of, ids
from tests.acceptance.upstreams import events, two_events
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


class Resuming:
    """Ticks 1..6 honouring Last-Event-ID, with `retry: 100`; the first connection drops after
    two."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []

    async def __call__(self, request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 100\n\n")
        await events(response, *range(start, start + 2 if last is None else 7))
        if last is None:
            await response.abort()
        else:
            await response.finish()


class Proxied:
    """/resume resumes (see `Resuming`), /token issues OAuth2 tokens, /post echoes its body
    and headers as one event, /held sends three events and waits for the client to go (`gone`
    is set then), anything else sends two events."""

    def __init__(self) -> None:
        self.resuming = Resuming()
        self.gone = anyio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        if request.path == "/held":
            await events(response, 1, 2, 3)
            await wait_disconnect(response)
            self.gone.set()
        elif request.path == "/resume":
            await self.resuming(request, response)
        elif request.path == "/token":
            body = json.dumps({"access_token": "tok-proxied", "expires_in": 3600})
            await response.simple(200, body, "application/json")
        elif request.path == "/post":
            data = {"body": request.json(), "trace": request.headers.get("x-trace")}
            await response.send(sse_lines({"id": "p", "data": data}))
            await response.finish()
        else:
            await two_events(request, response)


async def test_calls_take_the_proxies_the_environment_names(ca: trustme.CA, tmp_path: Path) -> None:
    """HTTP_PROXY / HTTPS_PROXY / NO_PROXY as httpx2 reads them: plain http goes to the proxy
    in absolute form, https through a CONNECT tunnel (TLS still verified end to end), a
    NO_PROXY host straight to the upstream; reconnects, POST bodies and OAuth2 token requests
    take the proxy too; a stream the bridge stops at max_events through the proxy's pool is
    closed upstream. (The https variable is given in lower case, which httpx2 reads too.)"""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    upstream = Proxied()
    async with (
        serve(upstream) as up,
        serve(two_events, tls=server_tls(ca, "127.0.0.1")) as secure,
        forward_proxy() as proxy,
    ):
        base = origin(up)
        oauth = {
            "auth_type": "oauth2",
            "token_url": f"{base}/token",
            "client_id": "proxied",
            "client_secret": CLIENT_SECRET,
        }
        body_inputs = {
            "type": "object",
            "properties": {"query": {"type": "object"}, "X-Trace": {"type": "string"}},
        }
        manual = write_manual(
            tmp_path / "proxied.json",
            tool("via", f"{base}/via?x=1"),
            tool("direct", f"{origin(up, host='localhost')}/direct"),
            tool("tunnel", f"{origin(secure, 'https')}/tls"),
            tool("resume", f"{base}/resume"),
            tool(
                "post", f"{base}/post", body_inputs, body_field="query", header_fields=["X-Trace"]
            ),
            tool("oauth", f"{base}/oauth", auth=oauth),
            tool("held", f"{base}/held"),
        )
        env = {
            "HTTP_PROXY": proxy.url,
            "https_proxy": proxy.url,
            "NO_PROXY": "localhost",
            "SSL_CERT_FILE": str(cafile),
        }
        async with stdio_bridge(manual, env) as client:
            for name in ("via", "direct", "tunnel", "oauth"):
                assert ids(batch_of(await client.call_tool(name, {"max_seconds": 5}))) == ["1", "2"]
            resumed = batch_of(await client.call_tool("resume", {"max_seconds": 5}))
            posted = batch_of(
                await client.call_tool("post", {"query": {"q": "é", "n": [1]}, "X-Trace": "t-1"})
            )
            held = batch_of(await client.call_tool("held", {"max_events": 2}))
            with anyio.fail_after(2):
                await upstream.gone.wait()  # while the bridge (and its proxy pool) is still up
    assert ids(resumed) == ["1", "2", "3", "4", "5", "6"] and resumed["reconnects"] == 1
    assert upstream.resuming.last_ids == [None, "2"]
    assert posted["events"][0]["data"] == {"body": {"q": "é", "n": [1]}, "trace": "t-1"}
    assert proxy.seen == [
        ("GET", f"{base}/via?x=1"),
        ("CONNECT", f"127.0.0.1:{secure.port}"),
        ("POST", f"{base}/token"),
        ("GET", f"{base}/oauth"),
        ("GET", f"{base}/resume"),
        ("GET", f"{base}/resume"),
        ("POST", f"{base}/post"),
        ("GET", f"{base}/held"),
    ]
    assert ids(held) == ["1", "2"] and held["stop_reason"] == "max_events"
    assert [r.path for r in up.requests].count("/direct") == 1  # there, but not via the proxy
    oauth_request = next(r for r in up.requests if r.path == "/oauth")
    assert oauth_request.headers["authorization"] == "Bearer tok-proxied"


async def test_a_proxy_httpx2_cannot_use_fails_each_call_it_would_carry(tmp_path: Path) -> None:
    """ALL_PROXY=socks5://... (socksio is not installed) and a proxy of an unknown scheme used
    to stop the bridge at start with a traceback. Now the bridge starts, NO_PROXY hosts work,
    and each call that would take the proxy is one clear error naming it (never going around
    it: the user asked for that proxy)."""
    async with serve(two_events) as up:
        manual = write_manual(
            tmp_path / "p.json",
            tool("proxied", f"{origin(up)}/s"),
            tool("direct", f"{origin(up, host='localhost')}/s"),
        )
        for env, words in (
            (
                {"ALL_PROXY": "socks5://127.0.0.1:1080"},
                ["socks5://127.0.0.1:1080", "ALL_PROXY", "pip install socksio"],
            ),
            (
                {"HTTP_PROXY": "ftp://user:pw@127.0.0.1:21"},
                ["ftp://127.0.0.1:21", "HTTP_PROXY", "only http://"],
            ),
        ):
            async with stdio_bridge(manual, {**env, "NO_PROXY": "localhost"}) as client:
                text = error_of(await client.call_tool("proxied", {"max_seconds": 5}), *words)
                direct = batch_of(await client.call_tool("direct", {"max_seconds": 5}))
            assert "user:pw" not in text and ids(direct) == ["1", "2"]
    assert [r.path for r in up.requests] == ["/s", "/s"]
