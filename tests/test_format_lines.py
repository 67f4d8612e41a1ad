"""`format: "lines"`: a header line and one compact line per event as the text content, while
`structuredContent` stays the full batch (checked through a real MCP client)."""

from __future__ import annotations

import pytest

from mcp_sse_bridge.shaping import render_lines
from tests.shaping_support import Feed, call, client_for, prices

pytestmark = pytest.mark.anyio

BATCH = {
    "events": [
        {"event": "price", "id": "41", "data": {"symbol": "AAPL", "price": 187.3}},
        {"event": "log", "id": "", "data": "two\nlines"},
        {"event": "my type", "id": "a b", "data": "[DONE]"},
    ],
    "count": 3,
    "stop_reason": "closed",
    "last_event_id": "a b",
    "elapsed_s": 0.1,
    "reconnects": 0,
    "skipped": {"filtered": 0, "oversized": 0},
}


def test_each_event_is_one_line_after_the_header() -> None:
    assert render_lines(BATCH).split("\n") == [
        'count=3 stop_reason=closed last_event_id="a b"',
        'price 41 {"symbol":"AAPL","price":187.3}',
        'log - "two\\nlines"',
        '"my type" "a b" [DONE]',
    ]


def test_a_shaped_batch_shows_its_note_folded_count_and_summary() -> None:
    shaped = {**BATCH, "events": BATCH["events"][:1], "count": 1, "folded": 9}
    shaped["summary"] = {"count": 9}
    assert render_lines(shaped, "latest per symbol: 1 of 9 events").split("\n") == [
        'count=1 stop_reason=closed last_event_id="a b" folded=9',
        "latest per symbol: 1 of 9 events",
        'summary {"count":9}',
        'price 41 {"symbol":"AAPL","price":187.3}',
    ]


def test_an_error_batch_says_so_in_its_second_line() -> None:
    failed = {**BATCH, "stop_reason": "error", "error": "upstream\nclosed"}
    assert render_lines(failed).split("\n")[1] == "error: upstream closed"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_lines_change_the_text_but_not_the_structured_content(mode: str) -> None:
    events = [*prices(3), {"event": "done", "id": "d", "data": "[DONE]"}]
    async with client_for(Feed({"prices": events}), mode=mode) as client:
        plain, _ = await call(client, "prices", {})
        lined, text = await call(client, "prices", {"format": "lines"})
    assert {**lined, "elapsed_s": 0} == {**plain, "elapsed_s": 0}
    assert text == [
        "\n".join(
            [
                'count=4 stop_reason=closed last_event_id="d"',
                'price 0 {"symbol":"AAPL","quote":{"price":100.0,"venue":"Y"},"halted":true}',
                'price 1 {"symbol":"MSFT","quote":{"price":101.5,"venue":"X"},"halted":false}',
                'price 2 {"symbol":"NVDA","quote":{"price":103.0,"venue":"X"},"halted":false}',
                "done d [DONE]",
            ]
        )
    ]


async def test_lines_with_a_summary_carry_the_note_and_the_aggregates() -> None:
    async with client_for(Feed({"prices": prices(10)})) as client:
        batch, text = await call(
            client,
            "prices",
            {"format": "lines", "summary": True, "max_events": 1, "fields": ["symbol"]},
        )
    head, note, summary, last = text[0].split("\n")
    assert head == 'count=1 stop_reason=closed last_event_id="9"'
    assert note.startswith("summary of 10 events; events holds the last 1; fields symbol")
    assert summary.startswith('summary {"count":10,')
    assert last == 'price 9 {"symbol":"GOOG"}'
    assert batch["summary"]["fields"]["symbol"]["string"]["distinct"] == 5
