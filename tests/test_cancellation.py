"""A host that gives up: `notifications/cancelled`, the end of a streamable-HTTP session, or
SIGTERM closes the call's upstream within 1 s and spares the other calls; a restarted bridge
serves the same call.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.acceptance.bridges import http_bridge, post_jsonrpc, raw_stdio, tool, write_manual
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


class Gate:
    """Two streams: /a holds until the bridge hangs up; /b sends one event, waits for the test
    to open the gate, then sends two more and ends."""

    def __init__(self) -> None:
        self.a_connected = anyio.Event()
        self.a_closed = anyio.Event()
        self.b_connected = anyio.Event()
        self.b_gate = anyio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        if request.path == "/a":
            await response.send(sse_lines({"id": "a1", "data": "a"}))
            self.a_connected.set()
            await wait_disconnect(response)
            self.a_closed.set()
            return
        await response.send(sse_lines({"id": "b1", "data": "b"}))
        self.b_connected.set()
        with anyio.fail_after(10):
            await self.b_gate.wait()
        await response.send(sse_lines({"id": "b2", "data": "b"}, {"id": "b3", "data": "b"}))
        await response.finish()


async def test_notifications_cancelled_closes_one_call_and_spares_the_other(tmp_path: Path) -> None:
    """`notifications/cancelled` for one of two calls in flight: its upstream closes within
    1 s, it gets no reply (the spec: a cancelled request is not answered), and the other call
    ends with all its events; the session still answers a ping."""
    gate = Gate()
    async with serve(gate) as upstream:
        manual = write_manual(
            tmp_path / "gate.json", tool("a", f"{upstream.url}/a"), tool("b", f"{upstream.url}/b")
        )
        with anyio.fail_after(30):
            async with raw_stdio(manual) as session:
                await session.initialize()
                for id, name in ((2, "a"), (3, "b")):
                    params = {"name": name, "arguments": {"max_events": 3, "max_seconds": 20}}
                    await session.send({"id": id, "method": "tools/call", "params": params})
                await gate.a_connected.wait()
                await gate.b_connected.wait()
                cancel = {"requestId": 2, "reason": "the user pressed stop"}
                await session.send({"method": "notifications/cancelled", "params": cancel})
                with anyio.fail_after(1.0):
                    await gate.a_closed.wait()
                gate.b_gate.set()
                b = await session.reply(3)
                pong = await session.request(4, "ping")
    assert [e["id"] for e in b["result"]["structuredContent"]["events"]] == ["b1", "b2", "b3"]
    assert pong["result"] == {}
    assert all(message.get("id") != 2 for message in session.received), session.received


async def test_ending_an_http_session_closes_its_calls_upstreams(tmp_path: Path) -> None:
    """A host shutting down sends DELETE for its streamable-HTTP session: a call still running
    in it must let go of its upstream within 1 s, not stream on until its max_seconds."""
    gate = Gate()
    async with serve(gate) as upstream:
        manual = write_manual(tmp_path / "d.json", tool("a", f"{upstream.url}/a"))
        with anyio.fail_after(30):
            async with http_bridge(manual) as url, httpx2.AsyncClient(timeout=20) as http:
                info = {"name": "raw", "version": "0"}
                init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": info}
                response, _ = await post_jsonrpc(
                    http, url, {"id": 1, "method": "initialize", "params": init}, {}
                )
                headers = {
                    "Mcp-Session-Id": response.headers["mcp-session-id"],
                    "Mcp-Protocol-Version": "2025-11-25",
                }
                await post_jsonrpc(http, url, {"method": "notifications/initialized"}, headers)
                call = {"name": "a", "arguments": {"max_seconds": 20}}
                message = {"id": 2, "method": "tools/call", "params": call}
                async with anyio.create_task_group() as tg:
                    tg.start_soon(post_jsonrpc, http, url, message, headers)
                    await gate.a_connected.wait()
                    ended = await http.delete(
                        url, headers={**headers, "Accept": "application/json, text/event-stream"}
                    )
                    with anyio.fail_after(1.0):
                        await gate.a_closed.wait()
                    tg.cancel_scope.cancel()
    assert ended.status_code in (200, 202, 204)


async def test_a_host_restarting_the_bridge_mid_call_closes_the_upstream(tmp_path: Path) -> None:
    """Hosts restart a server by terminating it: SIGTERM during a call closes the upstream
    within 1 s and ends the process at once; the next process serves the same call."""
    gate = Gate()
    async with serve(gate) as upstream:
        manual = write_manual(
            tmp_path / "k.json", tool("a", f"{upstream.url}/a"), tool("b", f"{upstream.url}/b")
        )
        with anyio.fail_after(30):
            async with raw_stdio(manual, stderr=subprocess.PIPE) as session:
                await session.initialize()
                call = {"name": "a", "arguments": {"max_seconds": 20}}
                await session.send({"id": 2, "method": "tools/call", "params": call})
                await gate.a_connected.wait()
                session.process.terminate()
                with anyio.fail_after(1.0):
                    await gate.a_closed.wait()
                with anyio.fail_after(5):
                    await session.process.wait()
                assert session.process.stderr is not None
                errors = b"".join([chunk async for chunk in session.process.stderr])
            gate.b_gate.set()
            async with raw_stdio(manual) as again:
                await again.initialize()
                params = {"name": "b", "arguments": {"max_events": 3}}
                reply = await again.request(2, "tools/call", params)
    assert b"Traceback" not in errors, errors.decode(errors="replace")
    assert reply["result"]["structuredContent"]["count"] == 3
