"""Every subscription limit is a flag, and hitting one is a clear error naming it; the tools'
names are reserved, and their schemas are complete."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp
import pytest

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.errors import ManualError
from mcp_sse_bridge.manual import parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from mcp_sse_bridge.subscriptions.registry import SubscriptionLimits
from tests.feeds import Ticker, client_for, listed, make_bridge, read, subscribe, text_of, ticking
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


async def test_the_subscription_count_limit_is_an_error_naming_its_flag():
    ticker = Ticker(0.05)
    limits = SubscriptionLimits(max_subscriptions=2)
    async with (
        ticking(ticker) as upstream,
        client_for(upstream, "legacy", subscriptions=limits) as client,
    ):
        for symbol in "AB":
            await subscribe(client, arguments={"symbol": symbol})
        third = await client.call_tool("subscribe", {"tool": "ticks", "arguments": {"symbol": "C"}})
        joined = await subscribe(client, arguments={"symbol": "A"})  # joining needs no new slot
        assert third.is_error and "--max-subscriptions" in text_of(third)
        assert joined["joined"] is True
        assert len(upstream.requests) == 2 and len(await listed(client)) == 2


async def test_buffer_events_above_the_ceiling_is_refused_naming_the_flag():
    limits = SubscriptionLimits(max_buffer_events=50)
    async with client_for("http://127.0.0.1:9", "legacy", subscriptions=limits) as client:
        result = await client.call_tool("subscribe", {"tool": "ticks", "buffer_events": 51})
        tool = next(t for t in (await client.list_tools()).tools if t.name == "subscribe")
    assert result.is_error and "--subscription-buffer-limit" in text_of(result)
    assert tool.input_schema["properties"]["buffer_events"]["maximum"] == 50


async def test_the_total_byte_limit_drops_the_oldest_events_of_the_largest_buffer():
    async def big(request: Request, response: Response) -> None:
        await response.head()
        for i in range(40):
            await response.send(sse_lines({"id": str(i), "data": "x" * 1000}))
        await wait_disconnect(response)

    limits = SubscriptionLimits(max_bytes=10_000)
    async with serve(big) as upstream, client_for(upstream, "auto", subscriptions=limits) as client:
        sub = (await subscribe(client))["subscription"]
        with anyio.fail_after(5):
            while (await listed(client))[0]["dropped"] < 31:
                await anyio.sleep(0.01)
        result = await read(client, sub, max_events=100)
    assert result["dropped"] == 31 and result["count"] == 9  # 9 events of ~1 KB fit in 10 KB
    assert [event["id"] for event in result["events"]][-1] == "39"
    assert "--subscription-bytes-limit" in result["hint"]


async def test_a_read_larger_than_the_byte_budget_is_cut_with_has_more():
    async def big(request: Request, response: Response) -> None:
        await response.head()
        for i in range(10):
            await response.send(sse_lines({"id": str(i), "data": "y" * 1000}))
        await wait_disconnect(response)

    async with (
        serve(big) as upstream,
        client_for(upstream, "legacy", limits=Limits(max_bytes=3500)) as client,
    ):
        sub = (await subscribe(client))["subscription"]
        with anyio.fail_after(5):
            while (await listed(client))[0]["buffered"] < 10:
                await anyio.sleep(0.01)
        first = await read(client, sub, max_events=100)
        rest = await read(client, sub, max_events=100, cursor=first["cursor"])
    assert first["count"] == 3 and first["has_more"] and first["stop_reason"] == "max_bytes"
    assert rest["events"][0]["id"] == "3"


def one_tool_bridge(name: str) -> Bridge:
    doc = {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": name,
                "description": "",
                "tool_call_template": {"call_template_type": "sse", "url": "http://127.0.0.1:9/"},
            }
        ],
    }
    manual = parse_manual(json.dumps(doc), name="m", source="m.json", trusted=True)
    return Bridge([manual], variables=Variables({}, environ={}))


@pytest.mark.parametrize(
    "name", ["subscribe", "read_subscription", "list_subscriptions", "unsubscribe"]
)
def test_a_manual_tool_named_like_a_subscription_tool_is_a_load_error_saying_how_to_rename(name):
    with pytest.raises(ManualError) as caught:
        build_server(one_tool_bridge(name))
    text = str(caught.value)
    assert "m.json" in text and "--manual NAME=PATH" in text and "--no-subscriptions" in text
    build_server(one_tool_bridge(name), subscriptions=None)  # off: no collision


async def test_without_subscriptions_the_four_tools_and_the_resources_are_gone():
    server = build_server(make_bridge("http://127.0.0.1:9"), subscriptions=None)
    async with mcp.Client(server, mode="legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["ticks", "needs_var"]
        assert client.server_capabilities.resources is None


def _untyped_nodes(schema: Any, path: str = "$") -> list[str]:
    """Schema nodes without `type` or `anyOf` (hosts' validators disagree on untyped nodes)."""
    if not isinstance(schema, dict):
        return []
    bad = [] if "type" in schema or "anyOf" in schema else [path]
    for key in ("properties",):
        for name, sub in schema.get(key, {}).items():
            bad += _untyped_nodes(sub, f"{path}.{name}")
    if "items" in schema:
        bad += _untyped_nodes(schema["items"], f"{path}[]")
    for i, sub in enumerate(schema.get("anyOf", [])):
        bad += _untyped_nodes(sub, f"{path}|{i}")
    return bad


async def test_every_node_of_the_subscription_tools_schemas_has_a_type():
    server = build_server(make_bridge("http://127.0.0.1:9"))
    async with mcp.Client(server, mode="auto") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("subscribe", "read_subscription", "list_subscriptions", "unsubscribe"):
        assert _untyped_nodes(tools[name].input_schema) == [], name
        assert _untyped_nodes(tools[name].output_schema) == [], name
    assert tools["subscribe"].input_schema["properties"]["tool"]["enum"] == ["ticks", "needs_var"]
