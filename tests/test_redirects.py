"""Redirects: every same-origin status is followed by hand with the credentials kept and the
method rules of HTTP (a 307 re-sends a POST body, a 302 turns it into a GET); another origin is
refused. (Credentials never follow a redirect elsewhere: test_security.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.bridges import bridge_of, stdio_bridge, tool, write_manual
from tests.acceptance.credentials import SECRET
from tests.acceptance.network import origin
from tests.acceptance.results import batch_of, error_of
from tests.sse_server import Request, Response, serve, sse_lines

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_same_origin_redirects_are_followed_with_the_credentials(status: int) -> None:
    """wpt request-redirect: every redirect status leads to the stream (same origin here)."""
    api_key = "acceptance-key-5150"

    async def redirecting(request: Request, response: Response) -> None:
        if request.path == "/old":
            await response.simple(status, "", headers={"Location": "/new?x=1"})
            return
        await response.send(sse_lines({"id": "1", "data": request.headers.get("x-api-key")}))
        await response.finish()

    auth = {"auth_type": "api_key", "api_key": "${KEY}"}
    async with serve(redirecting) as server:
        manual_tool = tool("t", f"{server.url}/old", auth=auth)
        async with bridge_of(manual_tool, variables={"KEY": api_key}) as bridge:
            batch = await bridge.call("t", {"max_events": 1, "max_seconds": 5})
    assert [r.path for r in server.requests] == ["/old", "/new"]
    assert server.requests[1].headers["accept"] == "text/event-stream"
    assert batch.count == 1 and batch.events[0]["data"] == "***"  # the key arrived, redacted


class Redirecting:
    """/r/<status> redirects to /final with a relative Location (an absolute path for 301 and
    307, `../final` for 302) or an absolute same-origin URL (308); /away redirects to another origin
    (localhost instead of 127.0.0.1); /final echoes the method, body and key it got."""

    def __init__(self) -> None:
        self.port = 0

    async def __call__(self, request: Request, response: Response) -> None:
        parts = request.path.strip("/").split("/")
        if parts[0] == "r":
            status = int(parts[1])
            location = {
                301: "/final?via=301",
                302: "../final?via=302",
                307: "/final?via=307",
                308: f"http://127.0.0.1:{self.port}/final?via=308",
            }[status]
            await response.simple(status, "moved", headers={"Location": location})
        elif parts[0] == "away":
            location = f"http://localhost:{self.port}/final"
            await response.simple(302, "moved", headers={"Location": location})
        else:
            data = {
                "method": request.method,
                "via": dict(request.query).get("via"),
                "key": request.headers.get("x-api-key") == SECRET,
                "body": request.body.decode(),
            }
            await response.send(sse_lines({"id": "f", "data": data}))
            await response.finish()


async def test_only_same_origin_redirects_are_followed(tmp_path: Path) -> None:
    """301/302/307/308 with relative and absolute same-origin Locations are followed by hand
    (the direct path skips AsyncClient's redirect layer) with the key kept; a 307 re-sends a
    POST body, a 302 turns a POST into a GET; a redirect to another origin is refused."""
    upstream = Redirecting()
    async with serve(upstream) as up:
        upstream.port = up.port
        base = origin(up)
        key = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
        body = {"type": "object", "properties": {"q": {"type": "object"}}}
        tools = [tool(f"r{s}", f"{base}/r/{s}", auth=key) for s in (301, 302, 307, 308)]
        tools += [
            tool("post307", f"{base}/r/307", body, body_field="q", auth=key),
            tool("post302", f"{base}/r/302", body, body_field="q", auth=key),
            tool("away", f"{base}/away", auth=key),
        ]
        manual = write_manual(tmp_path / "redirects.json", *tools)
        async with stdio_bridge(manual, {"API_KEY": SECRET}) as client:
            got = {}
            for name in ("r301", "r302", "r307", "r308"):
                got[name] = batch_of(await client.call_tool(name, {}))["events"][0]["data"]
            for name in ("post307", "post302"):
                result = await client.call_tool(name, {"q": {"a": 1}})
                got[name] = batch_of(result)["events"][0]["data"]
            away = await client.call_tool("away", {})
    for status in (301, 302, 307, 308):
        assert got[f"r{status}"] == {"method": "GET", "via": str(status), "key": True, "body": ""}
    assert got["post307"] == {"method": "POST", "via": "307", "key": True, "body": '{"a":1}'}
    assert got["post302"] == {"method": "GET", "via": "302", "key": True, "body": ""}
    error_of(away, "another origin", "302", "not followed")
    assert not any(r.path == "/final" and "via" not in r.target for r in up.requests)
