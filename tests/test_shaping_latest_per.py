"""`latest_per`: the newest event per key, i.e. the current state of a feed.

Unit tests of `LatestPer`, then end to end through a real MCP client against loopback SSE
servers: the call collects until a time bound, `until_event` or the end, not `max_events`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_sse_bridge.calls.bridge import Limits
from mcp_sse_bridge.shaping.latest import LatestPer
from tests.shaping_support import Feed, call, client_for, error_of, prices

pytestmark = pytest.mark.anyio


def event(i: int, data: Any) -> dict[str, Any]:
    return {"event": "price", "id": str(i), "data": data}


def test_interleaved_keys_keep_the_newest_each_in_order_of_latest_arrival() -> None:
    latest = LatestPer(("symbol",), max_keys=10)
    latest.feed([event(i, {"symbol": s}) for i, s in enumerate("ABACBA")])
    assert [(e["id"], e["data"]["symbol"]) for e in latest.events()] == [
        ("3", "C"),
        ("4", "B"),
        ("5", "A"),
    ]
    assert latest.folded == 6 and latest.skipped == latest.missing == 0


def test_keys_that_are_numbers_strings_booleans_and_null_stay_distinct() -> None:
    keys = [1, "1", True, None, 1.0, {"a": 1}, [1], 1, None]
    latest = LatestPer(("k",), max_keys=10)
    latest.feed([event(i, {"k": k}) for i, k in enumerate(keys)])
    assert [e["data"]["k"] for e in latest.events()] == ["1", True, 1.0, {"a": 1}, [1], 1, None]


def test_more_keys_than_max_events_keeps_the_first_keys_and_counts_the_rest() -> None:
    latest = LatestPer(("s",), max_keys=2)
    latest.feed([event(i, {"s": s}) for i, s in enumerate("ABCDAC")])
    assert [e["id"] for e in latest.events()] == ["1", "4"]
    assert (latest.folded, latest.skipped) == (3, 3)


def test_events_without_the_path_are_counted_as_missing() -> None:
    latest = LatestPer(("quote", "venue"), max_keys=5)
    latest.feed(
        [
            event(0, {"quote": {}}),
            event(1, "text"),
            event(2, [1]),
            event(3, {"quote": {"venue": "X"}}),
        ]
    )
    assert [e["id"] for e in latest.events()] == ["3"]
    assert (latest.missing, latest.text) == (3, 1)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_latest_per_returns_the_current_state_and_says_so(mode: str) -> None:
    events = [*prices(41), {"event": "price", "id": "x", "data": {"no": "symbol"}}]
    async with client_for(Feed({"prices": events}), mode=mode) as client:
        batch, text = await call(client, "prices", {"latest_per": "symbol"})
    assert [(e["id"], e["data"]["symbol"]) for e in batch["events"]] == [
        ("36", "MSFT"),
        ("37", "NVDA"),
        ("38", "AMZN"),
        ("39", "GOOG"),
        ("40", "AAPL"),
    ]
    assert batch["folded"] == 41 and batch["count"] == 5
    assert batch["skipped"] == {"filtered": 1, "oversized": 0, "keys": 0}
    assert batch["stop_reason"] == "closed" and batch["last_event_id"] == "x"
    assert text[0] == (
        "latest per symbol: 5 of 41 events (1 event(s) without the path, counted as filtered)"
    )
    assert json.loads(text[1]) == batch


async def test_latest_per_collects_until_a_time_bound_not_max_events() -> None:
    async with client_for(Feed({"prices": prices(30)}, hold=True)) as client:
        batch, _ = await call(
            client, "prices", {"latest_per": "symbol", "max_events": 2, "max_seconds": 0.5}
        )
    assert batch["stop_reason"] == "max_seconds"
    assert [e["data"]["symbol"] for e in batch["events"]] == ["AAPL", "MSFT"]
    assert batch["folded"] == 12 and batch["skipped"]["keys"] == 18


async def test_latest_per_stops_at_until_event_and_folds_it_in() -> None:
    events = [*prices(7), {"event": "close", "id": "c", "data": {"symbol": "AAPL"}}, *prices(3)]
    async with client_for(Feed({"prices": events}, hold=True)) as client:
        batch, _ = await call(client, "prices", {"latest_per": "symbol", "until_event": "close"})
    assert batch["stop_reason"] == "until_event" and batch["last_event_id"] == "c"
    assert [e["id"] for e in batch["events"]] == ["2", "3", "4", "6", "c"]  # c is AAPL
    assert batch["folded"] == 8


async def test_match_filters_before_latest_per_and_fields_keep_the_key() -> None:
    async with client_for(Feed({"prices": prices(40)})) as client:
        batch, text = await call(
            client,
            "prices",
            {"match": {"quote.venue": "Y"}, "latest_per": "symbol", "fields": ["quote.price"]},
        )
    kept: dict[str, dict[str, Any]] = {}  # the same question, answered here
    for e in prices(40):
        if e["data"]["quote"]["venue"] == "Y":
            kept.pop(e["data"]["symbol"], None)
            kept[e["data"]["symbol"]] = e
    assert batch["events"] == [
        {**e, "data": {"symbol": s, "quote": {"price": e["data"]["quote"]["price"]}}}
        for s, e in kept.items()
    ]
    assert batch["folded"] == 14 and batch["skipped"]["filtered"] == 26
    assert text[0].startswith("latest per symbol: 5 of 14 events; fields quote.price")


async def test_max_bytes_bounds_the_returned_events_keeping_the_newest() -> None:
    async with client_for(Feed({"prices": prices(100)}), limits=Limits(max_bytes=300)) as client:
        batch, text = await call(client, "prices", {"latest_per": "symbol"})
    size = sum(
        len(e["event"]) + len(e["id"]) + len(json.dumps(e["data"], separators=(",", ":")))
        for e in batch["events"]
    )
    assert 0 < batch["count"] < 5 and size <= 300
    assert batch["events"][-1]["id"] == "99"
    assert batch["skipped"]["over_budget"] == 5 - batch["count"]
    assert "left out to fit max_bytes" in text[0]


async def test_latest_per_on_a_stream_of_text_is_a_clear_error() -> None:
    lines = [{"event": "log", "id": str(i), "data": f"line {i}"} for i in range(3)]
    async with client_for(Feed({"logs": lines})) as client:
        text = await error_of(client, "logs", {"latest_per": "level"})
    assert "latest_per='level' needs JSON data" in text and "3 event(s)" in text


async def test_latest_per_over_json_without_the_path_and_some_text_is_a_result_not_an_error() -> (
    None
):
    lines = [
        {"event": "log", "id": "1", "data": {"other": 1}},
        {"event": "log", "id": "2", "data": "a text line"},
        {"event": "log", "id": "3", "data": {"other": 2}},
    ]
    async with client_for(Feed({"logs": lines})) as client:
        batch, text = await call(client, "logs", {"latest_per": "level"})
    assert batch["count"] == 0 and batch["folded"] == 0 and batch["skipped"]["filtered"] == 3
    assert (
        text[0]
        == "latest per level: 0 of 0 events (3 event(s) without the path, counted as filtered)"
    )
