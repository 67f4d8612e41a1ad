"""Subscriptions as resources: read them, and hear that they changed, in both protocol eras.

Handshake era: `resources/subscribe` then `notifications/resources/updated` (at most one a
second per subscription) and `list_changed`, through the client's message handler.
2026-07-28: `subscriptions/listen` through `Client.listen`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

from mcp_sse_bridge.calls.bridge import Limits
from tests.feeds import (
    MODES,
    SECRET,
    Heard,
    Ticker,
    client_for,
    manual_doc,
    read,
    subscribe,
    ticking,
)
from tests.sse_server import serve, sse_lines, wait_disconnect

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
async def test_a_subscription_is_a_resource_whose_read_moves_no_cursor(mode):
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream, client_for(upstream, mode) as client:
        sub = (await subscribe(client))["subscription"]
        await anyio.sleep(0.2)
        listing = await client.list_resources()
        [resource] = listing.resources
        contents = (await client.read_resource(resource.uri)).contents[0]
        body = json.loads(contents.text)
        first = await read(client, sub, max_events=1000)
        templates = await client.list_resource_templates()
    assert resource.uri == f"sse://subscriptions/{sub}" and resource.mime_type == "application/json"
    assert body["subscription"]["subscription"] == sub and body["subscription"]["state"] == "live"
    assert 1 <= len(body["events"]) <= 20 and "received_at" in body["events"][0]
    shown = [event["id"] for event in body["events"]]
    assert set(shown) <= {event["id"] for event in first["events"]}  # the read still sees them
    assert templates.resource_templates[0].uri_template == "sse://subscriptions/{id}"


async def test_reading_an_unknown_subscription_resource_is_a_clear_error():
    async with client_for("http://127.0.0.1:9", "legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("sse://subscriptions/sub_00")
    assert "unsubscribed, expired or never existed" in str(caught.value)


async def test_handshake_era_subscribers_get_updated_at_most_once_a_second_and_list_changed():
    heard = Heard()
    ticker = Ticker(0.02)
    async with (
        ticking(ticker) as upstream,
        client_for(upstream, "legacy", message_handler=heard) as client,
    ):
        capabilities = client.server_capabilities.resources
        assert capabilities.subscribe is True and capabilities.list_changed is True
        sub = (await subscribe(client))["subscription"]
        await heard.until(lambda: heard.list_changed >= 1)
        uri = f"sse://subscriptions/{sub}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(uri)
        await heard.until(lambda: len(heard.updated) >= 3, timeout=6)
        await client.call_tool("unsubscribe", {"subscription": sub})
        await heard.until(lambda: heard.list_changed >= 2)
    times = [at for at, got in heard.updated if got == uri]
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times))


async def test_listen_streams_of_2026_get_updates_and_list_changes():
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream, client_for(upstream, "auto") as client:
        first = (await subscribe(client, arguments={"symbol": "A"}))["subscription"]
        uri = f"sse://subscriptions/{first}"
        seen: list[Any] = []
        async with client.listen(resources_list_changed=True, resource_subscriptions=[uri]) as sub:
            await subscribe(client, arguments={"symbol": "B"})
            with anyio.fail_after(5):
                async for event in sub:
                    seen.append(event)
                    if ResourcesListChanged() in seen and ResourceUpdated(uri=uri) in seen:
                        break
    assert ResourceUpdated(uri=uri) in seen and ResourcesListChanged() in seen


@contextlib.asynccontextmanager
async def http_bridge(manual: Path) -> AsyncIterator[str]:
    """`serve --transport http --port 0` as a process; yields its /mcp URL."""
    command = [sys.executable, "-m", "mcp_sse_bridge", "--transport", "http", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "API_KEY": SECRET}
    async with await anyio.open_process([*command, "--manual", str(manual)], env=env) as process:
        assert process.stderr is not None
        banner = b""
        with anyio.fail_after(20):
            while b"/mcp" not in banner:
                banner += await process.stderr.receive()
        try:
            yield re.search(rb"http://127\.0\.0\.1:\d+/mcp", banner)[0].decode()
        finally:
            process.terminate()
            with anyio.fail_after(10):
                await process.wait()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_over_stateful_streamable_http_both_eras_hear_updates(tmp_path: Path, mode: str):
    heard = Heard()
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream:
        manual = tmp_path / "feed.json"
        manual.write_text(json.dumps(manual_doc(upstream.url)))
        async with (
            http_bridge(manual) as url,
            mcp.Client(url, mode=mode, message_handler=heard) as client,
        ):
            sub = (await subscribe(client))["subscription"]
            uri = f"sse://subscriptions/{sub}"
            if mode == "legacy":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.subscribe_resource(uri)
                await heard.until(lambda: len(heard.updated) >= 1)
            else:
                async with client.listen(resource_subscriptions=[uri]) as listening:
                    with anyio.fail_after(5):
                        event = await anext(aiter(listening))
                assert event == ResourceUpdated(uri=uri)
            result = await read(client, sub, max_events=1000)
        await upstream.wait_for_client_close(timeout=5)
    assert result["count"] > 0


async def big_events(request, response):
    await response.head()
    for n in range(1, 6):
        data = {"n": n, "blob": "x" * 40_000}
        await response.send(sse_lines({"event": "big", "id": str(n), "data": data}))
    await wait_disconnect(response)


async def test_a_resource_read_keeps_to_the_byte_budget_newest_first():
    async with (
        serve(big_events) as upstream,
        client_for(upstream, "auto", limits=Limits(max_bytes=100_000)) as client,
    ):
        sub = await subscribe(client)
        seen, cursor = 0, sub["cursor"]
        with anyio.fail_after(10):
            while seen < 5:
                got = await read(client, sub["subscription"], cursor=cursor, wait_seconds=1)
                seen, cursor = seen + got["count"], got["cursor"]
        uri = f"sse://subscriptions/{sub['subscription']}"
        (content,) = (await client.read_resource(uri)).contents
    body = json.loads(content.text)
    assert [event["id"] for event in body["events"]] == ["4", "5"]  # 2 x 40 kB fit in 100 kB
    assert body["left_out"] == 3
