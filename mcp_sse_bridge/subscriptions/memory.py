"""The embedded store: one ring buffer per subscription, in this process's memory.

Bounded twice: each buffer by its subscription's `buffer_events`, and all of them together by
`max_bytes` (`--subscription-bytes-limit`). Past either, the oldest events go first and are
counted, so every reader learns exactly how many it missed. When the total is over, the
largest buffer gives up its oldest event: one busy feed cannot starve the quiet ones of their
short history. Readers waiting for news wait on one `anyio.Event` per subscription, made only
when somebody waits and set by the next append, state change or deletion.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections import deque
from typing import Any

import anyio

from .store import OnNews, Page, StoredEvent, SubscriptionRecord

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class _Buffer:
    __slots__ = ("changed", "events", "record")

    def __init__(self, record: SubscriptionRecord) -> None:
        self.record = record
        self.events: deque[StoredEvent] = deque()
        self.changed: anyio.Event | None = None

    def wake(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None


class MemoryStore:
    """`SubscriptionStore` in memory; see the module docstring for its bounds. This process is
    its only user, so it owns every feed."""

    shared = False
    lease_seconds = math.inf

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.replica = secrets.token_hex(6)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._buffers: dict[str, _Buffer] = {}
        self._keys: dict[str, str] = {}

    async def create(
        self, record: SubscriptionRecord, *, limit: int | None = None
    ) -> SubscriptionRecord | None:
        existing = self._keys.get(record.key)
        if existing is not None:
            return self._buffers[existing].record.copy()
        if limit is not None and len(self._buffers) >= limit:
            return None
        self._buffers[record.id] = _Buffer(record.copy())
        self._keys[record.key] = record.id
        return record.copy()

    async def describe(self, sub_id: str) -> SubscriptionRecord | None:
        buffer = self._buffers.get(sub_id)
        return None if buffer is None else buffer.record.copy()

    async def find(self, key: str) -> SubscriptionRecord | None:
        sub_id = self._keys.get(key)
        return None if sub_id is None else self._buffers[sub_id].record.copy()

    async def update(self, sub_id: str, **changes: Any) -> None:
        buffer = self._buffers.get(sub_id)
        if buffer is None:
            return
        for name, value in changes.items():
            setattr(buffer.record, name, value)
        if "state" in changes:
            buffer.wake()  # a reader waiting on a feed that ended answers at once

    async def append(self, sub_id: str, events: list[StoredEvent], **changes: Any) -> int:
        buffer = self._buffers.get(sub_id)
        if buffer is None:
            return 0
        record, queue = buffer.record, buffer.events
        for name, value in changes.items():
            setattr(record, name, value)
        for event in events:
            record.last_seq += 1
            event.seq = record.last_seq
            queue.append(event)
            record.bytes += event.size
            self.bytes += event.size
        while len(queue) > record.buffer_events:
            self._drop_oldest(buffer)
        while self.bytes > self.max_bytes:
            self._drop_oldest(max(self._buffers.values(), key=lambda b: b.record.bytes))
        record.buffered = len(queue)
        buffer.wake()
        return record.last_seq

    def _drop_oldest(self, buffer: _Buffer) -> None:
        event = buffer.events.popleft()
        buffer.record.bytes -= event.size
        buffer.record.dropped += 1
        buffer.record.buffered = len(buffer.events)
        self.bytes -= event.size

    async def read(self, sub_id: str, after_seq: int, limit: int) -> Page:
        buffer = self._buffers.get(sub_id)
        if buffer is None:
            return Page([], 0, False)
        queue, last = buffer.events, buffer.record.last_seq
        first = queue[0].seq if queue else last + 1
        after = min(after_seq, last)  # a cursor from the future reads from the end
        dropped = max(0, first - after - 1)
        start = max(0, after + 1 - first)
        events = list(itertools.islice(queue, start, start + limit))
        return Page(events, dropped, start + len(events) < len(queue))

    async def wait_for_new(self, sub_id: str, after_seq: int, timeout: float) -> bool:
        buffer = self._buffers.get(sub_id)
        if buffer is None:
            return False
        if buffer.record.last_seq <= after_seq and buffer.record.state != "ended":
            if buffer.changed is None:
                buffer.changed = anyio.Event()
            changed = buffer.changed
            with anyio.move_on_after(timeout):
                await changed.wait()
        return buffer.record.last_seq > after_seq

    async def newest(self, sub_id: str, limit: int) -> list[StoredEvent]:
        buffer = self._buffers.get(sub_id)
        if buffer is None or limit <= 0:
            return []
        queue = buffer.events
        return list(itertools.islice(queue, max(0, len(queue) - limit), None))

    async def delete(self, sub_id: str) -> None:
        buffer = self._buffers.pop(sub_id, None)
        if buffer is None:
            return
        self._keys.pop(buffer.record.key, None)
        self.bytes -= buffer.record.bytes
        buffer.wake()

    async def count(self) -> int:
        return len(self._buffers)

    async def list(self) -> list[SubscriptionRecord]:
        return [buffer.record.copy() for buffer in self._buffers.values()]

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def claim(self, sub_id: str) -> bool:
        return True

    async def renew(self, sub_id: str) -> bool:
        return sub_id in self._buffers

    async def release(self, sub_id: str) -> None:
        return None

    async def unowned(self) -> list[str]:
        return []

    async def listen(self, on_news: OnNews) -> None:
        await anyio.sleep_forever()  # nobody else writes here
