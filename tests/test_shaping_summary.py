"""`summary`: aggregates over every accepted event, checked against a computation here.

Unit tests of the aggregation and of `shape()` (the entry point for buffered events), then end to
end through a real MCP client against a loopback SSE server, bounds included.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from mcp_sse_bridge.calls.bridge import Limits
from mcp_sse_bridge.shaping import Shaping, shape
from mcp_sse_bridge.shaping.summary import MAX_DISTINCT, MAX_TEXT, Summary
from tests.shaping_support import Feed, call, client_for, prices

pytestmark = pytest.mark.anyio


def expected_fields(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's fields for `prices()` events, computed the plain way."""
    datas = [e["data"] for e in events if isinstance(e["data"], dict)]
    numbers = [d["quote"]["price"] for d in datas]
    symbols = Counter(d["symbol"] for d in datas)
    venues = Counter(d["quote"]["venue"] for d in datas)
    halted = [d["halted"] for d in datas]

    def strings(counts: Counter[str]) -> dict[str, Any]:
        top = [{"value": v, "count": n} for v, n in counts.most_common(5)]
        return {
            "count": sum(counts.values()),
            "string": {"count": sum(counts.values()), "distinct": len(counts), "top": top},
        }

    return {
        "symbol": strings(symbols),
        "quote.price": {
            "count": len(numbers),
            "number": {
                "count": len(numbers),
                "min": min(numbers),
                "max": max(numbers),
                "mean": round(sum(numbers) / len(numbers), 6),
                "last": numbers[-1],
            },
        },
        "quote.venue": strings(venues),
        "halted": {
            "count": len(halted),
            "boolean": {"true": sum(halted), "false": halted.count(False)},
        },
    }


def test_summary_numbers_strings_and_booleans_match_a_plain_computation() -> None:
    events = prices(1234)
    summary = Summary(None)
    for start in range(0, len(events), 100):  # fed a chunk at a time, as a stream is
        summary.feed(events[start : start + 100], at=0.0)
    result = summary.to_dict(limit_reached=False)
    assert result["count"] == 1234 and result["by_event"] == {"price": 1234}
    assert result["first"] == {"id": "0", "at": "1970-01-01T00:00:00.000Z"}
    assert result["last"]["id"] == "1233"
    assert result["fields"] == expected_fields(events)


def test_mixed_values_are_aggregated_per_kind() -> None:
    values = [1, "a", True, None, 2.5, [1], "a", False, {"x": 1}]
    summary = Summary(None)
    summary.feed([{"event": "m", "id": "", "data": {"v": v}} for v in values], at=0.0)
    assert summary.to_dict(limit_reached=False)["fields"]["v"] == {
        "count": 9,
        "number": {"count": 2, "min": 1, "max": 2.5, "mean": 1.75, "last": 2.5},
        "string": {"count": 2, "distinct": 1, "top": [{"value": "a", "count": 2}]},
        "boolean": {"true": 1, "false": 1},
        "null": 1,
        "other": 2,  # the list and the object
    }


def test_data_that_is_no_object_is_aggregated_as_values_and_strings_count_as_text() -> None:
    datas = [[1, 2], "a line", "a line", 7, 2.5, True, None, {"k": 1}]
    summary = Summary(None)
    summary.feed([{"event": "m", "id": str(i), "data": d} for i, d in enumerate(datas)], at=0.0)
    result = summary.to_dict(limit_reached=False)
    assert result["text"] == 2 and list(result["fields"]) == ["k"]
    assert result["values"] == {
        "count": 7,
        "number": {"count": 2, "min": 2.5, "max": 7, "mean": 4.75, "last": 2.5},
        "string": {"count": 2, "distinct": 1, "top": [{"value": "a line", "count": 2}]},
        "boolean": {"true": 1, "false": 0},
        "null": 1,
        "other": 1,
    }


def test_a_key_that_held_an_object_and_then_a_number_counts_the_number_too() -> None:
    summary = Summary(None)
    chunks = [[{"q": {"p": 1}}], [{"q": 5}, {"q": {"p": 2}}], [{"q": 6}]]
    for i, chunk in enumerate(chunks):
        summary.feed([{"event": "m", "id": str(i), "data": d} for d in chunk], at=0.0)
    fields = summary.to_dict(limit_reached=False)["fields"]
    assert fields["q.p"]["number"]["count"] == 2
    assert fields["q"] == {
        "count": 3,
        "number": {"count": 2, "min": 5, "max": 6, "mean": 5.5, "last": 6},
        "other": 1,  # the object beside the 5, once q was a field of its own
    }


def test_long_texts_are_cut_with_a_mark_and_fields_left_out_to_fit_max_bytes() -> None:
    long = "x" * (MAX_TEXT + 50)
    data = {f"field{i}": f"{long}{i}" for i in range(8)}
    summary = Summary(None)
    summary.feed([{"event": long, "id": long, "data": data}], at=0.0)
    result = summary.to_dict(limit_reached=False)
    assert result["by_event"] == {"x" * MAX_TEXT + "…": 1}
    assert result["last"]["id"] == "x" * MAX_TEXT + "…"
    assert result["fields"]["field0"]["string"]["top"][0]["value"] == "x" * MAX_TEXT + "…"
    whole = len(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())
    fitted = summary.to_dict(limit_reached=False, max_bytes=whole // 2)
    assert len(json.dumps(fitted, ensure_ascii=False, separators=(",", ":")).encode()) <= whole // 2
    left = fitted["fields_over_budget"]
    assert 0 < left < 8 and list(fitted["fields"]) == [f"field{i}" for i in range(8 - left)]


def test_distinct_strings_are_tracked_up_to_a_bound() -> None:
    summary = Summary((("id",),))
    summary.feed(
        [{"event": "m", "id": "", "data": {"id": f"u{i}"}} for i in range(MAX_DISTINCT + 5)], at=0.0
    )
    text = summary.to_dict(limit_reached=False)["fields"]["id"]["string"]
    assert text["distinct"] == MAX_DISTINCT and text["distinct_capped"] is True
    assert text["count"] == MAX_DISTINCT + 5


def test_shape_applies_to_a_list_of_buffered_events() -> None:
    events = [*prices(20), {"event": "note", "id": "n", "data": "hello"}]
    shaping = Shaping(fields=(("quote", "price"),), summary=True)
    shaped = shape(shaping, events, max_events=3, summary_limit=1000, at=86400.0)
    assert shaped.summary is not None
    assert list(shaped.summary["fields"]) == ["quote.price"]
    assert shaped.summary["text"] == 1 and shaped.summary["first"]["at"].startswith("1970-01-02")
    assert [e["id"] for e in shaped.events] == ["18", "19", "n"]
    assert shaped.events[0]["data"] == {"quote": {"price": 127.0}}
    assert shaped.note == (
        "summary of 21 events; events holds the last 3; "
        "fields quote.price: each event's data keeps only these paths"
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_summary_aggregates_every_event_and_returns_the_last_as_samples(mode: str) -> None:
    events = prices(300)
    async with client_for(Feed({"prices": events}), mode=mode) as client:
        batch, text = await call(client, "prices", {"summary": True, "max_events": 2})
    summary = batch["summary"]
    assert summary["count"] == 300 and summary["limit_reached"] is False
    assert summary["fields"] == expected_fields(events)
    assert [e["id"] for e in batch["events"]] == ["298", "299"]
    assert batch["stop_reason"] == "closed" and "folded" not in batch
    assert text[0] == "summary of 300 events; events holds the last 2"
    assert json.loads(text[1]) == batch


async def test_summary_with_fields_aggregates_only_those_fields() -> None:
    async with client_for(Feed({"prices": prices(50)})) as client:
        batch, _ = await call(
            client, "prices", {"summary": True, "fields": ["symbol", "quote.bid"]}
        )
    assert list(batch["summary"]["fields"]) == ["symbol"]
    assert all(set(e["data"]) == {"symbol"} for e in batch["events"])


async def test_summary_with_latest_per_returns_the_current_state_beside_the_aggregates() -> None:
    async with client_for(Feed({"prices": prices(50)})) as client:
        batch, text = await call(client, "prices", {"summary": True, "latest_per": "symbol"})
    assert batch["summary"]["count"] == 50 and batch["folded"] == 50
    assert [e["id"] for e in batch["events"]] == ["45", "46", "47", "48", "49"]
    assert text[0] == "summary of 50 events; latest per symbol: 5 of 50 events"


async def test_the_summary_limit_ends_the_call_and_says_so() -> None:
    limits = Limits(max_summary_events=120)
    async with client_for(Feed({"prices": prices(500)}, hold=True), limits=limits) as client:
        batch, text = await call(client, "prices", {"summary": True})
    assert batch["summary"]["count"] == 120 and batch["summary"]["limit_reached"] is True
    assert batch["stop_reason"] == "max_events" and batch["last_event_id"] == "119"
    assert "(stopped at the limit of 120)" in text[0]


async def test_max_bytes_applies_to_the_summary_and_its_samples() -> None:
    async with client_for(Feed({"prices": prices(200)}), limits=Limits(max_bytes=1200)) as client:
        batch, _ = await call(client, "prices", {"summary": True, "max_events": 50})
    assert batch["summary"]["count"] == 200
    returned = len(json.dumps(batch["summary"], separators=(",", ":"))) + sum(
        len(e["event"]) + len(e["id"]) + len(json.dumps(e["data"], separators=(",", ":")))
        for e in batch["events"]
    )
    assert returned <= 1200 and batch["skipped"]["over_budget"] == 50 - batch["count"]
