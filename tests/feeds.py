"""Helpers for the subscription tests: a live ticker upstream, a manual, a bridge, a client.

The `Ticker` is what most live feeds are: a clock that numbers events whether anybody listens
or not, sends each one to the connections open at that moment, and ignores `Last-Event-ID`
(nothing is replayed). It records what it sent, so tests compare what readers got with what
really went over a wire.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp
import mcp_types as types
from anyio.streams.memory import MemoryObjectSendStream

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.manual import parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from mcp_sse_bridge.subscriptions.registry import Pin, SubscriptionLimits
from tests.acceptance.results import batch_of as ok  # a subscription tool's result reads alike
from tests.acceptance.results import text_of as text_of
from tests.sse_server import Request, Response, SSEServer, serve, sse_lines

SECRET = "sk-live-5ecret-0123456789"
MODES = ("legacy", "auto")
LIMITS = Limits()
SUBSCRIPTIONS = SubscriptionLimits()


class Ticker:
    """Numbered `tick` events every `period` s to whoever is connected; drops each connection
    after `drop_every` events when set. `sent` lists the ids written, in order."""

    def __init__(self, period: float = 0.02, *, drop_every: int | None = None) -> None:
        self.period = period
        self.drop_every = drop_every
        self.next = 0
        self.sent: list[int] = []
        self._listeners: set[MemoryObjectSendStream[int]] = set()

    async def clock(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await anyio.sleep(self.period)
            number, self.next = self.next, self.next + 1
            for listener in list(self._listeners):
                with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                    listener.send_nowait(number)

    async def handler(self, request: Request, response: Response) -> None:
        send, receive = anyio.create_memory_object_stream[int](10_000)
        await response.head()
        await response.send("retry: 100\n\n")
        self._listeners.add(send)
        count = 0
        try:
            async for number in receive:
                data = {"n": number}
                await response.send(sse_lines({"event": "tick", "id": str(number), "data": data}))
                self.sent.append(number)
                count += 1
                if self.drop_every is not None and count >= self.drop_every:
                    await response.abort()
                    return
        finally:
            self._listeners.discard(send)


def manual_doc(base_url: str, **template: Any) -> dict[str, Any]:
    """`ticks` (reconnecting, api key), `echo` (sends its argument back) and `status/{code}`."""
    auth = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
    symbol = {"type": "object", "properties": {"symbol": {"type": "string"}}}
    return {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": "ticks",
                "description": "Live ticks.",
                "inputs": symbol,
                "tool_call_template": {
                    "call_template_type": "sse",
                    "url": f"{base_url}/ticks",
                    "auth": auth,
                    "retry_timeout": 100,
                    **template,
                },
            },
            {
                "name": "needs_var",
                "description": "A tool whose variable is not set.",
                "tool_call_template": {
                    "call_template_type": "sse",
                    "url": f"{base_url}/x?key=${{MISSING_TOKEN}}",
                },
            },
        ],
    }


def make_bridge(base_url: str, *, limits: Limits = LIMITS, **template: Any) -> Bridge:
    text = json.dumps(manual_doc(base_url, **template))
    manual = parse_manual(text, name="feed", source="feed.json", trusted=True)
    return Bridge([manual], variables=Variables({"API_KEY": SECRET}, environ={}), limits=limits)


@contextlib.asynccontextmanager
async def client_for(
    upstream: SSEServer | str,
    mode: str,
    *,
    subscriptions: SubscriptionLimits = SUBSCRIPTIONS,
    pinned: tuple[Pin, ...] = (),
    message_handler: Any = None,
    limits: Limits = LIMITS,
    **template: Any,
) -> AsyncIterator[mcp.Client]:
    url = upstream if isinstance(upstream, str) else upstream.url
    bridge = make_bridge(url, limits=limits, **template)
    server = build_server(bridge, subscriptions=subscriptions, pinned=pinned)
    async with mcp.Client(server, mode=mode, message_handler=message_handler) as client:
        yield client


@contextlib.asynccontextmanager
async def ticking(ticker: Ticker) -> AsyncIterator[SSEServer]:
    async with serve(ticker.handler) as upstream, anyio.create_task_group() as tg:
        await tg.start(ticker.clock)
        yield upstream
        tg.cancel_scope.cancel()


async def subscribe(client: mcp.Client, **arguments: Any) -> dict[str, Any]:
    arguments.setdefault("tool", "ticks")
    arguments.setdefault("arguments", {})
    return ok(await client.call_tool("subscribe", arguments))


async def read(client: mcp.Client, subscription: str, **arguments: Any) -> dict[str, Any]:
    arguments = {"subscription": subscription, **arguments}
    return ok(await client.call_tool("read_subscription", arguments))


async def listed(client: mcp.Client) -> list[dict[str, Any]]:
    return ok(await client.call_tool("list_subscriptions", {}))["subscriptions"]


def ids(events: list[dict[str, Any]]) -> list[int]:
    return [int(event["id"]) for event in events]


class Heard:
    """What the client's message handler received."""

    def __init__(self) -> None:
        self.updated: list[tuple[float, str]] = []
        self.list_changed = 0
        self.news = anyio.Event()

    async def __call__(self, message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ResourceUpdatedNotification):
            self.updated.append((anyio.current_time(), root.params.uri))
        elif isinstance(root, types.ResourceListChangedNotification):
            self.list_changed += 1
        else:
            return
        self.news.set()
        self.news = anyio.Event()

    async def until(self, check: Any, timeout: float = 5) -> None:
        with anyio.fail_after(timeout):
            while not check():
                await self.news.wait()
