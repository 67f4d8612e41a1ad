"""Second acceptance pass: real MCP clients, SSE servers with quirks, the time budget, the CLI.

Written from the outside, like `test_acceptance.py` (which covers the event-stream corpus, hostile
manuals and secrets), but aimed at what a host and an operator meet: the SDK's own `mcp.Client`
on every transport the bridge serves (in process, stdio subprocess, streamable HTTP subprocess)
in both protocol eras, raw JSON-RPC where the SDK hides the wire, upstreams that write exactly
what real servers write (tests/acceptance/quirks.py), upstreams that stall or storm, and the
`mcp-sse-bridge` command as a user types it. Upstreams are real servers on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import mcp_types as types
import pytest
from jsonschema import Draft202012Validator
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from mcp_sse_bridge.calls.bridge import Limits
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS
from tests.acceptance import quirks
from tests.acceptance.bridges import (
    CLI,
    TRANSPORTS,
    connect,
    http_bridge,
    raw_stdio,
    tool,
    write_manual,
)
from tests.acceptance.restartable import Restartable
from tests.sse_server import (
    Request,
    Response,
    serve,
    serve_in_thread,
    sse_lines,
    wait_disconnect,
)

pytestmark = pytest.mark.anyio

SECRET = "sk-acceptance-7f3e9d1c55"
ENV = {"API_KEY": SECRET}
AUTH = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
MCP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MARGIN = 0.75  # seconds a call may run past its max_seconds on this shared 2-core machine


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def checked_batch(result: types.CallToolResult, output_schema: dict[str, Any]) -> dict[str, Any]:
    """The batch, after checking it the way a strict host would: structured content valid
    against the tool's declared outputSchema, and the one text block holding the same JSON."""
    assert not result.is_error, text_of(result)
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    batch = result.structured_content
    assert batch is not None
    Draft202012Validator(output_schema).validate(batch)
    assert json.loads(result.content[0].text) == batch
    return batch


def check_error(result: types.CallToolResult, *fragments: str) -> list[str]:
    """What is wrong with an error result (empty when it is right): `is_error`, one line of
    text naming `fragments`, no structured content, no secret, no internal error."""
    text = text_of(result)
    problems = []
    if not result.is_error:
        problems.append("not is_error")
    if result.structured_content is not None:
        problems.append("carries structured content")
    if len(result.content) != 1 or "\n" in text:
        problems.append("is not one line of text")
    problems += [f"does not name {f!r}" for f in fragments if f.lower() not in text.lower()]
    problems += [f"holds {bad!r}" for bad in (SECRET, "Internal error", "Traceback") if bad in text]
    return [f"{problem}: {text[:300]}" for problem in problems]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def script(*events: dict[str, Any], end: str = "finish"):
    """An upstream sending `events`, then ending: "finish" (clean), "abort" (drop), "hold"."""

    async def handler(request: Request, response: Response) -> None:
        await response.head()
        for event in events:
            await response.send(sse_lines(event))
        if end == "finish":
            await response.finish()
        elif end == "abort":
            await response.abort()
        else:
            await wait_disconnect(response)

    return handler


def ticks(n: int, event: str = "tick") -> list[dict[str, Any]]:
    return [{"event": event, "id": str(i), "data": {"n": i}} for i in range(n)]


# == 1. A host's session, on every transport and in both protocol eras ========================


class Feed:
    """The upstream of the session tests: ticks that echo the API key (which must be redacted),
    a 404 that quotes it, and a stream that holds until the bridge hangs up."""

    def __init__(self) -> None:
        self.held = anyio.Event()
        self.hung_up = anyio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        key = request.headers.get("x-api-key", "")
        if request.path.startswith("/ticks/"):
            symbol = request.path.rsplit("/", 1)[1]
            for n in range(5):
                data = {"symbol": symbol, "n": n, "echo": key}
                await response.send(
                    sse_lines({"event": "tick", "id": f"{symbol}-{n}", "data": data})
                )
            await response.finish()
        elif request.path == "/missing":
            await response.simple(404, f"no such stream for key {key}")
        else:
            await response.send(sse_lines({"id": "h1", "data": "held"}))
            self.held.set()
            await wait_disconnect(response)
            self.hung_up.set()


def feed_tools(base: str) -> list[dict[str, Any]]:
    inputs = {
        "type": "object",
        "properties": {"symbol": {"type": "string"}},
        "required": ["symbol"],
    }
    return [
        tool("ticks", f"{base}/ticks/{{symbol}}", inputs, auth=AUTH, reconnect=False),
        tool("missing", f"{base}/missing", auth=AUTH),
        tool("hold", f"{base}/hold", auth=AUTH),
    ]


def check_listing(tools: list[types.Tool]) -> None:
    """What hosts rely on in tools/list: names they accept, a title, valid JSON Schemas whose
    defaults are valid, the control arguments, the output schema and the read-only hints."""
    assert [t.name for t in tools] == ["ticks", "missing", "hold"]
    for listed in tools:
        assert MCP_NAME.fullmatch(listed.name), listed.name
        assert listed.title and "\n" not in listed.title
        assert listed.description
        schema = listed.input_schema
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert set(RESERVED_ARGUMENTS) <= set(schema["properties"])
        for prop in schema["properties"].values():
            if "default" in prop:  # hosts fill forms with these
                Draft202012Validator(prop).validate(prop["default"])
        assert listed.output_schema is not None
        Draft202012Validator.check_schema(listed.output_schema)
        assert listed.output_schema["type"] == "object"
        assert listed.annotations is not None
        assert listed.annotations.read_only_hint is True
        assert listed.annotations.open_world_hint is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_host_session_on_every_transport(transport: str, tmp_path: Path) -> None:
    """List, call with progress, fail, time out, call again: one session, as a host lives it.

    The client timeout must close the upstream connection within 1 s (the host gave up; the
    upstream would otherwise stream into the void until max_seconds).
    """
    feed = Feed()
    async with serve(feed) as upstream:
        manual = write_manual(tmp_path / "feed.json", *feed_tools(upstream.url))
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        with anyio.fail_after(60):
            async with connect(transport, manual, env=ENV) as client:
                listed = (await client.list_tools()).tools
                check_listing(listed)
                schema = next(t.output_schema for t in listed if t.name == "ticks")
                assert schema is not None

                arguments = {"symbol": "AAPL", "max_events": 4}
                result = await client.call_tool("ticks", arguments, progress_callback=on_progress)
                batch = checked_batch(result, schema)
                assert [e["id"] for e in batch["events"]] == [
                    "AAPL-0",
                    "AAPL-1",
                    "AAPL-2",
                    "AAPL-3",
                ]
                assert SECRET not in json.dumps(batch) and SECRET not in text_of(result)

                assert check_error(await client.call_tool("missing", {}), "404") == []

                with pytest.raises(mcp.MCPError, match=r"(?i)timed out"):
                    await client.call_tool("hold", {"max_seconds": 60}, read_timeout_seconds=1.0)
                gave_up = anyio.current_time()
                assert feed.held.is_set(), "the held stream never connected"
                with anyio.move_on_after(5):
                    await feed.hung_up.wait()
                waited = anyio.current_time() - gave_up
                assert waited <= 1.0, f"upstream still open {waited:.2f} s after the client gave up"

                again = await client.call_tool("ticks", {"symbol": "MSFT", "max_events": 1})
                assert checked_batch(again, schema)["events"][0]["data"]["symbol"] == "MSFT"
    assert [(progress, total) for progress, total, _ in seen] == [(n, 4) for n in (1, 2, 3, 4)]
    for *_, message in seen:
        assert message and "\n" not in message and SECRET not in message, message


STOP_CASES = [
    pytest.param("max_events", script(*ticks(5)), {"max_events": 2}, {}, {}, id="max_events"),
    pytest.param("closed", script(*ticks(2)), {}, {}, {}, id="closed"),
    pytest.param(
        "max_seconds", script(*ticks(1), end="hold"), {"max_seconds": 0.3}, {}, {}, id="max_seconds"
    ),
    pytest.param("idle", script(*ticks(1), end="hold"), {}, {"idle_seconds": 0.2}, {}, id="idle"),
    pytest.param(
        "until_event",
        script(*ticks(2), {"event": "done", "id": "d", "data": "ok"}, *ticks(2)),
        {"until_event": "done"},
        {},
        {},
        id="until_event",
    ),
    pytest.param("max_bytes", script(*ticks(5)), {}, {"max_bytes": 30}, {}, id="max_bytes"),
    pytest.param("error", script(*ticks(2), end="abort"), {}, {}, {"reconnect": False}, id="error"),
]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("reason", "upstream", "arguments", "limits", "template"), STOP_CASES)
async def test_every_stop_reason_validates_against_the_output_schema(
    mode: str,
    reason: str,
    upstream: Any,
    arguments: dict[str, Any],
    limits: dict[str, Any],
    template: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A host that validates structuredContent (the SDK client does, once it listed the tool)
    must accept every batch the bridge can return, `error` batches included."""
    async with serve(upstream) as server:
        manual = write_manual(tmp_path / "m.json", tool("t", f"{server.url}/s", **template))
        async with connect(f"inproc-{mode}", manual, limits=Limits(**limits)) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(10):
                result = await client.call_tool("t", {"max_seconds": 5, **arguments})
    batch = checked_batch(result, schema)
    assert batch["stop_reason"] == reason
    assert ("error" in batch) == (reason == "error")
    assert batch["count"] == len(batch["events"]) >= 1


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


@pytest.mark.parametrize("transport", ["stdio-legacy", "stdio-auto", "http-legacy", "http-auto"])
async def test_a_hundred_concurrent_calls_on_one_session(transport: str, tmp_path: Path) -> None:
    """Each call gets its own events and its own progress notifications, none of another's."""

    async def per_call(request: Request, response: Response) -> None:
        n = int(request.path.rsplit("/", 1)[1])
        for k in range(3):
            await response.send(sse_lines({"id": f"{n}.{k}", "data": {"call": n, "k": k}}))
        await response.finish()

    inputs = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with serve(per_call) as upstream:
        manual = write_manual(tmp_path / "c.json", tool("t", f"{upstream.url}/s/{{n}}", inputs))
        results: dict[int, types.CallToolResult] = {}
        progress: dict[int, list[tuple[float, str | None]]] = {}

        async def one(client: mcp.Client, n: int) -> None:
            progress[n] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress[n].append((value, message))

            arguments = {"n": n, "max_events": 3}
            results[n] = await client.call_tool("t", arguments, progress_callback=on_progress)

        with anyio.fail_after(60):
            async with connect(transport, manual) as client, anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(one, client, n)
    wrong = []
    for n in range(100):
        events = (results[n].structured_content or {}).get("events", [])
        if [e["data"]["call"] for e in events] != [n] * 3:
            wrong.append(f"call {n} got {text_of(results[n])[:200]}")
        if [v for v, _ in progress[n]] != [1, 2, 3] or any(
            f'"call":{n},' not in (m or "") for _, m in progress[n]
        ):
            wrong.append(f"call {n} progress {progress[n]}")
    assert not wrong, "\n".join(wrong[:10])


async def post_jsonrpc(
    http: httpx2.AsyncClient, url: str, message: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx2.Response, list[dict[str, Any]]]:
    """One streamable-HTTP POST; the JSON-RPC messages of its JSON or SSE response body."""
    response = await http.post(
        url,
        json={"jsonrpc": "2.0", **message},
        headers={"Accept": "application/json, text/event-stream", **headers},
    )
    body = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = body.replace("\r\n", "\n").split("\n")
        return response, [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    return response, [json.loads(body)] if body.strip() else []


async def test_initialize_and_ping_in_every_protocol_version(tmp_path: Path) -> None:
    """Over streamable HTTP, one session per protocol version the SDK can negotiate (and one a
    future client might ask for): initialize agrees on the version, then ping, tools/list and
    tools/call work in it. The modern era (no initialize) works through the SDK client, and a
    request with a foreign Host header (DNS rebinding) is refused."""
    async with serve(script(*ticks(3))) as upstream:
        manual = write_manual(tmp_path / "v.json", tool("t", f"{upstream.url}/s"))
        offers = [*HANDSHAKE_PROTOCOL_VERSIONS, "2099-01-01"]
        agreed: dict[str, Any] = {}
        with anyio.fail_after(60):
            async with http_bridge(manual) as url, httpx2.AsyncClient(timeout=20) as http:
                for offer in offers:
                    info = {"name": "raw", "version": "0"}
                    init = {"protocolVersion": offer, "capabilities": {}, "clientInfo": info}
                    response, [reply] = await post_jsonrpc(
                        http, url, {"id": 1, "method": "initialize", "params": init}, {}
                    )
                    version = reply["result"]["protocolVersion"]
                    assert reply["result"]["serverInfo"]["name"] == "mcp-sse-bridge"
                    assert "tools" in reply["result"]["capabilities"]
                    headers = {
                        "Mcp-Session-Id": response.headers["mcp-session-id"],
                        "Mcp-Protocol-Version": version,
                    }
                    done, _ = await post_jsonrpc(
                        http, url, {"method": "notifications/initialized"}, headers
                    )
                    assert done.status_code == 202
                    _, [pong] = await post_jsonrpc(http, url, {"id": 2, "method": "ping"}, headers)
                    _, [listing] = await post_jsonrpc(
                        http, url, {"id": 3, "method": "tools/list"}, headers
                    )
                    call = {"name": "t", "arguments": {"max_events": 2}}
                    _, [called] = await post_jsonrpc(
                        http, url, {"id": 4, "method": "tools/call", "params": call}, headers
                    )
                    agreed[offer] = version
                    assert pong["result"] == {}, (offer, pong)
                    assert [t["name"] for t in listing["result"]["tools"]] == ["t"], offer
                    assert json.loads(called["result"]["content"][0]["text"])["count"] == 2, offer
                evil = await http.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Host": "attacker.example", "Accept": "application/json"},
                )
                async with mcp.Client(url, mode="2026-07-28") as modern:
                    names = [t.name for t in (await modern.list_tools()).tools]
                    modern_batch = (
                        await modern.call_tool("t", {"max_events": 1})
                    ).structured_content
    expected = {v: v for v in HANDSHAKE_PROTOCOL_VERSIONS} | {
        "2099-01-01": LATEST_HANDSHAKE_VERSION
    }
    assert agreed == expected
    assert 400 <= evil.status_code < 500
    assert names == ["t"] and (modern_batch or {})["count"] == 1


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


async def test_a_host_restarting_the_bridge_mid_call(tmp_path: Path) -> None:
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


async def test_an_upstream_restart_mid_call_is_survived(tmp_path: Path) -> None:
    """The upstream process restarts mid-call (its port refuses connections for 300 ms): the
    call reconnects through the refusals, resumes with Last-Event-ID, and the batch has every
    event exactly once."""
    resumed: list[str | None] = []
    first_sent = anyio.Event()

    async def numbered(request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id")
        resumed.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 50\n\n")
        for n in range(start, start + 3):
            await response.send(sse_lines({"id": str(n), "data": {"n": n}}))
        if last:
            await response.finish()
        else:
            first_sent.set()
            await wait_disconnect(response)

    upstream = Restartable(numbered)
    results: list[types.CallToolResult] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as servers:
            await servers.start(upstream.run)
            manual = write_manual(tmp_path / "r.json", tool("t", f"{upstream.url}/s"))
            async with connect("inproc-legacy", manual) as client, anyio.create_task_group() as tg:

                async def call() -> None:
                    arguments = {"max_events": 6, "max_seconds": 10}
                    results.append(await client.call_tool("t", arguments))

                tg.start_soon(call)
                await first_sent.wait()
                await upstream.stop()
                await anyio.sleep(0.3)  # the restart's down time: reconnects meet a closed port
                await servers.start(upstream.run)
            await upstream.stop()
    batch = results[0].structured_content or {}
    assert [e["data"]["n"] for e in batch["events"]] == [1, 2, 3, 4, 5, 6], text_of(results[0])
    assert batch["stop_reason"] == "max_events"
    assert batch["reconnects"] >= 1
    assert resumed == [None, "3"]


# == 2. SSE servers with quirks, through the whole MCP path ===================================


async def quirk_call(
    handler: Any,
    tmp_path: Path,
    arguments: dict[str, Any],
    *,
    mode: str = "legacy",
    **template: Any,
) -> dict[str, Any]:
    """One MCP call against `handler`: the batch, checked against the tool's outputSchema."""
    async with serve(handler) as upstream:
        manual = write_manual(tmp_path / "q.json", tool("t", f"{upstream.url}/s", **template))
        async with connect(f"inproc-{mode}", manual) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(15):
                result = await client.call_tool("t", {"max_seconds": 10, **arguments})
    return checked_batch(result, schema)


async def test_better_sse_resumes_with_its_uuid_after_the_retry_it_asked_for(
    tmp_path: Path,
) -> None:
    """better-sse: `field:value` without a space, a standalone `retry:2000` block, UUID ids.
    After the drop the bridge waits the 2 s the server asked for (jitter allowed), then resumes
    with the UUID of the last event; the batch has every event once, data decoded."""
    server = quirks.BetterSSE()
    batch = await quirk_call(server, tmp_path, {"max_events": 4})
    assert [e["id"] for e in batch["events"]] == quirks.BETTER_SSE_IDS
    assert [e["data"] for e in batch["events"]] == [{"n": n} for n in range(4)]
    assert {e["event"] for e in batch["events"]} == {"message"}
    assert server.resumed_from == [None, quirks.BETTER_SSE_IDS[1]]
    assert batch["reconnects"] == 1 and batch["last_event_id"] == quirks.BETTER_SSE_IDS[3]
    assert batch["elapsed_s"] >= 1.6, "reconnected before the server's retry:2000 (-20 %)"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_wikimedia_json_array_ids_go_back_verbatim(mode: str, tmp_path: Path) -> None:
    """Wikimedia EventStreams: `:ok` opener, JSON-array ids. They go back byte for byte as
    Last-Event-ID after a drop and, passed back by the caller, in the next call."""
    server = quirks.Wikimedia()
    ids = quirks.WIKIMEDIA_IDS
    async with serve(server) as upstream:
        manual = write_manual(
            tmp_path / "w.json",
            tool("t", f"{upstream.url}/s", event_type="message", retry_timeout=20),
        )
        async with connect(f"inproc-{mode}", manual) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(15):
                first = checked_batch(await client.call_tool("t", {"max_events": 4}), schema)
                arguments = {"max_events": 2, "last_event_id": first["last_event_id"]}
                second = checked_batch(await client.call_tool("t", arguments), schema)
    assert [e["id"] for e in first["events"]] == ids[:4]
    assert first["events"][0]["data"] == {"title": "Zürich 0", "type": "edit"}
    assert first["reconnects"] == 1 and first["last_event_id"] == ids[3]
    assert [e["id"] for e in second["events"]] == ids[4:6]
    assert server.resumed_from == [None, ids[1], ids[3]]


async def test_openai_done_terminator_is_text_and_never_matches(tmp_path: Path) -> None:
    """OpenAI streams end with `data: [DONE]`: it stays the text "[DONE]" (not an error, not
    dropped), and a `match` on the JSON chunks skips it as filtered."""
    everything = await quirk_call(quirks.openai, tmp_path, {})
    assert [e["data"] if isinstance(e["data"], str) else "chunk" for e in everything["events"]] == [
        "chunk",
        "chunk",
        "chunk",
        "[DONE]",
    ]
    assert everything["stop_reason"] == "closed" and everything["last_event_id"] == ""
    matched = await quirk_call(
        quirks.openai, tmp_path, {"match": {"choices.0.delta.content": "lo"}}
    )
    assert [e["data"]["choices"][0]["delta"]["content"] for e in matched["events"]] == ["lo"]
    assert matched["skipped"]["filtered"] == 3


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_anthropic_named_events_with_pings(mode: str, tmp_path: Path) -> None:
    """Anthropic-style streams: keep only the text deltas, stop at `message_stop` (included),
    and count the pings and the other named events as filtered; the stream is still open, so
    only until_event can end the call before max_seconds."""
    arguments = {"event_types": ["content_block_delta"], "until_event": "message_stop"}
    batch = await quirk_call(quirks.anthropic, tmp_path, arguments, mode=mode)
    assert [e["event"] for e in batch["events"]] == [
        "content_block_delta",
        "content_block_delta",
        "message_stop",
    ]
    assert batch["events"][1]["data"]["delta"]["text"] == " there"
    assert batch["stop_reason"] == "until_event"
    assert batch["skipped"]["filtered"] == 6
    assert batch["elapsed_s"] < 5


@pytest.mark.parametrize(
    ("body", "last_id"),
    [
        pytest.param("id: 1\ndata: kept\n\nid: 2\ndata: cut", "1", id="no-final-newline"),
        pytest.param("id: 1\ndata: kept\n\nid: 2\ndata: cut\n", "1", id="no-final-blank-line"),
        pytest.param("id: 1\r\ndata: kept\r\n\r\nid: 2\r\ndata: cut\r\n", "1", id="crlf"),
    ],
)
async def test_a_recorded_stream_without_a_final_blank_line(
    body: str, last_id: str, tmp_path: Path
) -> None:
    """A recording that stops inside its last event: that event and its id are discarded
    (WHATWG: an unfinished block is dropped at end of stream); the call ends "closed"."""
    batch = await quirk_call(quirks.recorded(body), tmp_path, {})
    assert [e["data"] for e in batch["events"]] == ["kept"]
    assert batch["stop_reason"] == "closed" and batch["last_event_id"] == last_id


async def test_httpx_sse_phantom_events_are_not_events(tmp_path: Path) -> None:
    """httpx-sse yields empty events for a retry-only block, a data-less ping and extra blank
    lines after an id; none of them is an event, but the id-only block moves the cursor."""
    body = (
        ":ok\n\nretry: 100\n\nevent: ping\n\ndata: real\nid: 1\n\n"
        "id: 2\n\n\n\nevent: ping\n\n: comment\n\n"
    )
    batch = await quirk_call(quirks.recorded(body), tmp_path, {})
    assert batch["events"] == [{"event": "message", "id": "1", "data": "real"}]
    assert batch["count"] == 1 and batch["skipped"] == {"filtered": 0, "oversized": 0}
    assert batch["last_event_id"] == "2"


# == 3. The time budget: no call outlives max_seconds, whatever the upstream does ==============
# (A silent upstream and a trickle of comments are in test_faults.py.)


async def slow_headers(request: Request, response: Response) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n":
        await response.raw(bytes([byte]))
        await anyio.sleep(0.1)
    await wait_disconnect(response)


async def bytewise(request: Request, response: Response) -> None:
    await response.head()
    for _ in range(40):
        for byte in b"data: slow\n\n":
            await response.send(bytes([byte]))
            await anyio.sleep(0.02)


async def event_then_503s(request: Request, response: Response) -> None:
    if "last-event-id" in request.headers:
        await response.simple(503, "restarting", headers={"Retry-After": "0"})
        return
    await response.send("retry: 0\nid: 1\ndata: one\n\n")
    await response.abort()


async def drop_after_each_event(request: Request, response: Response) -> None:
    n = int(request.headers.get("last-event-id", "0")) + 1
    await response.send(f"retry: 0\nid: {n}\ndata: {n}\n\n")
    await response.abort()


async def huge_retry(request: Request, response: Response) -> None:
    await response.send("retry: 999999999999999999999\nid: 1\ndata: one\n\n")
    await response.abort()


async def redirect_loop(request: Request, response: Response) -> None:
    await response.simple(307, "", headers={"Location": request.path + "x"})


BUDGET = [
    # Headers that never complete: no stream was ever established, so an error, not a batch.
    pytest.param(slow_headers, True, id="headers-byte-by-byte"),
    pytest.param(bytewise, False, id="body-byte-by-byte"),
    pytest.param(event_then_503s, False, id="503-loop"),
    pytest.param(drop_after_each_event, False, id="retry-0-drop-per-event"),
    pytest.param(huge_retry, False, id="huge-retry"),
    pytest.param(redirect_loop, True, id="redirect-loop"),
]


@pytest.mark.parametrize(("upstream", "is_error"), BUDGET)
async def test_no_call_outlives_its_max_seconds(
    upstream: Any, is_error: bool, tmp_path: Path
) -> None:
    """max_seconds=1 with progress and liveness on: the result (a batch, or an error where
    the upstream never gave a stream) arrives within the margin, and no upstream connection
    outlives the call."""
    async with serve(upstream) as server:
        manual = write_manual(tmp_path / "b.json", tool("t", f"{server.url}/s", retry_timeout=0))
        async with connect("inproc-legacy", manual, liveness_seconds=0.2) as client:
            await client.list_tools()

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                pass

            started = anyio.current_time()
            with anyio.fail_after(10):
                arguments = {"max_events": 1000, "max_seconds": 1}
                result = await client.call_tool("t", arguments, progress_callback=on_progress)
            took = anyio.current_time() - started
            with anyio.fail_after(1):
                await server.wait_for_client_close()
    assert took <= 1 + MARGIN, f"the call took {took:.2f} s for max_seconds=1"
    assert result.is_error is is_error, text_of(result)
    if not is_error:
        assert (result.structured_content or {})["stop_reason"] == "max_seconds"


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


async def test_retry_0_and_a_drop_per_event_is_no_busy_loop(tmp_path: Path) -> None:
    """A server saying `retry: 0` and dropping the stream after each (filtered-out) event must
    not be hammered with hundreds of connections a second: stream.py keeps MIN_BACKOFF_MS "so
    `retry: 0` cannot make a busy loop", but any parsed event resets the backoff."""

    async def noise_then_drop(request: Request, response: Response) -> None:
        await response.send("retry: 0\nevent: noise\ndata: x\n\n")
        await response.abort()

    async with serve(noise_then_drop) as server:
        template = {"event_type": "wanted"}
        manual = write_manual(tmp_path / "s.json", tool("t", f"{server.url}/s", **template))
        async with connect("inproc-legacy", manual) as client:
            with anyio.fail_after(10):
                result = await client.call_tool("t", {"max_seconds": 1})
    batch = result.structured_content or {}
    assert batch.get("stop_reason") == "max_seconds", text_of(result)
    assert len(server.requests) <= 20, f"{len(server.requests)} connections in 1 s"


# == 4. The command line, as a user types it ===================================================


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


HELP_PAGES = [
    pytest.param([], ["serve", "list", "check", "call", "demo"], id="top"),
    pytest.param(["serve"], ["--manual", "--transport", "--port", "--auth-token"], id="serve"),
    pytest.param(["list"], ["--manual", "--env-file", "--var"], id="list"),
    pytest.param(["check"], ["--manual", "--allow-insecure-http"], id="check"),
    pytest.param(["call"], ["key=value", "--manual", "--max-events"], id="call"),
    pytest.param(["demo"], [], id="demo"),
]


@pytest.mark.parametrize(("command", "words"), HELP_PAGES)
def test_help_pages_exit_0_on_stdout(command: list[str], words: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: mcp-sse-bridge")
    assert all(word in done.stdout for word in words), done.stdout


@pytest.fixture
def cli_manual(tmp_path: Path) -> Iterator[Path]:
    """A manual with a working tool, a 404, a refused port and a missing variable."""

    async def feed(request: Request, response: Response) -> None:
        if request.path == "/404":
            await response.simple(404, "gone")
            return
        await response.send(sse_lines(*ticks(3)))
        await response.finish()

    with serve_in_thread(feed) as server:
        manual = write_manual(
            tmp_path / "cli.json",
            tool("ok", f"{server.url}/s"),
            tool("gone", f"{server.url}/404"),
            tool("refused", f"http://127.0.0.1:{closed_port()}/s"),
            tool("keyed", f"{server.url}/s", auth={**AUTH, "api_key": "${CLI_ACCEPTANCE_KEY}"}),
        )
        yield manual


CLI_CASES = [
    # argv after the manual, exit code, stdout is the batch, words stderr (or stdout) must hold
    pytest.param(["call", "ok", "max_events=2"], 0, True, [], id="call-ok"),
    pytest.param(["call", "gone"], 1, False, ["404"], id="call-404"),
    pytest.param(["call", "refused"], 1, False, ["connect"], id="call-refused"),
    pytest.param(["call", "ok", "max_events=0"], 2, False, ["max_events"], id="call-bad-bound"),
    pytest.param(["call", "nothing"], 2, False, ["nothing"], id="call-unknown-tool"),
    pytest.param(["call", "keyed"], 2, False, ["CLI_ACCEPTANCE_KEY"], id="call-missing-var"),
    pytest.param(["check"], 2, False, ["CLI_ACCEPTANCE_KEY"], id="check-missing-var"),
    pytest.param(["list"], 0, False, ["MISSING", "CLI_ACCEPTANCE_KEY"], id="list"),
]


@pytest.mark.parametrize(("argv", "code", "batch", "words"), CLI_CASES)
def test_exit_codes_as_the_readme_states(
    cli_manual: Path, argv: list[str], code: int, batch: bool, words: list[str]
) -> None:
    """README: 0 success, 1 the upstream failed during `call`, 2 a usage or configuration
    error, always one line on stderr, never a traceback; `call` prints only the batch."""
    done = run(*argv, "--manual", str(cli_manual))
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    said = done.stderr if code else done.stdout
    assert all(word.lower() in said.lower() for word in words), said
    if code:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""
    if batch:
        assert json.loads(done.stdout)["count"] == 2


def test_call_piped_into_a_reader_that_stops_early_prints_no_traceback(tmp_path: Path) -> None:
    """`mcp-sse-bridge call ... | head` (or a `jq` that fails): the reader goes away while the
    200 KB batch is being written. README: never a traceback; at most one line on stderr."""

    async def big(request: Request, response: Response) -> None:
        for n in range(80):
            await response.send(sse_lines({"id": str(n), "data": {"n": n, "pad": "x" * 2500}}))
        await response.finish()

    with serve_in_thread(big) as server:
        manual = write_manual(tmp_path / "big.json", tool("t", f"{server.url}/s"))
        process = subprocess.Popen(
            [*CLI, "call", "t", "max_events=80", "--manual", str(manual)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            assert process.stdout.read(10)  # the batch has started; the reader stops here
            process.stdout.close()
            errors = process.stderr.read().decode(errors="replace")
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "Traceback" not in errors, errors
    assert len(errors.strip().splitlines()) <= 1, errors


def test_call_on_a_terminal_shows_a_live_line_and_prints_only_the_batch(tmp_path: Path) -> None:
    """README: `call` shows a live progress line on a terminal (stderr), including while the
    stream is quiet, clears it, and prints the batch as JSON on stdout."""

    async def two_then_quiet(request: Request, response: Response) -> None:
        await response.send(sse_lines({"id": "1", "data": {"n": 1}}))
        await anyio.sleep(1.5)  # the upstream is quiet: the line says it is waiting
        await response.send(sse_lines({"id": "2", "data": {"n": 2}}))
        await response.finish()

    with serve_in_thread(two_then_quiet) as server:
        manual = write_manual(tmp_path / "tty.json", tool("t", f"{server.url}/s"))
        leader, follower = pty.openpty()
        try:
            done = subprocess.run(
                [*CLI, "call", "t", "max_events=2", "--manual", str(manual)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=follower,
                timeout=30,
            )
            os.close(follower)
            follower = -1
            shown = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal has no writer left
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
    assert done.returncode == 0
    assert [e["id"] for e in json.loads(done.stdout)["events"]] == ["1", "2"]
    screen = shown.decode()
    assert '[1/2] message #1: {"n":1}' in screen
    assert "waiting for events" in screen
    assert '[2/2] message #2: {"n":2}' in screen
    assert screen.endswith("\r\x1b[2K"), "the live line is not cleared at the end"
