"""Reading a subscription with the call tools' shaping arguments: `latest_per` and `summary` fold
everything buffered after the cursor, `fields` projects a plain read, `format: "lines"` changes
only the text. A real loopback upstream, the bridge through `mcp.Client`, both eras."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp
import pytest
from jsonschema import Draft202012Validator

from mcp_sse_bridge.calls.bridge import Limits
from tests.feeds import MODES, SECRET, client_for, read, subscribe
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio

PRICES = [("AAPL", 1.0), ("MSFT", 2.0), ("AAPL", 3.0), ("NVDA", 4.0), ("MSFT", 5.0), ("AAPL", 6.0)]


async def prices(request: Request, response: Response) -> None:
    """Six priced ticks of three symbols, then a quiet open connection."""
    await response.head()
    for n, (symbol, price) in enumerate(PRICES, 1):
        data = {"symbol": symbol, "price": price, "venue": "x"}
        await response.send(sse_lines({"event": "tick", "id": str(n), "data": data}))
    await wait_disconnect(response)


async def all_buffered(client: mcp.Client, count: int = len(PRICES)) -> tuple[str, str]:
    """Subscribe and wait (with `wait_seconds`) until `count` events are buffered; returns the
    subscription id and its first cursor, which reads everything again."""
    sub = await subscribe(client)
    start = cursor = sub["cursor"]
    seen = 0
    with anyio.fail_after(10):
        while seen < count:
            got = await read(client, sub["subscription"], cursor=cursor, wait_seconds=2)
            seen, cursor = seen + got["count"], got["cursor"]
    return sub["subscription"], start


async def shaped_read(client: mcp.Client, **arguments: Any) -> tuple[dict[str, Any], list[str]]:
    """The structured result, checked against the listed output schema, and the text blocks."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    result = await client.call_tool("read_subscription", arguments)
    texts = [block.text for block in result.content]
    assert not result.is_error, texts
    schema = tools["read_subscription"].output_schema
    Draft202012Validator(schema).validate(result.structured_content)
    return result.structured_content, texts


@pytest.mark.parametrize("mode", MODES)
async def test_latest_per_folds_everything_buffered_after_the_cursor(mode: str) -> None:
    async with serve(prices) as upstream, client_for(upstream, mode) as client:
        sub, start = await all_buffered(client)
        data, texts = await shaped_read(
            client, subscription=sub, cursor=start, latest_per="symbol", max_events=1
        )
        assert [(e["data"]["symbol"], e["data"]["price"]) for e in data["events"]] == [
            ("AAPL", 6.0)
        ]
        assert data["skipped"]["keys"] == 3  # max_events caps the keys: MSFT's and NVDA's events
        data, texts = await shaped_read(client, subscription=sub, cursor=start, latest_per="symbol")
        latest = [(e["data"]["symbol"], e["data"]["price"]) for e in data["events"]]
        assert latest == [("NVDA", 4.0), ("MSFT", 5.0), ("AAPL", 6.0)]  # by latest arrival
        assert data["folded"] == len(PRICES) and data["count"] == 3
        assert texts[0].startswith("latest per symbol: 3 of 6 events")
        assert json.loads(texts[1]) == data
        again, _ = await shaped_read(client, subscription=sub, latest_per="symbol")
        assert again["events"] == [] and again["folded"] == 0  # the read position moved on


@pytest.mark.parametrize("mode", MODES)
async def test_summary_fields_and_lines_shape_a_read_as_they_shape_a_batch(mode: str) -> None:
    async with serve(prices) as upstream, client_for(upstream, mode) as client:
        sub, start = await all_buffered(client)
        data, texts = await shaped_read(
            client, subscription=sub, cursor=start, summary=True, max_events=2
        )
        summary = data["summary"]
        assert summary["count"] == len(PRICES) and summary["by_event"] == {"tick": 6}
        price = summary["fields"]["price"]["number"]
        assert (price["min"], price["max"], price["last"]) == (1.0, 6.0, 6.0)
        assert price["mean"] == pytest.approx(3.5)
        assert [e["id"] for e in data["events"]] == ["5", "6"]  # the last max_events as samples
        assert texts[0].startswith("summary of 6 events")

        data, texts = await shaped_read(client, subscription=sub, cursor=start, fields=["price"])
        assert [e["data"] for e in data["events"]] == [{"price": p} for _, p in PRICES]
        assert all(e["received_at"].endswith("Z") for e in data["events"])

        data, texts = await shaped_read(client, subscription=sub, cursor=start, format="lines")
        assert len(texts) == 1 and data["count"] == len(PRICES)
        lines = texts[0].splitlines()
        assert f'cursor="{data["cursor"]}" has_more=false dropped=0 state="live"' in lines[0]
        assert lines[-1].startswith('tick 6 {"symbol":"AAPL","price":6.0')


async def test_shaping_arguments_of_a_read_are_checked_like_a_calls() -> None:
    async with serve(prices) as upstream, client_for(upstream, "auto") as client:
        sub = (await subscribe(client))["subscription"]
        result = await client.call_tool(
            "read_subscription", {"subscription": sub, "latest_per": "a..b"}
        )
        assert result.is_error
        assert "latest_per takes dotted paths" in result.content[0].text
        for bad, says in [
            ({"latest_per": ""}, "latest_per"),
            ({"fields": "symbol"}, "fields must"),
        ]:
            result = await client.call_tool("read_subscription", {"subscription": sub, **bad})
            text = result.content[0].text
            assert result.is_error and says in text and "input schema" not in text, text


@pytest.mark.parametrize("mode", MODES)
async def test_null_is_absent_for_the_optional_arguments_of_subscribe_and_read(mode: str) -> None:
    async with serve(prices) as upstream, client_for(upstream, mode) as client:
        optional = ["event_types", "match", "buffer_events"]
        sub = await subscribe(client, **dict.fromkeys(optional))
        shaping = ["fields", "latest_per", "summary", "format"]
        nulls = dict.fromkeys(["cursor", "max_events", "wait_seconds", *shaping])
        data, texts = await shaped_read(client, subscription=sub["subscription"], **nulls)
        assert "summary" not in data and "folded" not in data and json.loads(texts[0]) == data
        for wrong in ({"subscription": None}, {"subscription": sub["subscription"], "typo": None}):
            refused = await client.call_tool("read_subscription", wrong)
            assert refused.is_error, wrong


async def test_a_summary_read_past_the_summary_limit_leaves_the_rest_for_the_next_read() -> None:
    limits = Limits(max_summary_events=4)
    async with serve(prices) as upstream, client_for(upstream, "auto", limits=limits) as client:
        sub, start = await all_buffered(client)
        first, _ = await shaped_read(client, subscription=sub, cursor=start, summary=True)
        assert first["summary"]["count"] == 4 and first["summary"]["limit_reached"] is True
        assert first["has_more"] is True and first["summary"]["last"]["id"] == "4"
        rest, _ = await shaped_read(client, subscription=sub, summary=True)
        assert rest["summary"]["count"] == 2 and rest["summary"]["first"]["id"] == "5"
        assert rest["has_more"] is False and rest["summary"]["limit_reached"] is False


async def test_a_note_never_echoes_a_secret_the_caller_typed_as_a_path() -> None:
    async with serve(prices) as upstream, client_for(upstream, "auto") as client:
        sub, start = await all_buffered(client)
        for tool, arguments in [
            ("ticks", {"fields": [SECRET, "price"], "max_events": 2}),
            ("ticks", {"latest_per": SECRET, "fields": ["price"], "max_seconds": 1}),
            ("read_subscription", {"subscription": sub, "cursor": start, "fields": [SECRET]}),
        ]:
            result = await client.call_tool(tool, arguments)
            text = " ".join(block.text for block in result.content)
            assert not result.is_error and " ***" in text, text
            assert SECRET not in text and SECRET not in json.dumps(result.structured_content)


async def text_ticks(request: Request, response: Response) -> None:
    await response.head()
    for n in range(1, 4):
        await response.send(sse_lines({"event": "log", "id": str(n), "data": f"line {n}"}))
    await wait_disconnect(response)


async def test_a_read_that_shaping_refuses_moves_no_cursor() -> None:
    async with serve(text_ticks) as upstream, client_for(upstream, "auto") as client:
        sub_id, start = await all_buffered(client, 3)
        first = await read(client, sub_id, cursor=start, max_events=1)  # the position: after 1
        assert [event["id"] for event in first["events"]] == ["1"]
        refused = await client.call_tool(
            "read_subscription", {"subscription": sub_id, "latest_per": "level"}
        )
        assert refused.is_error and "latest_per" in refused.content[0].text
        after = await read(client, sub_id, max_events=100)
        assert [event["id"] for event in after["events"]] == ["2", "3"]
