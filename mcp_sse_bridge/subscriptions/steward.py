"""This replica's share of a shared store's feeds: leases kept, feeds taken over, news relayed.

Only a shared store (Redis) has one: with several replicas, exactly one holds each upstream
connection. Every `lease_seconds / 3` the steward renews the lease of each feed this replica
runs (a lease found lost stops that feed at once, before it can write again; appends are fenced
by the store as well), writes their quiet state changes (live, reconnecting) to the store, and
claims subscriptions whose feed nobody holds: their owner died, lost Redis or shut down. A
takeover resumes from the stored `Last-Event-ID`, skips events already buffered (an upstream
that replays them), and marks its first new event as a gap. News from other replicas (events
appended, subscriptions created or deleted) becomes this replica's resource notifications; a
deletion stops the feed here within one news message.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import anyio

from .store import StoreUnavailable

if TYPE_CHECKING:
    from .registry import Registry

logger = logging.getLogger(__name__)


class Steward:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._written: dict[str, tuple[str, int]] = {}  # the state last written per feed

    async def run(self) -> None:
        interval = self.store.lease_seconds / 3
        while True:
            with contextlib.suppress(StoreUnavailable):  # Redis away: try again next round
                await self._renew()
                await self._adopt()
            await anyio.sleep(interval)

    async def _renew(self) -> None:
        feeds = self.registry.feeds
        for sub_id, feed in list(feeds.items()):
            if feed.done.is_set():  # it ended (and said so in its record): nothing to hold
                del feeds[sub_id]
                self._written.pop(sub_id, None)
                await self.store.release(sub_id)
            elif not await self.store.renew(sub_id):
                logger.warning("subscription %s: lease lost, another replica feeds it", sub_id)
                del feeds[sub_id]
                self._written.pop(sub_id, None)
                feed.hand_over()
            elif self._written.get(sub_id) != (state := (feed.state, feed.reconnects)):
                await self.store.update(sub_id, state=state[0], reconnects=state[1])
                self._written[sub_id] = state

    async def _adopt(self) -> None:
        for sub_id in await self.store.unowned():
            if sub_id in self.registry.feeds or not await self.store.claim(sub_id):
                continue
            record = await self.store.describe(sub_id)
            if record is None or record.state == "ended":
                await self.store.release(sub_id)
                continue
            buffered = await self.store.newest(sub_id, record.buffer_events)
            known = frozenset(event.id for event in buffered if event.id)
            logger.info("subscription %s: taken over from %s", sub_id, record.last_event_id)
            self.registry.start_feed(record, known_ids=known)

    def news(self, kind: str, sub_id: str) -> None:
        """What another replica did, as this replica's watchers and feeds need to hear it."""
        if kind == "append":
            self.registry.appended(sub_id)
            return
        self.registry.listed()
        feed = self.registry.feeds.pop(sub_id, None) if kind == "delete" else None
        if feed is not None:
            feed.stop("ended: unsubscribed")
