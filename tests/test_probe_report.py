"""`mcp-sse-bridge probe`: what it finds out about real loopback feeds of each kind."""

from __future__ import annotations

import re

import pytest

from mcp_sse_bridge.authoring import ids
from mcp_sse_bridge.authoring.inference import Sketch
from mcp_sse_bridge.authoring.probe import ProbeSettings, probe
from mcp_sse_bridge.authoring.report import ProbeReport, render
from mcp_sse_bridge.authoring.suggest import plan_tool, tool_name
from mcp_sse_bridge.errors import AuthError, BridgeError
from mcp_sse_bridge.manual.variables import Variables
from tests import probe_feeds
from tests.sse_server import Handler, Request, Response, serve

pytestmark = pytest.mark.anyio

SETTINGS = ProbeSettings(seconds=5, events=20, resume_seconds=3)


async def probed(handler: Handler, path: str = "/stream", **words: str) -> ProbeReport:
    async with serve(handler) as upstream:
        plan = plan_tool(upstream.url + path, words, [], None)
        report, _ = await probe(plan, SETTINGS, variables=Variables({}, environ={}))
    return report


async def test_numeric_ids_that_the_server_resumes_after() -> None:
    report = await probed(probe_feeds.numeric(history=True))
    assert (report.status, report.content_type) == (200, "text/event-stream")
    assert report.count == 20 and report.stop_reason == "max_events"
    assert report.id_style == ids.NUMERIC
    assert (report.first_id, report.last_id) == ("1", "20")
    assert report.resume == ids.RESUMED
    assert report.resume_cursor == "19"  # so that a resume must send event 20, which is known
    assert report.first_byte_s is not None and report.first_event_s is not None
    assert report.first_byte_s <= report.first_event_s < SETTINGS.seconds


async def test_a_server_that_starts_over_is_found_to_replay() -> None:
    report = await probed(probe_feeds.numeric(history=False))
    assert report.id_style == ids.NUMERIC
    assert report.resume == ids.REPLAYED
    assert "first event after the reconnect: id '1'" in report.resume_detail


async def test_uuid_ids_without_history_are_found_to_be_ignored() -> None:
    report = await probed(probe_feeds.uuids())
    assert report.id_style == ids.UUID
    assert report.resume == ids.IGNORED
    assert [t.name for t in report.event_types] == ["message"]


async def test_a_feed_without_ids_cannot_resume() -> None:
    report = await probed(probe_feeds.anonymous())
    assert report.id_style == ids.NONE
    assert report.resume == ids.NO_IDS
    assert report.resume_cursor == ""
    (message,) = report.event_types
    assert message.schema["type"] == ["string", "object"]  # "heartbeat" and JSON objects


async def test_keep_alives_retry_and_event_types_are_reported() -> None:
    report = await probed(probe_feeds.numeric(history=True))
    keep = report.keep_alives
    # ": connected", then one before every fourth event up to 20; the read that completes event
    # 20 may carry more (how the kernel coalesces writes), never more than the feed sent.
    assert 1 + 5 <= keep.comments <= 1 + 10
    assert set(keep.dataless) == {"ping"} and 5 <= keep.dataless["ping"] <= 10
    assert keep.comment_interval_s is not None and keep.dataless_interval_s is not None
    assert report.retry_ms == [2500]
    price, trade = report.event_types
    assert (price.name, price.count, trade.name, trade.count) == ("price", 16, "trade", 4)
    assert price.rate_per_s > 0
    assert price.fields == "symbol (string), price (number), volume (integer)"
    assert price.schema["required"] == ["symbol", "price", "volume"]
    assert price.schema["properties"]["symbol"]["enum"] == ["AAPL", "MSFT", "NVDA"]
    assert price.sample.startswith('{"symbol": "MSFT"')


async def test_a_gzip_stream_is_decoded_and_its_compression_named() -> None:
    report = await probed(probe_feeds.gzipped())
    assert report.encoding == "gzip"
    assert report.count == 20 and report.resume == ids.RESUMED


async def test_path_placeholders_and_query_words_reach_the_upstream() -> None:
    seen: list[Request] = []
    feed = probe_feeds.numeric(history=True)

    async def handler(request: Request, response: Response) -> None:
        seen.append(request)
        await feed(request, response)

    report = await probed(handler, "/prices/{symbol}?depth=5", symbol="A/B", venue="X")
    assert report.where.endswith("/prices/{symbol}")
    assert seen[0].path == "/prices/A%2FB"
    assert sorted(seen[0].query) == [("depth", "5"), ("venue", "X")]
    assert seen[1].headers["last-event-id"] == "19"


async def test_a_refused_handshake_is_the_calls_typed_error() -> None:
    async def refuse(request: Request, response: Response) -> None:
        await response.simple(401, "no key")

    async with serve(refuse) as upstream:
        plan = plan_tool(upstream.url, {}, [], None)
        with pytest.raises(AuthError, match="HTTP 401"):
            await probe(plan, SETTINGS, variables=Variables({}, environ={}))


async def test_a_stream_the_server_ends_says_so() -> None:
    async def short(request: Request, response: Response) -> None:
        await response.send("id: 1\ndata: one\n\nid: 2\ndata: two\n\n")
        await response.finish()

    report = await probed(short)
    assert (report.count, report.stop_reason) == (2, "closed")
    text = "\n".join(render(report))
    assert "the server ended the stream" in text


async def test_the_report_reads_in_ten_seconds() -> None:
    text = "\n".join(render(await probed(probe_feeds.numeric(history=True))))
    assert re.search(r"HTTP 200, text/event-stream, no compression", text)
    assert re.search(r"first byte after \d+ ms, first event after \d+ ms, 20 event\(s\)", text)
    assert "price: 16 (" in text and "fields: symbol (string)" in text
    assert "ids: numeric, increasing (first '1', last '20')" in text
    assert "retry: 2500 ms" in text
    assert re.search(r"keep-alives: \d+ comment line\(s\), every [\d.e-]+ s; data-less", text)
    assert re.search(r"events \(ping x\d+\)", text)
    assert "Last-Event-ID (reconnected with id 19): resumed" in text


def test_bad_probe_urls_and_words_are_clear_errors() -> None:
    with pytest.raises(BridgeError, match="not an http"):
        plan_tool("ftp://x/y", {}, [], None)
    with pytest.raises(BridgeError, match=r"placeholder \{symbol\} has no value"):
        plan_tool("https://x/p/{symbol}", {}, [], None)
    with pytest.raises(BridgeError, match="header injection"):
        plan_tool("https://x/p", {}, ["X-A: b\rc"], None)
    with pytest.raises(BridgeError, match="not a variable name"):
        plan_tool("https://x/p", {}, [], "A-B")


def test_tool_names_come_from_the_path() -> None:
    assert tool_name("/api/v1/prices/stream/{symbol}", "x.com") == "prices_stream"
    assert tool_name("/", "events.example.com") == "events"
    assert tool_name("/2024/feed", "x") == "stream_2024_feed"


def test_the_inferred_schema_is_bounded_and_says_what_was_seen() -> None:
    sketch = Sketch()
    for i in range(10):
        sketch.add({"n": i, "x": 1.5, "tag": "a" if i % 2 else "b", f"k{i}": True})
    schema = sketch.schema()
    assert schema["properties"]["n"] == {"type": "integer"}
    assert schema["properties"]["tag"] == {"type": "string", "enum": ["a", "b"]}
    assert schema["required"] == ["n", "x", "tag"]
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    many = Sketch()
    many.add(deep)
    many.add({f"key{i}": i for i in range(500)})
    assert len(many.schema()["properties"]) == 64  # MAX_PROPERTIES
    assert many.fields().endswith("...")
