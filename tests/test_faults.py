"""Faults: every one ends in events kept, a partial batch with its stop_reason, or a typed error.

Calls go through `Bridge` (manual file -> variables -> request -> stream -> batch) to a
scripted loopback server (tests/sse_server.py). No call may outlive its `max_seconds` by more
than a second, and nothing but a `Batch` or a `BridgeError` may come out of one. The figures the
README's Guarantees quote (peak memory under a 100 MB line, cancellation latency, reconnect
counts) are measured here and printed (`pytest -s`).
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_sse_bridge.calls.batch import Batch
from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.errors import (
    AuthError,
    BridgeError,
    ConnectError,
    HTTPStatusError,
    ProtocolError,
    ServerError,
    UpstreamError,
)
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables
from tests.sse_server import Request, Response, SSEServer, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio

Handler = Callable[[Request, Response], Awaitable[None]]
FAST = {"retry_timeout": 10}  # ms: reconnect at once unless a test says otherwise
RSS_CALL = Path(__file__).parent / "servers" / "rss_call.py"


def write_manual(tmp_path: Path, url: str, **template: Any) -> str:
    tool = {
        "name": "feed",
        "description": "A scripted event stream.",
        "inputs": {"type": "object", "properties": {}},
        "tool_call_template": {"call_template_type": "sse", "url": url, **template},
    }
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"utcp_version": "1.0.1", "tools": [tool]}))
    return str(path)


def make_bridge(tmp_path: Path, url: str, limits: Limits | None = None, **template: Any) -> Bridge:
    manual = load_manual(write_manual(tmp_path, url, **{**FAST, **template}))
    return Bridge([manual], variables=Variables({}, {}), limits=limits or Limits())


async def call(
    tmp_path: Path,
    server: SSEServer,
    arguments: dict[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    **template: Any,
) -> Batch:
    """One call to the server's /stream, never allowed past its max_seconds + 1 s."""
    arguments = {"max_events": 100, "max_seconds": 5, **(arguments or {})}
    with anyio.fail_after(arguments["max_seconds"] + 1):
        async with make_bridge(tmp_path, f"{server.url}/stream", limits, **template) as bridge:
            return await bridge.call("feed", arguments)


def numbered(first: int, last: int) -> str:
    return sse_lines(*({"id": n, "data": {"n": n}} for n in range(first, last + 1)))


def ids(batch: Batch) -> list[str]:
    return [event["id"] for event in batch.events]


def resume_from(request: Request) -> int:
    return int(request.headers.get("last-event-id") or 0)


# --- drops ----------------------------------------------------------------------------------


async def test_repeated_drops_mid_event_and_between_events_lose_and_repeat_nothing(
    tmp_path: Path,
) -> None:
    connections = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal connections
        connections += 1
        start = resume_from(request)
        if connections > 6:
            await response.send(numbered(start + 1, 20))
            return await response.finish()
        await response.send(numbered(start + 1, start + 3))
        if connections % 2:  # mid-event: half of the next event, its id line included
            await response.send(f'id: {start + 4}\ndata: {{"n":')
        await response.abort()

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert batch.stop_reason == "closed"
    assert ids(batch) == [str(n) for n in range(1, 21)]
    assert [e["data"]["n"] for e in batch.events] == list(range(1, 21))
    assert batch.reconnects == 6
    sent = [r.headers.get("last-event-id") for r in server.requests]
    assert sent == [None, "3", "6", "9", "12", "15", "18"]
    print(f"\nreconnects: {batch.reconnects} drops -> {batch.reconnects} reconnects, 0 lost")


async def test_server_ignoring_last_event_id_repeats_its_events(tmp_path: Path) -> None:
    # Documented behaviour: the bridge sends Last-Event-ID and passes on what the server sends;
    # it does not de-duplicate by id (ids need not be unique), so a server that restarts its
    # stream from the beginning on every connection repeats events in the batch.
    async def handler(request: Request, response: Response) -> None:
        await response.send(numbered(1, 3))
        await response.abort()

    async with serve(handler) as server:
        batch = await call(tmp_path, server, {"max_events": 7})
    assert batch.stop_reason == "max_events"
    assert ids(batch) == ["1", "2", "3", "1", "2", "3", "1"]
    assert batch.reconnects == 2
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "3", "3"]


async def test_5xx_and_503_during_reconnect_are_retried(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        attempt = len(server.requests)
        if attempt == 1:
            await response.send(numbered(1, 2))
            await response.abort()
        elif attempt == 2:
            await response.simple(500, "<h1>Internal Server Error</h1>", "text/html")
        elif attempt == 3:
            await response.simple(503, "restarting", headers={"Retry-After": "0"})
        else:
            await response.send(numbered(resume_from(request) + 1, 4))
            await response.finish()

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert ids(batch) == ["1", "2", "3", "4"]
    assert batch.reconnects == 3
    assert batch.stop_reason == "closed"


async def test_upstream_error_after_events_keeps_them_in_a_partial_batch(
    tmp_path: Path,
) -> None:
    async def handler(request: Request, response: Response) -> None:
        if request.headers.get("last-event-id"):
            return await response.simple(401, "token revoked")
        await response.send(numbered(1, 2))
        await response.abort()

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert ids(batch) == ["1", "2"]
    assert batch.stop_reason == "error"
    assert batch.error is not None and "401" in batch.error


# --- refused handshakes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "headers", "error"),
    [
        (401, {}, AuthError),
        (403, {}, AuthError),
        (404, {}, HTTPStatusError),
        (500, {}, ServerError),
        (503, {"Retry-After": "60"}, ServerError),  # longer than max_seconds: not retried
        (302, {"Location": "http://localhost:1/elsewhere"}, HTTPStatusError),
        (301, {}, HTTPStatusError),
    ],
)
async def test_refused_handshake_is_a_typed_error_and_not_retried(
    tmp_path: Path, code: int, headers: dict[str, str], error: type[BridgeError]
) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(code, "nope", headers=headers)

    async with serve(handler) as server:
        with pytest.raises(error) as caught:
            await call(tmp_path, server)
    assert caught.value.status == code
    assert str(code) in str(caught.value) and caught.value.hint
    assert len(server.requests) == 1


@pytest.mark.parametrize("content_type", ["application/json", "text/html; charset=utf-8", None])
async def test_wrong_content_type_is_a_protocol_error_not_retried(
    tmp_path: Path, content_type: str | None
) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.head(200, content_type=content_type)
        await response.send(sse_lines({"data": "looks like a stream"}))
        await response.finish()

    async with serve(handler) as server:
        with pytest.raises(ProtocolError, match="text/event-stream"):
            await call(tmp_path, server)
    assert len(server.requests) == 1


async def test_html_error_page_is_quoted_short_and_clean(tmp_path: Path) -> None:
    page = (
        "<!doctype html><html><head><style>body{color:red}</style>"
        "<script>alert('x')</script></head><body><h1>502 Bad Gateway</h1>\x1b\x00"
        + "<p>upstream timed out</p>" * 20_000
        + "</body></html>"
    )

    async def handler(request: Request, response: Response) -> None:
        await response.simple(502, page, "text/html")

    async with serve(handler) as server:
        with pytest.raises(ServerError) as caught:
            await call(tmp_path, server)
    excerpt = caught.value.body_excerpt
    assert excerpt.startswith("502 Bad Gateway upstream timed out")
    assert len(excerpt) <= 300 and len(str(caught.value)) < 1000
    assert not any(c in excerpt for c in "<>{}\x1b\x00") and "alert" not in excerpt


async def test_204_means_stop(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(204, content_type="text/event-stream")

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert (batch.stop_reason, batch.count, batch.reconnects) == ("closed", 0, 0)
    assert len(server.requests) == 1


async def test_204_during_reconnect_ends_the_batch(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        if request.headers.get("last-event-id"):
            return await response.simple(204, content_type="text/event-stream")
        await response.send(numbered(1, 2))
        await response.abort()

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert (ids(batch), batch.stop_reason, batch.reconnects) == (["1", "2"], "closed", 1)


# --- time bounds ----------------------------------------------------------------------------


async def test_headers_that_never_arrive_hit_the_connect_timeout(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        await wait_disconnect(response)

    async with serve(handler) as server:
        started = time.monotonic()
        with pytest.raises(ConnectError, match="No response headers"):
            await call(tmp_path, server, limits=Limits(connect_timeout=0.3))
    assert time.monotonic() - started < 2.0  # 0.3 s timeout, slack for a busy machine


OAUTH2 = {"auth_type": "oauth2", "client_id": "bridge", "client_secret": "s3cr3t-client"}


@pytest.mark.parametrize(
    ("arguments", "limits", "bound", "oauth2"),
    [
        ({"max_seconds": 0.3}, None, "0.3 s (max_seconds)", False),
        ({}, Limits(idle_seconds=0.3), "0.3 s (idle)", False),
        ({"max_seconds": 0.3}, None, "0.3 s (max_seconds)", True),
    ],
    ids=["max_seconds", "idle_seconds", "oauth2-token-endpoint"],
)
async def test_a_first_handshake_that_never_ends_is_a_connect_error(
    tmp_path: Path, arguments: dict[str, Any], limits: Limits | None, bound: str, oauth2: bool
) -> None:
    """No response headers (or no token) before the call's time runs out: a ConnectError, not
    an empty batch that looks like a quiet stream. (Once connected, running out of time is a
    normal batch: see the silent stream and the trickle of comments below.)"""

    async def handler(request: Request, response: Response) -> None:
        await wait_disconnect(response)

    async with serve(handler) as server:
        auth = {"auth": {**OAUTH2, "token_url": f"{server.url}/token"}} if oauth2 else {}
        started = time.monotonic()
        # The stream's URL when the stream was asked; none while the token was awaited.
        upstream = "the upstream" if oauth2 else f"the upstream (GET {server.url}/stream)"
        with pytest.raises(
            ConnectError, match=re.escape(f"No response from {upstream} within {bound}")
        ):
            await call(tmp_path, server, arguments, limits=limits, **auth)
    assert time.monotonic() - started < 1.3
    assert [request.path for request in server.requests] == ["/token" if oauth2 else "/stream"]


@pytest.mark.parametrize(
    ("status", "content_type", "error", "says"),
    [
        (401, "text/plain", AuthError, "HTTP 401"),
        (503, "text/plain", ServerError, "HTTP 503"),
        (200, "text/html", ProtocolError, "'text/html'"),
    ],
    ids=["401", "503", "200-html"],
)
async def test_a_refusal_whose_body_trickles_is_still_its_error(
    tmp_path: Path, status: int, content_type: str, error: type[BridgeError], says: str
) -> None:
    """The refusal's head at once, its body never finished: the typed error with what arrived,
    well within max_seconds, instead of an empty "max_seconds" batch."""

    async def handler(request: Request, response: Response) -> None:
        await response.head(status, content_type=content_type)
        await response.send("first words")
        await wait_disconnect(response)

    async with serve(handler) as server:
        started = time.monotonic()
        with pytest.raises(error, match=says) as caught:
            await call(tmp_path, server, {"max_seconds": 0.5})
    assert isinstance(caught.value, UpstreamError)
    assert caught.value.body_excerpt == "first words"
    assert time.monotonic() - started < 1.5


async def test_silent_stream_ends_idle(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.send(numbered(1, 1))
        await wait_disconnect(response)

    async with serve(handler) as server:
        idle = await call(tmp_path, server, limits=Limits(idle_seconds=0.3))
        timed = await call(tmp_path, server, {"max_seconds": 0.4})
    assert (ids(idle), idle.stop_reason) == (["1"], "idle")
    assert 0.3 <= idle.elapsed_s < 1.3
    assert (ids(timed), timed.stop_reason) == (["1"], "max_seconds")


async def test_a_trickle_of_comments_is_no_event(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        for _ in range(500):  # 10 s at most
            await response.send(": keep-alive\n\n")
            await anyio.sleep(0.02)

    async with serve(handler) as server:
        timed = await call(tmp_path, server, {"max_seconds": 0.5})
        idle = await call(tmp_path, server, limits=Limits(idle_seconds=0.3))
    assert (timed.stop_reason, timed.count) == ("max_seconds", 0)
    assert (idle.stop_reason, idle.count) == ("idle", 0)


# --- hostile volumes ------------------------------------------------------------------------


async def test_100_mb_without_a_newline_keeps_memory_bounded(tmp_path: Path) -> None:
    chunk = b"x" * 65536

    async def handler(request: Request, response: Response) -> None:
        await response.send(b"data: ")
        for _ in range(100 * 16):  # 100 MiB
            await response.send(chunk)
        await response.send(b"\n\nid: 2\ndata: after\n\n")
        await response.finish()

    async with serve(handler) as server:
        manual = write_manual(tmp_path, f"{server.url}/stream")
        arguments = json.dumps({"max_events": 5, "max_seconds": 60})
        argv = [sys.executable, str(RSS_CALL), manual, "feed", arguments]
        with anyio.fail_after(90):
            done = await anyio.run_process(argv, check=False)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    batch = report["batch"]
    assert batch["events"] == [{"event": "message", "id": "2", "data": "after"}]
    assert batch["skipped"]["oversized"] == 1 and batch["stop_reason"] == "closed"
    growth_mib = (report["peak_kib"] - report["baseline_kib"]) / 1024
    print(
        f"\n100 MiB line: peak RSS {report['peak_kib'] / 1024:.1f} MiB, "
        f"+{growth_mib:.1f} MiB during the call, {batch['elapsed_s']:.2f} s"
    )
    assert growth_mib < 16


FLOOD = 1_000_000
TINY = b"data: x\n\n"
PER_CHUNK = 256 * 1024 // len(TINY)


async def flood(request: Request, response: Response) -> None:
    """1M tiny events in 256 KiB chunks."""
    for _ in range(FLOOD // PER_CHUNK):
        await response.send(TINY * PER_CHUNK)
    await response.send(TINY * (FLOOD % PER_CHUNK))
    await response.finish()


async def test_flood_of_1m_events_is_bounded_by_max_events(tmp_path: Path) -> None:
    async with serve(flood) as server:
        batch = await call(tmp_path, server, {"max_events": 100})
        await server.wait_for_client_close(timeout=1.0)
    assert (batch.count, batch.stop_reason) == (100, "max_events")


async def test_flood_of_1m_events_is_bounded_by_max_bytes(tmp_path: Path) -> None:
    async with serve(flood) as server:
        batch = await call(tmp_path, server, {"max_events": 1000}, limits=Limits(max_bytes=250))
        await server.wait_for_client_close(timeout=1.0)
    # max_bytes counts each event's type, id and data: "message" + "x" is 8 bytes.
    assert (batch.count, batch.stop_reason) == (250 // len("messagex"), "max_bytes")


async def test_flood_of_1m_filtered_events_passes_through_bounded(tmp_path: Path) -> None:
    async with serve(flood) as server:
        batch = await call(tmp_path, server, {"event_types": ["nope"], "max_seconds": 30})
    assert (batch.count, batch.stop_reason) == (0, "closed")
    assert batch.skipped["filtered"] == FLOOD
    print(f"\n1M filtered events in {batch.elapsed_s:.2f} s")


async def test_invalid_utf8_bom_and_cr_only_line_ends(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.send(b"\xef\xbb")  # a BOM split across chunks
        await response.send(b"\xbfdata: caf\xc3")  # and a character split across chunks
        await response.send(b"\xa9 \xff\xfe!\r\rid: 7\revent: note\rdata: cr\rdata: only\r\r")
        await response.send(b"data: \xef\xbb\xbfkept\r\n\r\n")  # a later BOM is data
        await response.finish()

    async with serve(handler) as server:
        batch = await call(tmp_path, server)
    assert batch.events == [
        {"event": "message", "id": "", "data": "caf\u00e9 \ufffd\ufffd!"},
        {"event": "note", "id": "7", "data": "cr\nonly"},
        {"event": "message", "id": "7", "data": "\ufeffkept"},
    ]


# --- cancellation and load ------------------------------------------------------------------


async def test_cancelled_call_closes_the_upstream_within_a_second(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.send(numbered(1, 1))
        await wait_disconnect(response)

    got_event = anyio.Event()

    async def on_event(event: dict[str, Any], count: int) -> None:
        got_event.set()

    async with serve(handler) as server:
        bridge = make_bridge(tmp_path, f"{server.url}/stream")
        scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                await bridge.call("feed", {"max_seconds": 30}, on_event=on_event)

        async with bridge, anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(5):
                await got_event.wait()
            assert server.open_connections == 1
            cancelled_at = time.monotonic()
            scope.cancel()
            await server.wait_for_client_close(timeout=1.0)
            latency_ms = (time.monotonic() - cancelled_at) * 1000
    assert server.open_connections == 0
    print(f"\ncancellation latency: {latency_ms:.1f} ms until the server saw the close")
    assert latency_ms < 1000


BEHAVIOURS = [
    "events",
    "drop",
    "drop_mid_event",
    "500",
    "503",
    "401",
    "404",
    "html",
    "wrong_type",
    "204",
    "no_headers",
    "silent",
    "garbage",
    "slow",
]


async def test_200_concurrent_calls_with_random_upstream_failures(tmp_path: Path) -> None:
    rng = random.Random(4)
    seen: dict[str, int] = dict.fromkeys(BEHAVIOURS, 0)

    async def handler(request: Request, response: Response) -> None:
        behaviour = rng.choice(BEHAVIOURS)
        seen[behaviour] += 1
        start = resume_from(request)
        if behaviour in ("500", "503", "401", "404"):
            await response.simple(int(behaviour), "failing on purpose")
        elif behaviour == "html":
            await response.simple(
                502, "<html><body><h1>Bad gateway</h1></body></html>", "text/html"
            )
        elif behaviour == "wrong_type":
            await response.simple(200, '{"not": "a stream"}', "application/json")
        elif behaviour == "204":
            await response.simple(204, content_type="text/event-stream")
        elif behaviour == "no_headers":
            await wait_disconnect(response)
        elif behaviour == "garbage":
            await response.raw(b"SPAM \x00\xff\r\n\r\n")
        else:
            await response.send(numbered(start + 1, start + 3))
            if behaviour == "drop_mid_event":
                await response.send(f"id: {start + 4}\ndata: half")
            if behaviour in ("drop", "drop_mid_event"):
                return await response.abort()
            if behaviour == "slow":
                await anyio.sleep(rng.uniform(0, 0.5))
            elif behaviour == "silent":
                return await wait_disconnect(response)
            await response.finish()

    outcomes: list[Batch | BridgeError] = []
    limits = Limits(connect_timeout=1.0)
    async with serve(handler) as server:
        bridge = make_bridge(tmp_path, f"{server.url}/stream", limits, retry_timeout=20)

        async def one() -> None:
            try:
                outcomes.append(await bridge.call("feed", {"max_events": 5, "max_seconds": 2}))
            except BridgeError as err:
                outcomes.append(err)

        started = time.monotonic()
        with anyio.fail_after(10):
            async with bridge, anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(one)
            await server.wait_for_client_close(timeout=2.0)
        elapsed = time.monotonic() - started
    batches = [o for o in outcomes if isinstance(o, Batch)]
    errors = [o for o in outcomes if isinstance(o, BridgeError)]
    assert len(outcomes) == 200
    assert batches and errors
    assert all(b.count <= 5 and b.elapsed_s < 3 for b in batches)
    assert all(str(e) and e.kind for e in errors)
    assert all(seen[b] for b in BEHAVIOURS)
    reasons = sorted({b.stop_reason for b in batches})
    kinds = sorted({e.kind for e in errors})
    print(f"\n200 calls in {elapsed:.1f} s: {len(batches)} batches {reasons}, errors {kinds}")
