"""Shaping and match paths are bounded (256 characters, 32 segments), so a hostile `fields`,
`latest_per` or `match` key is one short error, and a `fields` note stays a line; and null means
"absent" for every optional control argument alike. Calls go through an in-process MCP client
(both protocol eras) to a loopback feed."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import types

from mcp_sse_bridge.shaping.paths import MAX_PATH_CHARS, MAX_PATH_SEGMENTS
from tests.acceptance.bridges import bridge_of, mcp_call, tool
from tests.sse_server import Request, Response, serve, sse_lines

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]
EVENTS = [{"symbol": s, "price": p, "quote": {"venue": "X"}} for s, p in [("A", 1), ("B", 2)]]


async def feed(request: Request, response: Response) -> None:
    for number, data in enumerate(EVENTS, start=1):
        await response.send(sse_lines({"event": "price", "id": str(number), "data": data}))
    await response.finish()


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def called(arguments: dict[str, Any], mode: str) -> types.CallToolResult:
    async with serve(feed) as upstream:
        bridge = bridge_of(tool("prices", f"{upstream.url}/s"))
        return await mcp_call(bridge, "prices", arguments, mode=mode)


LONG = "k" * 100_000
DEEP = ".".join(["a"] * 20_000)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"fields": ["symbol", LONG]}, "fields"),
        ({"fields": [DEEP]}, "fields"),
        ({"latest_per": LONG}, "latest_per"),
        ({"latest_per": DEEP}, "latest_per"),
        ({"match": {LONG: 1}}, "match"),
        ({"match": {DEEP: 1}}, "match"),
        ({"match": {f"k{i}": i for i in range(51)}}, "match"),
    ],
)
async def test_an_over_long_path_is_one_short_error(
    arguments: dict[str, Any], argument: str, mode: str
) -> None:
    result = await called(arguments, mode)
    text = text_of(result)
    assert result.is_error, text
    assert text.startswith(argument) or f"{argument}:" in text, text
    assert "at most" in text and len(text) < 600, text


async def test_paths_at_the_bounds_are_accepted_and_the_note_stays_short() -> None:
    longest = ".".join(["q" * 7] * MAX_PATH_SEGMENTS)[:MAX_PATH_CHARS]
    fields = ["symbol", *(f"{i}{longest}"[:MAX_PATH_CHARS] for i in range(49))]
    result = await called({"fields": fields, "format": "lines"}, "legacy")
    text = text_of(result)
    assert not result.is_error, text
    note = text.splitlines()[1]
    assert note.startswith("fields symbol, ") and "more: each event's data keeps only" in note
    assert len(note) < 600, len(note)
    assert (result.structured_content or {})["count"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_null_is_absent_for_every_optional_control_argument(mode: str) -> None:
    nulls = dict.fromkeys(
        [
            "max_events",
            "max_seconds",
            "last_event_id",
            "until_event",
            "event_types",
            "match",
            "fields",
            "latest_per",
            "summary",
            "format",
        ]
    )
    result = await called(nulls, mode)
    assert not result.is_error, text_of(result)
    batch = result.structured_content or {}
    assert batch["count"] == 2 and "summary" not in batch
    assert [block.type for block in result.content] == ["text"]  # JSON, no shaping note
