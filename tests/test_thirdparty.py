"""The parser and the engine against SSE servers nobody on this team wrote (see thirdparty.py).

Each server's quirk is first pinned on the wire with plain httpx2 (so a test fails if the
server changes, not silently passes), then parsed by `EventStreamParser`, then called through
`Bridge` with a manual written to a temporary file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.upstream.sse import EventStreamParser, ServerSentEvent
from tests.thirdparty import (
    NchanServer,
    flaky_proxy,
    nchan_server,
    sse_channel_server,
    starlette_server,
)

pytestmark = pytest.mark.anyio

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def starlette() -> Iterator[str]:
    with starlette_server() as url:
        yield url


@pytest.fixture(scope="module")
def sse_channel() -> Iterator[str]:
    with sse_channel_server() as url:
        yield url


@pytest.fixture(scope="module")
def nchan() -> Iterator[NchanServer]:
    with nchan_server() as server:
        yield server


async def read_raw(
    url: str, *, until: bytes, times: int = 1, headers: dict[str, str] | None = None
) -> bytes:
    """Bytes of a stream until `until` has been seen `times` times (10 s at most)."""
    body = b""
    with anyio.fail_after(10):
        async with (
            httpx2.AsyncClient() as client,
            client.stream("GET", url, headers=headers or SSE) as response,
        ):
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                body += chunk
                if body.count(until) >= times:
                    return body
    raise AssertionError(f"stream ended before {until!r}: {body[-300:]!r}")


async def parse(
    url: str, count: int, *, headers: dict[str, str] | None = None
) -> tuple[list[ServerSentEvent], EventStreamParser]:
    """The first `count` events our parser finds in a live stream (10 s at most)."""
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    with anyio.fail_after(10):
        async with (
            httpx2.AsyncClient() as client,
            client.stream("GET", url, headers=headers or SSE) as response,
        ):
            async for chunk in response.aiter_raw():
                events += parser.feed(chunk)
                if len(events) >= count:
                    return events[:count], parser
    raise AssertionError(f"stream ended after {len(events)} of {count} events")


def manual_file(tmp_path: Path, url: str, **template: Any) -> str:
    """A one-tool UTCP manual for `url`, written where load_manual reads it (a trusted file)."""
    manual = {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": "feed",
                "description": "A third-party event stream.",
                "inputs": {"type": "object", "properties": {}},
                "tool_call_template": {"call_template_type": "sse", "url": url, **template},
            }
        ],
    }
    path = tmp_path / "thirdparty.json"
    path.write_text(json.dumps(manual))
    return str(path)


def bridge(tmp_path: Path, url: str, **template: Any) -> Bridge:
    return Bridge(
        [load_manual(manual_file(tmp_path, url, **template))], variables=Variables({}, {})
    )


def ids(batch_events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in batch_events]


# --- sse-starlette: CRLF line ends, `: ping` comments, multi-line data, Last-Event-ID ----------


async def test_starlette_wire_format_is_crlf_with_comment_pings(starlette: str) -> None:
    raw = await read_raw(f"{starlette}/ticks?count=3&interval=0.1&ping=0.02", until=b"id: 3")
    assert b'id: 1\r\nevent: tick\r\ndata: {"n": 1}\r\n\r\n' in raw
    assert b"\r\n: ping - " in raw
    assert b"\n\n" not in raw.replace(b"\r\n", b"")


async def test_starlette_parsed_events(starlette: str) -> None:
    url = f"{starlette}/ticks?count=6&interval=0.02&ping=0.01&retry=120"
    events, parser = await parse(url, 6)
    assert [e.id for e in events] == ["1", "2", "3", "4", "5", "6"]
    assert {e.event for e in events} == {"tick"}
    assert events[0].data == '{"n": 1}'
    assert events[2].data == "line one of 3\nline two of 3"
    assert parser.retry == 120
    assert parser.last_event_id == "6"


async def test_starlette_bridge_batch_skips_pings(starlette: str, tmp_path: Path) -> None:
    url = f"{starlette}/ticks?count=5&interval=0.05&ping=0.01"
    async with bridge(tmp_path, url) as b:
        batch = await b.call("feed", {"max_events": 10, "max_seconds": 10})
    assert batch.stop_reason == "closed"
    assert ids(batch.events) == ["1", "2", "3", "4", "5"]
    assert batch.events[0]["data"] == {"n": 1}
    assert batch.events[2]["data"] == "line one of 3\nline two of 3"
    assert batch.last_event_id == "5"
    assert batch.reconnects == 0


async def test_starlette_drops_resume_with_last_event_id(starlette: str, tmp_path: Path) -> None:
    # The server's `retry: 100` overrides the manual's 30 s, else the call would time out.
    async with flaky_proxy(starlette, cuts=[140, 61, 250, 97]) as proxy:
        url = f"{proxy.url}/ticks?count=1000&interval=0.01&ping=0.01&retry=100"
        async with bridge(tmp_path, url, retry_timeout=30000) as b:
            batch = await b.call("feed", {"max_events": 15, "max_seconds": 10})
    assert batch.stop_reason == "max_events"
    assert ids(batch.events) == [str(n) for n in range(1, 16)]
    assert batch.reconnects == 4
    assert proxy.last_event_ids[0] is None
    assert len(proxy.last_event_ids) == 5
    assert all(i and i.isdigit() for i in proxy.last_event_ids[1:])


# --- sse-channel: `:ok`, a `retry:` line with no blank line, numeric ids, history replay -------


async def test_sse_channel_wire_format(sse_channel: str) -> None:
    raw = await read_raw(f"{sse_channel}/channel/sysInfo", until=b"data:")
    opening = b":ok\n\nretry: 250\n"
    assert raw.startswith(opening)
    # No blank line after the retry line: it joins the next block (an event or a `:` ping).
    assert raw[len(opening) : len(opening) + 1] in (b"e", b"i", b":")


async def test_sse_channel_parsed_events(sse_channel: str) -> None:
    events, parser = await parse(f"{sse_channel}/channel/sysInfo", 4)
    assert parser.retry == 250
    numbers = [int(e.id) for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + 4))
    assert {e.event for e in events} <= {"freemem", "loadavg"}
    assert all(float(e.data) >= 0 for e in events)


async def test_sse_channel_replays_history_after_last_event_id(sse_channel: str) -> None:
    live, _ = await parse(f"{sse_channel}/channel/sysInfo", 6)
    since = live[1].id
    replayed, _ = await parse(
        f"{sse_channel}/channel/sysInfo", 4, headers={**SSE, "Last-Event-ID": since}
    )
    assert [e.id for e in replayed] == [str(int(since) + n) for n in range(1, 5)]
    assert replayed[:4] == live[2:6]


async def test_sse_channel_bridge_resumes_without_duplicates(
    sse_channel: str, tmp_path: Path
) -> None:
    async with bridge(tmp_path, f"{sse_channel}/channel/sysInfo") as b:
        first = await b.call("feed", {"max_events": 4, "max_seconds": 10})
        second = await b.call(
            "feed", {"max_events": 4, "max_seconds": 10, "last_event_id": first.last_event_id}
        )
    numbers = [int(i) for i in ids(first.events) + ids(second.events)]
    assert numbers == list(range(numbers[0], numbers[0] + 8))


async def test_sse_channel_drops_replay_history_exactly_once(
    sse_channel: str, tmp_path: Path
) -> None:
    # The first cut leaves one whole event, so every reconnect has an id to resume from; the
    # example's `retry: 250` overrides the manual's default 30 s, else the call would time out.
    async with flaky_proxy(sse_channel, cuts=[100, 45, 90]) as proxy:
        url = f"{proxy.url}/channel/sysInfo"
        async with bridge(tmp_path, url, event_type="freemem") as b:
            batch = await b.call("feed", {"max_events": 6, "max_seconds": 15})
    assert batch.stop_reason == "max_events"
    assert batch.reconnects == 3
    numbers = [int(i) for i in ids(batch.events)]
    # freemem events carry every other id: consecutive, none lost, none repeated.
    assert numbers == list(range(numbers[0], numbers[0] + 12, 2))
    assert {e["event"] for e in batch.events} == {"freemem"}
    resumed_from = proxy.last_event_ids[1:]
    assert len(resumed_from) == 3 and all(i and i.isdigit() for i in resumed_from)


# --- nginx + nchan: 403 without Accept, ids like 1795264950:3, data-less `event: ping` --------


async def test_nchan_refuses_subscribers_without_accept_header(nchan: NchanServer) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(f"{nchan.url}/sub/noaccept")
    assert response.status_code == 403


async def test_nchan_wire_format_and_parser(nchan: NchanServer) -> None:
    first = await nchan.publish("wire", "hello")
    second = await nchan.publish("wire", "two\nlines", event="note")
    assert re.fullmatch(r"\d+:\d+", first)
    raw = await read_raw(f"{nchan.url}/sub/wire", until=b"event: ping\n\n")
    assert f"id: {first}\ndata: hello\n\n".encode() in raw
    parser = EventStreamParser()
    assert parser.feed(raw) == [
        ServerSentEvent(event="message", data="hello", id=first),
        ServerSentEvent(event="note", data="two\nlines", id=second),
    ]
    assert parser.last_event_id == second


async def test_nchan_bridge_ignores_pings(nchan: NchanServer, tmp_path: Path) -> None:
    first = await nchan.publish("pings", '{"n": 1}', event="tick")

    async def publish_after_pings() -> None:
        # A subscriber opened with the bridge's sees two pings: the bridge has seen one too.
        await read_raw(f"{nchan.url}/sub/pings", until=b"event: ping\n\n", times=2)
        await nchan.publish("pings", '{"n": 2}', event="done")

    async with bridge(tmp_path, f"{nchan.url}/sub/pings") as b, anyio.create_task_group() as tg:
        tg.start_soon(publish_after_pings)
        batch = await b.call("feed", {"max_events": 5, "max_seconds": 10, "until_event": "done"})
    assert batch.stop_reason == "until_event"
    assert [e["event"] for e in batch.events] == ["tick", "done"]
    assert batch.events[0] == {"event": "tick", "id": first, "data": {"n": 1}}


async def test_nchan_resumes_after_colon_id(nchan: NchanServer, tmp_path: Path) -> None:
    sent = [await nchan.publish("resume", f"m{n}") for n in range(5)]
    async with bridge(tmp_path, f"{nchan.url}/sub/resume") as b:
        first = await b.call("feed", {"max_events": 2, "max_seconds": 10})
        rest = await b.call(
            "feed", {"max_events": 3, "max_seconds": 10, "last_event_id": first.last_event_id}
        )
    assert first.last_event_id == sent[1]
    assert ids(first.events) + ids(rest.events) == sent
    assert [e["data"] for e in rest.events] == ["m2", "m3", "m4"]
