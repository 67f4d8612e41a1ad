"""The MCP server against real loopback SSE servers, through the SDK's own client.

In process with `mcp.Client(server, mode=...)` in both protocol eras (legacy JSON-RPC and the
modern direct dispatch), and end to end as a subprocess over stdio and streamable HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import mcp_types as types
import pytest
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_sse_bridge.calls.batch import Batch
from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server import tools as bridge_server
from mcp_sse_bridge.server.stdio import PipeReader, PipeWriter
from mcp_sse_bridge.server.tools import BATCH_SCHEMA, build_server
from tests.acceptance.network import closed_port
from tests.acceptance.results import batch_of, text_of
from tests.acceptance.upstreams import script
from tests.sse_server import (
    Handler,
    Request,
    Response,
    SSEServer,
    serve,
    sse_lines,
    wait_disconnect,
)

pytestmark = pytest.mark.anyio

MODES = pytest.mark.parametrize("mode", ["legacy", "auto"])
SECRET = "sk-test-0123456789"


def manual_doc(base_url: str) -> dict[str, Any]:
    """Two tools on one upstream: `ticks` (path + query input, api key) and `jobs`."""
    auth = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
    return {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": "ticks",
                "description": "Price ticks for one symbol.",
                "inputs": {
                    "type": "object",
                    "properties": {
                        "symbol": {"type": "string"},
                        "depth": {"type": "integer", "minimum": 1},
                    },
                    "required": ["symbol"],
                },
                "tool_call_template": {
                    "call_template_type": "sse",
                    "url": f"{base_url}/ticks/{{symbol}}",
                    "auth": auth,
                    "reconnect": False,
                },
            },
            {
                "name": "job-status",
                "description": "",
                "tool_call_template": {
                    "call_template_type": "sse",
                    "url": f"{base_url}/jobs",
                    "event_type": "progress",
                    "reconnect": False,
                },
            },
        ],
    }


DEFAULT_LIMITS = Limits()


def make_bridge(base_url: str, *, limits: Limits = DEFAULT_LIMITS) -> Bridge:
    text = json.dumps(manual_doc(base_url))
    manual = parse_manual(text, name="feed", source="feed.json", trusted=True)
    return Bridge([manual], variables=Variables({"API_KEY": SECRET}, environ={}), limits=limits)


@contextlib.asynccontextmanager
async def session(
    handler: Handler, mode: str, *, limits: Limits = DEFAULT_LIMITS, liveness: float = 5.0
) -> AsyncIterator[tuple[mcp.Client, SSEServer]]:
    async with serve(handler) as upstream:
        server = build_server(
            make_bridge(upstream.url, limits=limits), liveness_seconds=liveness, subscriptions=None
        )
        async with mcp.Client(server, mode=mode) as client:
            yield client, upstream


def ticks(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"event": "tick", "id": str(i), "data": {"price": 100 + i, **extra}} for i in range(n)]


# -- listing ----------------------------------------------------------------------------------


@MODES
async def test_tools_are_listed_with_schemas_and_annotations(mode: str) -> None:
    async with session(script(), mode) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(tools) == ["ticks", "job-status"]
    ticks_tool = tools["ticks"]
    assert ticks_tool.title == "Ticks"
    assert ticks_tool.description.startswith("Price ticks for one symbol.")
    assert "last_event_id" in ticks_tool.description
    schema = ticks_tool.input_schema
    assert schema["required"] == ["symbol"]
    assert set(schema["properties"]) == {"symbol", "depth", *RESERVED_ARGUMENTS}
    assert schema["properties"]["max_events"]["type"] == "integer"
    assert schema["properties"]["event_types"]["type"] == "array"
    assert ticks_tool.output_schema == BATCH_SCHEMA
    assert ticks_tool.annotations.read_only_hint is True
    assert ticks_tool.annotations.open_world_hint is True
    assert tools["job-status"].title == "Job status"
    assert tools["job-status"].description  # a generic one when the manual has none


async def test_several_manuals_get_prefixed_tool_names() -> None:
    doc = manual_doc("https://feed.example")
    manuals = [
        parse_manual(json.dumps(doc), name=name, source=f"{name}.json", trusted=True)
        for name in ("alpha", "beta")
    ]
    bridge = Bridge(manuals, variables=Variables(environ={}))
    async with mcp.Client(build_server(bridge, subscriptions=None), mode="legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == ["alpha_ticks", "alpha_job-status", "beta_ticks", "beta_job-status"]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) for name in names)


# -- results, control arguments, stop reasons -------------------------------------------------


@MODES
async def test_call_returns_the_batch_as_structured_content_and_text(mode: str) -> None:
    async with session(script(*ticks(3)), mode) as (client, upstream):
        result = await client.call_tool("ticks", {"symbol": "A/B", "depth": 2})
    batch = batch_of(result)
    assert batch["events"] == [
        {"event": "tick", "id": str(i), "data": {"price": 100 + i}} for i in range(3)
    ]
    assert batch["count"] == 3
    assert batch["stop_reason"] == "closed"
    assert batch["last_event_id"] == "2"
    request = upstream.requests[0]
    assert request.path == "/ticks/A%2FB"
    assert request.query == [("depth", "2")]
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["accept"] == "text/event-stream"


STOPS = [
    # (stop reason, upstream, arguments, limits, expected event ids)
    ("max_events", script(*ticks(20)), {"max_events": 2}, Limits(), ["0", "1"]),
    ("closed", script(*ticks(2)), {}, Limits(), ["0", "1"]),
    ("max_seconds", script(*ticks(1), end="hold"), {"max_seconds": 0.3}, Limits(), ["0"]),
    ("idle", script(*ticks(1), end="hold"), {}, Limits(idle_seconds=0.2), ["0"]),
    (
        "until_event",
        script(*ticks(2), {"event": "done", "id": "9", "data": "ok"}, *ticks(2)),
        {"until_event": "done"},
        Limits(),
        ["0", "1", "9"],
    ),
    ("max_bytes", script(*ticks(5)), {}, Limits(max_bytes=40), ["0", "1"]),
]


@MODES
@pytest.mark.parametrize(("reason", "upstream", "arguments", "limits", "ids"), STOPS)
async def test_every_stop_reason(
    mode: str,
    reason: str,
    upstream: Handler,
    arguments: dict[str, Any],
    limits: Limits,
    ids: list[str],
) -> None:
    async with session(upstream, mode, limits=limits) as (client, _):
        with anyio.fail_after(5):
            result = await client.call_tool("ticks", {"symbol": "X", **arguments})
    batch = batch_of(result)
    assert batch["stop_reason"] == reason
    assert [event["id"] for event in batch["events"]] == ids


@MODES
async def test_filters_and_resume(mode: str) -> None:
    events = [
        {"event": "tick", "id": "1", "data": {"symbol": "AAPL", "quote": {"venue": "X"}}},
        {"event": "tick", "id": "2", "data": {"symbol": "MSFT", "quote": {"venue": "X"}}},
        {"event": "trade", "id": "3", "data": {"symbol": "AAPL", "quote": {"venue": "X"}}},
        {"event": "tick", "id": "4", "data": {"symbol": "AAPL", "quote": {"venue": "Y"}}},
        {"event": "tick", "id": "5", "data": {"symbol": "AAPL", "quote": {"venue": "X"}}},
    ]
    arguments = {
        "symbol": "AAPL",
        "last_event_id": "0",
        "event_types": ["tick"],
        "match": {"symbol": "AAPL", "quote.venue": "X"},
    }
    async with session(script(*events), mode) as (client, upstream):
        batch = batch_of(await client.call_tool("ticks", arguments))
    assert [event["id"] for event in batch["events"]] == ["1", "5"]
    assert batch["skipped"]["filtered"] == 3
    assert upstream.requests[0].headers["last-event-id"] == "0"


@MODES
async def test_the_manual_event_type_filters(mode: str) -> None:
    events = [{"event": "log", "data": "x"}, {"event": "progress", "id": "1", "data": "50"}]
    async with session(script(*events), mode) as (client, _):
        batch = batch_of(await client.call_tool("job-status", {}))
    assert batch["events"] == [{"event": "progress", "id": "1", "data": 50}]


# -- progress ---------------------------------------------------------------------------------


@MODES
async def test_progress_per_event_with_total_and_one_line_messages(mode: str) -> None:
    long = {"text": "line one\nline two é " + "x" * 300}
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with session(script(*ticks(2), *ticks(5, **long)), mode) as (client, _):
        arguments = {"symbol": "X", "max_events": 4}
        batch_of(await client.call_tool("ticks", arguments, progress_callback=on_progress))
    assert [(progress, total) for progress, total, _ in seen] == [(i, 4) for i in (1, 2, 3, 4)]
    messages = [message or "" for *_, message in seen]
    assert messages[0] == 'tick #0: {"price":100}'
    assert all("\n" not in m and len(m) <= 100 for m in messages)
    assert messages[3].startswith('tick #1: {"price":101,"text":"line one\\nline two é xxx')
    assert messages[3].endswith("…")


def test_summaries_carry_no_control_characters_or_lone_surrogates() -> None:
    """Hosts print progress messages in a terminal, and a lone surrogate cannot be encoded."""
    event = {"event": "t\x1b]0;title\x07", "id": "1", "data": "a\x1b[2Jb\x9b31m\ud800c\u202e"}
    summary = bridge_server.summarize(event)
    assert summary == "t ]0;title #1: a [2Jb 31m?c"
    summary.encode("utf-8")


Seen = list[tuple[float, float | None, str]]


async def call_with_a_pause(
    mode: str,
    arguments: dict[str, Any],
    *,
    first: int,
    total: int,
    resume_when: Callable[[Seen], bool],
) -> tuple[types.CallToolResult, Seen]:
    """Call `ticks` over a feed that sends `first` ticks, stays quiet until the progress heard
    so far satisfies `resume_when`, then sends the rest of `total` and ends; the result and
    every progress notification (value, total, message)."""
    seen: Seen = []
    resume = anyio.Event()

    async def handler(request: Request, response: Response) -> None:
        await response.send(sse_lines(*ticks(first)))
        await resume.wait()
        await response.send(sse_lines(*ticks(total)[first:]))
        await response.finish()

    async def on_progress(progress: float, of: float | None, message: str | None) -> None:
        seen.append((progress, of, message or ""))
        if resume_when(seen):
            resume.set()

    async with session(handler, mode, liveness=0.05) as (client, _):
        with anyio.fail_after(5):
            result = await client.call_tool("ticks", arguments, progress_callback=on_progress)
    values = [value for value, _, _ in seen]
    assert values == sorted(set(values)), "progress must strictly increase"
    return result, seen


@MODES
async def test_liveness_progress_while_the_stream_is_quiet(mode: str) -> None:
    def two_ticks(seen: Seen) -> bool:
        return sum(m.startswith("waiting for events") for *_, m in seen) == 2

    arguments = {"symbol": "X", "max_events": 5}
    result, seen = await call_with_a_pause(mode, arguments, first=1, total=2, resume_when=two_ticks)
    assert batch_of(result)["count"] == 2
    assert seen[0][::2] == (1, 'tick #0: {"price":100}')
    assert re.fullmatch(r"waiting for events \(\d+ s\)", seen[1][2])
    assert 1 < seen[1][0] < seen[2][0] < 2
    assert seen[-1][::2] == (2, 'tick #1: {"price":101}')


@MODES
async def test_a_folding_call_reports_how_many_events_it_folded(mode: str) -> None:
    """`latest_per` yields no event to report: its liveness ticks count what it folded."""

    def folded_three(seen: Seen) -> bool:
        return "folded 3 events so far" in seen[-1][2]

    arguments = {"symbol": "X", "latest_per": "price", "max_seconds": 4}
    result, seen = await call_with_a_pause(
        mode, arguments, first=3, total=5, resume_when=folded_three
    )
    assert not result.is_error and (result.structured_content or {})["folded"] == 5
    assert all(total is None for _, total, _ in seen)
    assert all(re.fullmatch(r"folded [35] events so far \(\d+ s\)", m) for *_, m in seen), seen


@pytest.mark.parametrize(
    ("mode", "asked", "progress_objects"),
    [("legacy", False, 0), ("legacy", True, 1), ("auto", False, 1)],
)
async def test_progress_work_only_when_someone_can_hear_it(
    monkeypatch: pytest.MonkeyPatch, mode: str, asked: bool, progress_objects: int
) -> None:
    """No token, no keep-alive task and no summaries; in-process calls carry no token, so
    there the bridge cannot tell and keeps reporting."""
    made: list[bridge_server.Progress] = []

    class Counted(bridge_server.Progress):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    monkeypatch.setattr(bridge_server, "Progress", Counted)
    async with session(script(*ticks(3)), mode) as (client, _):
        callback = on_progress if asked else None
        result = await client.call_tool("ticks", {"symbol": "X"}, progress_callback=callback)
    assert batch_of(result)["count"] == 3
    assert len(made) == progress_objects


# -- errors -----------------------------------------------------------------------------------


ARGUMENT_ERRORS = [
    ({}, "symbol"),
    ({"symbol": 5}, "symbol"),
    ({"symbol": "X", "depth": 0}, "depth"),
    ({"symbol": "X", "max_events": 0}, "max_events"),
    ({"symbol": "X", "max_events": 100_000}, "max_events"),
    ({"symbol": "X", "max_seconds": "soon"}, "max_seconds"),
    ({"symbol": "X", "event_types": "tick"}, "event_types"),
    ({"symbol": "X", "match": ["AAPL"]}, "match"),
    ({"symbol": "X", "until_event": ""}, "until_event"),
]


@MODES
@pytest.mark.parametrize(("arguments", "named"), ARGUMENT_ERRORS)
async def test_bad_arguments_are_error_results_before_connecting(
    mode: str, arguments: dict[str, Any], named: str
) -> None:
    async with session(script(*ticks(1)), mode) as (client, upstream):
        result = await client.call_tool("ticks", arguments)
    assert result.is_error
    assert named in text_of(result)
    assert upstream.requests == []


@MODES
async def test_unknown_tool_is_an_error_result(mode: str) -> None:
    async with session(script(), mode) as (client, _):
        result = await client.call_tool("nope", {})
    assert result.is_error
    assert "nope" in text_of(result) and "ticks" in text_of(result)


def refuse(status: int, body: str) -> Handler:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(status, body, content_type="application/json")

    return handler


@MODES
@pytest.mark.parametrize("status", [401, 403, 500, 503])
async def test_upstream_errors_say_the_status_and_redact_secrets(mode: str, status: int) -> None:
    echo = json.dumps({"error": f"nope, key {SECRET} is not valid here"})
    async with session(refuse(status, echo), mode) as (client, _):
        result = await client.call_tool("ticks", {"symbol": "X"})
    assert result.is_error
    text = text_of(result)
    assert str(status) in text
    assert SECRET not in text
    assert "\n" not in text


@MODES
async def test_connection_refused_is_an_error_result(mode: str) -> None:
    server = build_server(make_bridge(f"http://127.0.0.1:{closed_port()}"), subscriptions=None)
    async with mcp.Client(server, mode=mode) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("ticks", {"symbol": "X"})
    assert result.is_error
    assert re.search(r"connect|refused", text_of(result), re.IGNORECASE)


@MODES
async def test_secrets_echoed_in_events_never_reach_results_or_progress(mode: str) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    events = [{"event": "tick", "id": "1", "data": {"echo": SECRET}}]
    async with session(script(*events), mode) as (client, _):
        arguments = {"symbol": "X"}
        result = await client.call_tool("ticks", arguments, progress_callback=on_progress)
    assert SECRET not in text_of(result)
    assert SECRET not in json.dumps(result.structured_content)
    assert messages and all(SECRET not in message for message in messages)


class BrokenBridge(Bridge):
    async def call(self, name: str, arguments: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a bug that mentions {SECRET}")


@MODES
async def test_an_unexpected_failure_is_a_generic_error_result(mode: str) -> None:
    manual = parse_manual(
        json.dumps(manual_doc("http://127.0.0.1:9")), name="f", source="f", trusted=True
    )
    bridge = BrokenBridge([manual], variables=Variables({"API_KEY": SECRET}, environ={}))
    async with mcp.Client(build_server(bridge, subscriptions=None), mode=mode) as client:
        result = await client.call_tool("ticks", {"symbol": "X"})
        assert result.is_error
        assert "Internal error in mcp-sse-bridge while calling 'ticks'" in text_of(result)
        assert SECRET not in text_of(result)
        assert len((await client.list_tools()).tools) == 2  # the session goes on


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@MODES
@pytest.mark.parametrize(
    "data",
    [
        pytest.param("bad \ud800", id="lone-surrogate"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(nested(300), id="nested-300"),
    ],
)
async def test_a_batch_no_transport_can_send_is_an_error_result(
    mode: str, data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Python holds these; UTF-8 JSON (and pydantic, which writes every MCP message) cannot.
    The engine should never produce them; if it does, the call fails, not the session."""

    class Unsendable(Bridge):
        async def call(self, name: str, arguments: Any, **kwargs: Any) -> Batch:
            events = [{"event": "message", "id": "7", "data": data}]
            skipped = {"filtered": 0, "oversized": 0}
            return Batch(events, 1, "closed", "7", 0.01, 0, skipped)

    manual = parse_manual(
        json.dumps(manual_doc("http://127.0.0.1:9")), name="f", source="f", trusted=True
    )
    bridge = Unsendable([manual], variables=Variables({"API_KEY": SECRET}, environ={}))
    async with mcp.Client(build_server(bridge, subscriptions=None), mode=mode) as client:
        result = await client.call_tool("ticks", {"symbol": "X"})
        assert result.is_error
        assert "cannot be sent: an event's data is not valid UTF-8 JSON" in text_of(result)
        assert len((await client.list_tools()).tools) == 2  # the session goes on
    assert "the batch cannot be sent as JSON" in caplog.text


async def test_stdio_survives_an_event_holding_a_lone_surrogate(tmp_path: Path) -> None:
    """`data: "\\ud800"` is JSON for a lone surrogate, which UTF-8 cannot encode. Neither the
    reply nor its progress notification may end the session: a second call is answered."""

    async def handler(request: Request, response: Response) -> None:
        if request.path.endswith("/bad"):
            await response.send('id: 1\ndata: "\\ud800"\n\n')
        else:
            await response.send(sse_lines(*ticks(1)))
        await response.finish()

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}  # fmt: skip
    bad = {"name": "ticks", "arguments": {"symbol": "bad"}, "_meta": {"progressToken": "t"}}
    good = {"name": "ticks", "arguments": {"symbol": "good"}}
    async with serve(handler) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        command = bridge_command("--manual", str(manual))
        env = {**os.environ, "API_KEY": SECRET}
        with anyio.fail_after(20):
            async with await anyio.open_process(
                command, env=env, stderr=subprocess.DEVNULL
            ) as proc:
                assert proc.stdin and proc.stdout
                lines = json_lines(proc.stdout)

                async def send(message: dict[str, Any]) -> None:
                    await proc.stdin.send((json.dumps(message) + "\n").encode())

                async def reply(to: int) -> dict[str, Any]:
                    """The reply to request `to`; EndOfStream if the server died first."""
                    while (line := await anext(lines)).get("id") != to:
                        pass
                    return line

                await send(initialize)
                await reply(1)
                await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": bad})
                first = await reply(2)
                await send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": good})
                second = await reply(3)
                await proc.stdin.aclose()
                assert await proc.wait() == 0
    assert "result" in first, first  # a tool result, not a JSON-RPC error
    if first["result"].get("isError"):
        assert "not valid UTF-8 JSON" in first["result"]["content"][0]["text"]
    assert second["result"]["structuredContent"]["events"] == ticks(1)


async def json_lines(stream: anyio.abc.ByteReceiveStream) -> AsyncIterator[dict[str, Any]]:
    """JSON-RPC messages from a server's stdout; a line that is not JSON fails the test."""
    buffer = b""
    while True:
        *complete, buffer = (buffer + await stream.receive()).split(b"\n")
        for line in complete:
            yield json.loads(line)


# -- cancellation -----------------------------------------------------------------------------


def hold_open(connected: anyio.Event) -> Handler:
    async def handler(request: Request, response: Response) -> None:
        await response.send(sse_lines(*ticks(1)))
        connected.set()
        await wait_disconnect(response)

    return handler


@MODES
async def test_cancelling_a_call_closes_the_upstream_connection(mode: str) -> None:
    connected = anyio.Event()
    async with session(hold_open(connected), mode) as (client, upstream):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "ticks", {"symbol": "X", "max_seconds": 60})
            with anyio.fail_after(5):
                await connected.wait()
            assert upstream.open_connections == 1
            tg.cancel_scope.cancel()
        await upstream.wait_for_client_close(timeout=1.0)
        assert upstream.open_connections == 0
        # The session survives the cancellation.
        assert [t.name for t in (await client.list_tools()).tools] == ["ticks", "job-status"]


@MODES
async def test_a_client_timeout_closes_the_upstream_connection(mode: str) -> None:
    connected = anyio.Event()
    async with session(hold_open(connected), mode) as (client, upstream):
        with pytest.raises(mcp.MCPError, match=r"(?i)timed out"):
            arguments = {"symbol": "X", "max_seconds": 60}
            await client.call_tool("ticks", arguments, read_timeout_seconds=0.5)
        assert connected.is_set()
        await upstream.wait_for_client_close(timeout=1.0)
        assert upstream.open_connections == 0


# -- end to end: subprocess over stdio and streamable HTTP ------------------------------------


def write_manual(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(manual_doc(base_url)))
    return path


def bridge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_sse_bridge", *args]


async def test_stdio_end_to_end_with_progress(tmp_path: Path) -> None:
    async with serve(script(*ticks(5))) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        command = bridge_command(
            "--manual", str(manual), "--log-level", "debug", "--no-subscriptions"
        )
        params = StdioServerParameters(
            command=command[0], args=command[1:], env={"API_KEY": SECRET}
        )
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        with anyio.fail_after(20):
            async with mcp.Client(params) as client:
                names = [tool.name for tool in (await client.list_tools()).tools]
                arguments = {"symbol": "X", "max_events": 3}
                result = await client.call_tool("ticks", arguments, progress_callback=on_progress)
                missing = await client.call_tool("ticks", {})
    assert names == ["ticks", "job-status"]
    assert batch_of(result)["count"] == 3
    assert seen == [1, 2, 3]
    assert missing.is_error and "symbol" in text_of(missing)


async def test_stdio_writes_nothing_but_json_rpc_to_stdout(tmp_path: Path) -> None:
    """Debug logging on, a warning-raising manual, a real call: stdout stays pure JSON-RPC."""
    async with serve(script(*ticks(2))) as upstream:
        doc = manual_doc(upstream.url)
        doc["tools"][0]["tool_call_template"]["http_method"] = "GET"  # unknown key: a warning
        manual = tmp_path / "feed.json"
        manual.write_text(json.dumps(doc))
        requests = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "ticks", "arguments": {"symbol": "X"}, "_meta": {"progressToken": "t"}}},
        ]  # fmt: skip
        command = bridge_command(
            "--manual", str(manual), "--log-level", "debug", "--no-subscriptions"
        )
        env = {**os.environ, "API_KEY": SECRET}
        lines: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            async with await anyio.open_process(
                command, env=env, stderr=subprocess.DEVNULL
            ) as proc:
                assert proc.stdin and proc.stdout
                for request in requests:
                    await proc.stdin.send((json.dumps(request) + "\n").encode())
                buffer = b""
                while not any(line.get("id") == 2 for line in lines):
                    buffer += await proc.stdout.receive()
                    *complete, buffer = buffer.split(b"\n")
                    lines += [json.loads(line) for line in complete]  # raises on non-JSON
                await proc.stdin.aclose()
                assert await proc.wait() == 0
    assert all(line["jsonrpc"] == "2.0" for line in lines)
    progress = [line["params"]["progress"] for line in lines if "method" in line]
    assert progress == [1, 2]
    final = next(line for line in lines if line.get("id") == 2)
    assert final["result"]["structuredContent"]["count"] == 2


async def test_stdio_on_inherited_pipes_a_1_mb_result_then_eof_restores_them(
    tmp_path: Path,
) -> None:
    """Pipes are served non-blocking: a 1 MB result arrives whole, EOF on stdin ends the
    server with 0, and the pipe ends it shared with us are blocking again afterwards."""
    big = [{"event": "tick", "id": str(i), "data": f"{i}" * 300_000} for i in range(4)]
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "ticks", "arguments": {"symbol": "X", "max_events": 4}}},
    ]  # fmt: skip
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    os.set_blocking(stdin_w, False)  # our ends only: their descriptions are not the child's
    os.set_blocking(stdout_r, False)
    try:
        async with serve(script(*big)) as upstream:
            manual = write_manual(tmp_path, upstream.url)
            command = bridge_command("--manual", str(manual), "--max-bytes", "2000000")
            env = {**os.environ, "API_KEY": SECRET}
            with anyio.fail_after(30):
                async with await anyio.open_process(
                    command, stdin=stdin_r, stdout=stdout_w, stderr=subprocess.DEVNULL, env=env
                ) as proc:
                    writer = PipeWriter(stdin_w)
                    for request in requests:
                        await writer.write(json.dumps(request) + "\n")
                    lines = aiter(PipeReader(stdout_r))
                    replies = [json.loads(await anext(lines)) for _ in range(2)]
                    os.close(stdin_w)
                    stdin_w = -1
                    assert await proc.wait() == 0
        assert os.get_blocking(stdin_r) and os.get_blocking(stdout_w)
    finally:
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            if fd >= 0:
                os.close(fd)
    assert [reply["id"] for reply in replies] == [1, 2]
    batch = replies[1]["result"]["structuredContent"]
    assert [event["data"] for event in batch["events"]] == [event["data"] for event in big]
    assert json.loads(replies[1]["result"]["content"][0]["text"]) == batch


async def start_http_bridge(
    manual: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[anyio.abc.Process, str]:
    """Start `serve --transport http --port 0`; the URL is read from its stderr banner."""
    command = bridge_command(
        "--transport", "http", "--port", "0", "--manual", str(manual), "--no-subscriptions", *extra
    )
    process = await anyio.open_process(command, env={**os.environ, **(env or {})})
    assert process.stderr is not None
    banner = b""
    with anyio.fail_after(20):
        while b"/mcp" not in banner:
            banner += await process.stderr.receive()
    match = re.search(rb"http://127\.0\.0\.1:\d+/mcp", banner)
    assert match, banner
    return process, match[0].decode()


@contextlib.asynccontextmanager
async def http_bridge(
    manual: Path, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    process, url = await start_http_bridge(manual, *extra, env=env)
    async with process:
        try:
            yield url
        finally:
            process.terminate()
            with anyio.fail_after(10):
                await process.wait()


async def test_streamable_http_with_progress_and_bearer_token(tmp_path: Path) -> None:
    async with serve(script(*ticks(5))) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        env = {"API_KEY": SECRET, "MCP_SSE_BRIDGE_AUTH_TOKEN": "t0ken-t0ken"}
        async with http_bridge(manual, env=env) as url:
            async with httpx2.AsyncClient() as plain:
                refused = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                wrong = [
                    "Bearer nope",
                    "Bearer t0ken-t0ken2",
                    "Basic t0ken-t0ken",
                    "Bearert0ken-t0ken",
                ]
                statuses = [
                    (await plain.post(url, headers={"Authorization": given}, json={})).status_code
                    for given in [*wrong, "BEARER   t0ken-t0ken"]  # RFC 9110: any case, 1*SP
                ]
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert statuses[:-1] == [401] * len(wrong) and statuses[-1] != 401

            seen: list[tuple[float, float | None]] = []

            async def on_progress(progress: float, total: float | None, message: str | None):
                seen.append((progress, total))

            headers = {"Authorization": "bearer t0ken-t0ken"}
            async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
                with anyio.fail_after(20):
                    async with mcp.Client(streamable_http_client(url, http_client=http)) as client:
                        names = [tool.name for tool in (await client.list_tools()).tools]
                        arguments = {"symbol": "X", "max_events": 3}
                        result = await client.call_tool(
                            "ticks", arguments, progress_callback=on_progress
                        )
    assert names == ["ticks", "job-status"]
    assert batch_of(result)["count"] == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
