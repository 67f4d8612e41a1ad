"""What the shaping tests share: a loopback price feed, a bridge over it, checked results.

The feed is a real SSE server on 127.0.0.1 (tests/sse_server.py); the bridge is reached through
the SDK's `mcp.Client` in process, so each result is the one a host receives.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import mcp
import mcp_types as types
from jsonschema import Draft202012Validator

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.manual import parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import BATCH_SCHEMA, build_server
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

DEFAULT_LIMITS = Limits()
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG"]


def prices(count: int, symbols: list[Any] = SYMBOLS) -> list[dict[str, Any]]:
    """`count` price events cycling over `symbols`, ids 0.., nested quote with price/venue."""
    return [
        {
            "event": "price",
            "id": str(i),
            "data": {
                "symbol": symbols[i % len(symbols)],
                "quote": {"price": round(100 + i * 1.5, 2), "venue": "X" if i % 3 else "Y"},
                "halted": i % 4 == 0,
            },
        }
        for i in range(count)
    ]


class Feed:
    """Serves `/<name>` streams: each sends its events then ends, or holds the connection
    open (`hold`) so that only a bound can end the call."""

    def __init__(self, streams: dict[str, list[dict[str, Any]]], *, hold: bool = False) -> None:
        self.streams = streams
        self.hold = hold

    async def __call__(self, request: Request, response: Response) -> None:
        events = self.streams.get(request.path.strip("/"))
        if events is None:
            await response.simple(404, "no such stream")
            return
        await response.head()
        await response.send("".join(sse_lines(event) for event in events))
        if self.hold:
            await wait_disconnect(response)
        else:
            await response.finish()


def manual_text(base_url: str, names: list[str]) -> str:
    tools = [
        {
            "name": name,
            "description": f"The {name} stream.",
            "inputs": {"type": "object", "properties": {}},
            "tool_call_template": {
                "call_template_type": "sse",
                "url": f"{base_url}/{name}",
                "reconnect": False,
            },
        }
        for name in names
    ]
    return json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": tools})


@contextlib.asynccontextmanager
async def client_for(
    feed: Feed, *, mode: str = "auto", limits: Limits = DEFAULT_LIMITS
) -> AsyncIterator[mcp.Client]:
    """An MCP client session with a bridge whose tools are the feed's streams."""
    async with serve(feed) as upstream:
        text = manual_text(upstream.url, list(feed.streams))
        manual = parse_manual(text, name="feed", source="feed.json", trusted=True)
        bridge = Bridge([manual], variables=Variables(environ={}), limits=limits)
        async with mcp.Client(build_server(bridge), mode=mode) as client:
            yield client


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


def checked(result: types.CallToolResult, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The batch, after checking it as a strict host would: no error, structured content valid
    against the listed output schema (which is the bridge's one schema)."""
    assert not result.is_error, texts(result)
    assert schema == BATCH_SCHEMA
    batch = result.structured_content
    assert batch is not None
    Draft202012Validator(schema).validate(batch)
    assert batch["count"] == len(batch["events"])
    return batch


async def call(
    client: mcp.Client, tool: str, arguments: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Call `tool`, check its result against the listed output schema; (batch, text blocks)."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    result = await client.call_tool(tool, {"max_seconds": 5, **arguments})
    return checked(result, listed[tool].output_schema), texts(result)


async def error_of(client: mcp.Client, tool: str, arguments: dict[str, Any]) -> str:
    """The one line of an `is_error` result."""
    result = await client.call_tool(tool, {"max_seconds": 5, **arguments})
    assert result.is_error, result
    assert result.structured_content is None
    (text,) = texts(result)
    assert "\n" not in text and "Traceback" not in text and "Internal error" not in text
    return text
