"""Subscriptions as MCP resources, and the notifications that say they changed.

Each subscription is the resource `sse://subscriptions/{ID}`: JSON with its status and its
newest buffered events (reading it moves nobody's cursor). Change notifications serve both
protocol eras the SDK speaks:

- handshake era: `resources/subscribe` records the subscribing connection, which then gets
  `notifications/resources/updated` for that URI; every connection that talked to us gets
  `notifications/resources/list_changed` when subscriptions start or end.
- 2026-07-28: `subscriptions/listen` (the SDK's `ListenHandler`) over a `SubscriptionBus`; the
  in-memory bus by default, the seam for a bus shared by replicas.

Updates are coalesced to at most one per `interval` (1 s) per subscription, by one task: a
feed of 1,000 events a second costs one notification a second, sent after the latest event.
"""

from __future__ import annotations

import contextlib
import json
import math
import weakref
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..errors import ArgumentError
from ..subscriptions.registry import Registry, summary
from ..subscriptions.store import SubscriptionRecord

PREFIX = "sse://subscriptions/"
RESOURCE_EVENTS = 20  # the newest events a resource read shows
MIME = "application/json"


def uri_of(sub_id: str) -> str:
    return PREFIX + sub_id


class Notifier:
    """The registry's `Watcher`: turns news into rate-limited MCP notifications."""

    def __init__(self, registry: Registry, bus: SubscriptionBus, *, interval: float = 1.0) -> None:
        self.registry = registry
        self.bus = bus
        self.interval = interval
        # Handshake-era connections (weakly: a closed one goes by itself) -> a session on it.
        self._known: weakref.WeakKeyDictionary[Any, ServerSession] = weakref.WeakKeyDictionary()
        self._subscribers: dict[str, weakref.WeakKeyDictionary[Any, ServerSession]] = {}
        self._due: dict[str, float] = {}  # subscription -> when its update may be sent
        self._sent: dict[str, float] = {}  # subscription -> when the last one was sent
        self._list_changed = False
        self._wake = anyio.Event()

    def updated(self, sub_id: str) -> None:
        if sub_id not in self._due:
            last = self._sent.get(sub_id, -math.inf)
            self._due[sub_id] = max(anyio.current_time(), last + self.interval)
            self._wake.set()

    def list_changed(self) -> None:
        self._list_changed = True
        self._wake.set()

    def seen(self, ctx: ServerRequestContext[Any]) -> None:
        """Remember a handshake-era connection, for list_changed."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._known[_connection(ctx.session)] = ctx.session

    def subscribe(self, uri: str, ctx: ServerRequestContext[Any]) -> None:
        subscribers = self._subscribers.setdefault(uri, weakref.WeakKeyDictionary())
        subscribers[_connection(ctx.session)] = ctx.session

    def unsubscribe(self, uri: str, ctx: ServerRequestContext[Any]) -> None:
        self._subscribers.get(uri, {}).pop(_connection(ctx.session), None)

    async def run(self) -> None:
        """Send what is due, then sleep until the next is due or news arrives."""
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            if self._list_changed:
                self._list_changed = False
                await self._send_list_changed()
            for sub_id in [s for s, due in self._due.items() if due <= now]:
                del self._due[sub_id]
                self._sent[sub_id] = now
                await self._send_updated(uri_of(sub_id))
            self._sent = {s: t for s, t in self._sent.items() if now - t < self.interval}
            soonest = min(self._due.values(), default=math.inf)
            with anyio.move_on_after(soonest - anyio.current_time()):
                await self._wake.wait()

    async def _send_updated(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._subscribers.get(uri, {}).values()):
            await _quietly(session.send_resource_updated(uri))

    async def _send_list_changed(self) -> None:
        await self.bus.publish(ResourcesListChanged())
        for session in list(self._known.values()):
            await _quietly(session.send_resource_list_changed())
        live = {uri_of(record.id) for record in await self.registry.records()}
        for uri in [uri for uri in self._subscribers if uri not in live]:
            del self._subscribers[uri]


def _connection(session: ServerSession) -> Any:
    """The connection a per-request session belongs to (the SDK keeps it private): one entry
    per client, however many requests it made."""
    return getattr(session, "_connection", session)


async def _quietly(sending: Any) -> None:
    """A client gone meanwhile must not stop the others' notifications."""
    with contextlib.suppress(Exception):  # any transport failure means: that client left
        await sending


class ResourceHandlers:
    """The lowlevel server's resource handlers over the registry."""

    def __init__(self, registry: Registry, notifier: Notifier) -> None:
        self.registry = registry
        self.notifier = notifier

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        self.notifier.seen(ctx)
        resources = [
            types.Resource(
                uri=uri_of(record.id),
                name=record.id,
                title=f"{record.tool} subscription",
                description=f"Status and newest events of subscription {record.id} "
                f"({record.state}).",
                mime_type=MIME,
            )
            for record in await self.registry.records()
        ]
        return types.ListResourcesResult(resources=resources)

    async def list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=PREFIX + "{id}",
            name="subscription",
            title="A subscription",
            description="Status and newest buffered events of a subscription (see subscribe).",
            mime_type=MIME,
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        self.notifier.seen(ctx)
        record = await self._status(params.uri)
        newest = await self.registry.newest(record.id, RESOURCE_EVENTS)
        budget = self.registry.bridge.limits.max_bytes
        kept = newest
        if budget is not None:  # the newest events within --max-bytes, as a read's are
            total, start = 0, len(newest)
            while start and total + newest[start - 1].size <= budget:
                start -= 1
                total += newest[start].size
            kept = newest[start:]
        events = [event.to_dict() for event in kept]
        ttl, redact = self.registry.limits.ttl_seconds, self.registry.bridge.secrets.redact
        body = {"subscription": summary(record, ttl, redact), "events": events}
        if len(kept) < len(newest):
            body["left_out"] = len(newest) - len(kept)  # older ones, over --max-bytes
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, mime_type=MIME, text=text)]
        )

    async def subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        self.notifier.seen(ctx)
        await self._status(params.uri)
        self.notifier.subscribe(params.uri, ctx)
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self.notifier.unsubscribe(params.uri, ctx)
        return types.EmptyResult()

    async def _status(self, uri: str) -> SubscriptionRecord:
        """The subscription behind `uri`; an unknown one is a clear JSON-RPC error."""
        if not uri.startswith(PREFIX):
            raise MCPError(
                types.INVALID_PARAMS,
                f"Unknown resource {uri[:100]!r}: this server's resources are {PREFIX}ID.",
            )
        try:
            return await self.registry.status(uri[len(PREFIX) :])
        except ArgumentError as err:
            raise MCPError(types.INVALID_PARAMS, str(err)) from None
