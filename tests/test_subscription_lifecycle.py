"""A subscription's life: subscribe connects first, is shared, and closes its upstream when
unsubscribed, expired or shut down; a failing subscribe leaves nothing behind."""

from __future__ import annotations

import anyio
import pytest

from mcp_sse_bridge.calls.bridge import Limits
from mcp_sse_bridge.subscriptions.registry import Pin, SubscriptionLimits
from tests.feeds import (
    MODES,
    SECRET,
    Ticker,
    client_for,
    listed,
    read,
    subscribe,
    text_of,
    ticking,
)
from tests.sse_server import Request, Response, serve, wait_disconnect

pytestmark = pytest.mark.anyio


def refusing(status: int, content_type: str = "text/plain"):
    async def handler(request: Request, response: Response) -> None:
        await response.simple(status, "no", content_type=content_type)

    return handler


async def free_port_url() -> str:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "content_type", "said"),
    [
        (401, "text/plain", "HTTP 401"),
        (404, "text/plain", "HTTP 404"),
        (200, "application/json", "text/event-stream"),
    ],
)
async def test_a_refused_first_connection_is_an_error_and_leaves_nothing_behind(
    status, content_type, said
):
    async with (
        serve(refusing(status, content_type)) as upstream,
        client_for(upstream, "legacy") as client,
    ):
        result = await client.call_tool("subscribe", {"tool": "ticks", "arguments": {}})
        assert result.is_error and said in text_of(result)
        assert await listed(client) == []
        assert (await client.list_resources()).resources == []
        assert upstream.open_connections == 0


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_connection_or_a_missing_variable_is_an_error_with_nothing_left(mode):
    async with client_for(await free_port_url(), mode) as client:
        refused = await client.call_tool("subscribe", {"tool": "ticks"})
        missing = await client.call_tool("subscribe", {"tool": "needs_var"})
        assert await listed(client) == []
    assert refused.is_error and "Cannot connect" in text_of(refused)
    assert missing.is_error and "MISSING_TOKEN" in text_of(missing)


async def test_bad_arguments_are_refused_as_a_call_would_refuse_them():
    async with client_for(await free_port_url(), "legacy") as client:
        typed = await client.call_tool("subscribe", {"tool": "ticks", "arguments": {"symbol": 5}})
        unknown_arg = await client.call_tool(
            "subscribe", {"tool": "ticks", "arguments": {"nope": 1}}
        )
        unknown_tool = await client.call_tool("subscribe", {"tool": "nope"})
        extra = await client.call_tool("subscribe", {"tool": "ticks", "max_events": 3})
    assert typed.is_error and "symbol" in text_of(typed)
    assert unknown_arg.is_error and "no argument 'nope'" in text_of(unknown_arg)
    assert unknown_tool.is_error and "ticks" in text_of(unknown_tool)
    assert extra.is_error and "max_events" in text_of(extra)


@pytest.mark.parametrize("mode", MODES)
async def test_same_tool_arguments_and_filters_share_one_upstream_connection(mode):
    ticker = Ticker(0.05)
    async with ticking(ticker) as upstream, client_for(upstream, mode) as client:
        subs = [await subscribe(client, arguments={"symbol": "A"}) for _ in range(3)]
        other = await subscribe(client, arguments={"symbol": "A"}, event_types=["tick"])
        assert len({sub["subscription"] for sub in subs}) == 1
        assert [sub["joined"] for sub in subs] == [False, True, True]
        assert other["subscription"] != subs[0]["subscription"]
        assert len(upstream.requests) == 2 and upstream.open_connections == 2
        assert len(await listed(client)) == 2


async def test_concurrent_identical_subscribes_make_one_connection():
    ticker = Ticker(0.05)
    async with ticking(ticker) as upstream, client_for(upstream, "legacy") as client:
        results: list[dict] = []

        async def one() -> None:
            results.append(await subscribe(client))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        assert len({result["subscription"] for result in results}) == 1
        assert len(upstream.requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_unsubscribe_closes_the_upstream_connection_within_a_second(mode):
    ticker = Ticker(0.05)
    async with ticking(ticker) as upstream, client_for(upstream, mode) as client:
        sub = (await subscribe(client))["subscription"]
        assert upstream.open_connections == 1
        start = anyio.current_time()
        ended = await client.call_tool("unsubscribe", {"subscription": sub})
        await upstream.wait_for_client_close(timeout=1)
        assert anyio.current_time() - start < 1
        assert not ended.is_error and ended.structured_content["state"] == "ended"
        assert await listed(client) == []
        gone = await client.call_tool("read_subscription", {"subscription": sub})
        assert gone.is_error and "unsubscribed, expired or never existed" in text_of(gone)


async def test_shutdown_closes_every_upstream_connection_within_a_second():
    ticker = Ticker(0.05)
    async with ticking(ticker) as upstream:
        async with client_for(upstream, "legacy") as client:
            for symbol in "ABC":
                await subscribe(client, arguments={"symbol": symbol})
            assert upstream.open_connections == 3
            start = anyio.current_time()
        await upstream.wait_for_client_close(timeout=1)
        assert anyio.current_time() - start < 1


async def test_an_unread_subscription_expires_after_its_ttl_and_a_pinned_one_does_not():
    ticker = Ticker(0.05)
    limits = SubscriptionLimits(ttl_seconds=0.3)
    pinned = (Pin("ticks", {"symbol": "pinned"}),)
    async with (
        ticking(ticker) as upstream,
        client_for(upstream, "auto", subscriptions=limits, pinned=pinned) as client,
    ):
        [pin] = await listed(client)
        assert pin["pinned"] is True and "expires_in_s" not in pin
        kept = (await subscribe(client, arguments={"symbol": "kept"}))["subscription"]
        await subscribe(client, arguments={"symbol": "left"})
        with anyio.fail_after(5):
            while len(await listed(client)) > 2:
                await read(client, kept)  # reading keeps it alive
                await anyio.sleep(0.05)
        with anyio.fail_after(2):  # the expired one's connection closes
            while upstream.open_connections > 2:
                await upstream.connection_closed.wait()
        for _ in range(10):  # a few more TTLs: the pinned one stays unread
            await read(client, kept)
            await anyio.sleep(0.05)
        left = {item["subscription"] for item in await listed(client)}
        assert left == {pin["subscription"], kept}
        assert upstream.open_connections == 2


async def test_a_subscribe_to_an_upstream_that_never_answers_ends_in_an_error():
    async def silent(request: Request, response: Response) -> None:
        await wait_disconnect(response)

    async with serve(silent) as upstream:
        async with client_for(upstream, "legacy", limits=Limits(connect_timeout=0.3)) as client:
            result = await client.call_tool("subscribe", {"tool": "ticks"})
            assert result.is_error and "No response" in text_of(result)
            assert await listed(client) == []
        await upstream.wait_for_client_close(timeout=1)


async def test_an_upstream_that_refuses_every_attempt_is_named_in_the_subscribe_error():
    async def busy(request, response):
        await response.simple(503, f"deploying, key {SECRET}", headers={"Retry-After": "1"})

    limits = Limits(connect_timeout=1.0)  # the subscribe waits 3 x connect_timeout at most
    async with serve(busy) as upstream, client_for(upstream, "auto", limits=limits) as client:
        failed = await client.call_tool("subscribe", {"tool": "ticks", "arguments": {}})
        listed = await client.call_tool("list_subscriptions", {})
    text = failed.content[0].text
    assert failed.is_error and "refused every attempt" in text and "503" in text
    assert SECRET not in text
    assert listed.structured_content["count"] == 0
