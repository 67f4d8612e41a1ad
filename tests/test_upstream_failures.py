"""An upstream that fails a call: a status other than 200, a refusal, a page instead of a stream,
a redirect loop, a drop, a refused port, plain http, a missing variable, a bad argument. Each is
one clear error result of one line naming what failed, without the key the upstream quoted
back, also when the refusal's body trickles; and the session goes on.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from mcp_sse_bridge.errors import BridgeError
from tests.acceptance.bridges import bridge_of, connect, tool, write_manual
from tests.acceptance.credentials import AUTH, ENV
from tests.acceptance.network import closed_port
from tests.acceptance.results import MARGIN, check_error
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("status", [210, 299])
async def test_a_2xx_other_than_200_is_not_an_event_stream(status: int) -> None:
    """WHATWG: "if res's status is not 200 ... fail the connection" (wpt request-status-error).

    The upstream answers with the right Content-Type and a valid event; EventSource shows
    nothing and closes, so the bridge must not return that event as the stream's.
    """

    async def odd_status(request: Request, response: Response) -> None:
        await response.head(status)
        await response.send(sse_lines({"data": "data"}))
        await response.finish()

    async with serve(odd_status) as server, bridge_of(tool("t", f"{server.url}/s")) as bridge:
        try:
            batch = await bridge.call("t", {"max_events": 1, "max_seconds": 5})
        except BridgeError:
            return
    assert batch.count == 0, f"HTTP {status} was read as an event stream: {batch.events}"


class Failures:
    """One path per way an upstream can fail a call; every body quotes the API key."""

    def __init__(self) -> None:
        self.port = 0

    async def __call__(self, request: Request, response: Response) -> None:
        key = request.headers.get("x-api-key", "")
        path = request.path.strip("/")
        if path.isdigit():
            await response.simple(int(path), f"status {path} for key {key}")
        elif path == "html":
            await response.simple(200, f"<html><body>login, {key}</body></html>", "text/html")
        elif path == "accepted":
            await response.head(202)
            await response.send(sse_lines({"data": "not a stream"}))
            await response.finish()
        elif path.startswith("loop"):
            target = "/loop-b" if path == "loop-a" else "/loop-a"
            await response.simple(302, "", headers={"Location": target})
        elif path == "away":
            where = f"http://localhost:{self.port}/ok?key={key}"
            await response.simple(302, "", headers={"Location": where})
        elif path == "drop":
            await response.send(": about to drop\n\n")
            await response.abort()
        else:
            await response.send(sse_lines({"id": "1", "data": "fine"}))
            await response.finish()


FAILING_TOOLS = {  # tool -> upstream path (or URL), each a different way to fail
    "s401": "/401",
    "s403": "/403",
    "s404": "/404",
    "s429": "/429",
    "s500": "/500",
    "s503": "/503",
    "html": "/html",
    "accepted": "/accepted",
    "redirect_loop": "/loop-a",
    "other_origin": "/away",
    "drop": "/drop",
    "refused": "http://127.0.0.1:{closed}/s",
    "insecure": "http://example.com/s",
    "needs_var": "/ok",
    "ok": "/ok",
}


FAILURES = [  # (tool, arguments, words the error must hold)
    ("s401", {}, ["401"]),
    ("s403", {}, ["403"]),
    ("s404", {}, ["404"]),
    ("s429", {}, ["429"]),
    ("s500", {}, ["500"]),
    ("s503", {}, ["503"]),
    ("html", {}, ["text/html"]),
    ("accepted", {}, ["202"]),
    ("redirect_loop", {}, ["redirect"]),
    ("other_origin", {}, ["origin"]),
    ("drop", {}, ["dropped"]),
    ("refused", {}, ["connect"]),
    ("insecure", {}, ["http"]),
    ("needs_var", {}, ["NOT_SET_ANYWHERE"]),
    ("ok", {"max_events": 0}, ["max_events"]),
    ("ok", {"no_such_argument": 1}, ["no_such_argument"]),
    ("no_such_tool", {}, ["no_such_tool"]),
]


async def test_every_failure_is_a_clear_error_result_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    """Over stdio, as Claude Desktop runs it: each failure kind is an is_error result of one
    line naming what failed (the status, the variable, the argument), without the key the
    upstream quoted back, and the same session serves a good call afterwards."""
    failures = Failures()
    async with serve(failures) as upstream:
        failures.port = upstream.port
        tools = []
        for name, where in FAILING_TOOLS.items():
            where = where.format(closed=closed_port())
            url = where if "://" in where else f"{upstream.url}{where}"
            auth = {**AUTH, "api_key": "${NOT_SET_ANYWHERE}"} if name == "needs_var" else AUTH
            tools.append(tool(name, url, auth=auth, reconnect=name != "drop"))
        manual = write_manual(tmp_path / "failures.json", *tools)
        problems: list[str] = []
        with anyio.fail_after(60):
            async with connect("stdio-legacy", manual, env=ENV) as client:
                await client.list_tools()
                for name, arguments, words in FAILURES:
                    result = await client.call_tool(name, {"max_seconds": 5, **arguments})
                    problems += [f"{name} {arguments}: {p}" for p in check_error(result, *words)]
                final = await client.call_tool("ok", {"max_events": 1})
    assert not problems, "\n".join(problems)
    assert not final.is_error and (final.structured_content or {})["count"] == 1


@pytest.mark.parametrize(
    ("status", "content_type"),
    [(401, "text/plain"), (503, "text/plain"), (200, "text/html")],
    ids=["401", "503", "200-html"],
)
async def test_a_refusal_whose_body_trickles_is_still_an_error(
    status: int, content_type: str, tmp_path: Path
) -> None:
    """An upstream (or a proxy in front of it) that sends a refusal's head at once and its
    body slowly: the call must still say 401 / 503 / not an event stream, within max_seconds.
    Reading the body excerpt must not eat the call's budget and turn the refusal into an
    empty "max_seconds" batch that looks like a quiet stream."""

    async def refuse_slowly(request: Request, response: Response) -> None:
        await response.head(status, content_type=content_type)
        await response.send("<p>The first words of an explanation ")
        await wait_disconnect(response)

    async with serve(refuse_slowly) as server:
        manual = write_manual(tmp_path / "t.json", tool("t", f"{server.url}/s"))
        async with connect("inproc-legacy", manual) as client:
            started = anyio.current_time()
            with anyio.fail_after(10):
                result = await client.call_tool("t", {"max_seconds": 2})
            took = anyio.current_time() - started
    expected = "text/html" if status == 200 else str(status)
    assert check_error(result, expected) == []
    assert took <= 2 + MARGIN
