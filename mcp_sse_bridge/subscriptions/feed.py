"""One subscription's background task: hold the upstream open and buffer what it accepts.

The feed is a call without bounds (`Bridge.feed`): the same validation, handshake, typed
errors, `Last-Event-ID`, `retry`, jittered capped backoff and filters, never a re-sent POST,
and a clean end of the body is reconnected like a drop. Events are redacted by that pass
before they reach the store, so no buffer ever holds a secret. The feed ends for good on a
204, a clean end the manual does not want reconnected, a permanent error, `MAX_FAILURES`
failed reconnects in a row, or when the registry stops it; its buffer stays readable.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from typing import Any

import anyio
import pydantic_core

from ..calls.batch import Accepted
from ..calls.bridge import Bridge
from ..errors import BridgeError
from ..upstream.stream import StreamState
from .store import StoredEvent, StoreUnavailable, SubscriptionRecord, SubscriptionStore

MAX_FAILURES = 30
"""Consecutive failed reconnects before a feed gives up (the backoff is capped at 30 s, unless
the manual's `retry_timeout` is longer, so this is about a quarter of an hour of outage)."""


class Feed:
    """The task behind one subscription. `ready` is set once the first connection is made or
    has failed (`error`), or the feed ended; the registry waits for it before answering."""

    def __init__(
        self,
        bridge: Bridge,
        store: SubscriptionStore,
        record: SubscriptionRecord,
        on_append: Callable[[str], None],
        *,
        known_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.id = record.id
        self.ready = anyio.Event()
        self.done = anyio.Event()
        self.error: BridgeError | None = None
        self.state = "connecting"
        self.connected = False  # the first connection was made (the feed may have ended since)
        self.reason: str | None = None
        self._bridge = bridge
        self._store = store
        self._record = record
        self._on_append = on_append
        self._stream: StreamState | None = None
        self._scope = anyio.CancelScope()
        # Taken over from another process: the events already buffered (an upstream that
        # replays them is not appended twice), and the first new event marks a gap.
        self._known = known_ids
        self._resumed = bool(record.last_seq)
        self.handed_over = False  # stopped without ending: another process feeds it now

    @property
    def refused(self) -> str:
        """The latest refusal of a first connection that is being retried ("" if none)."""
        return "" if self._stream is None else self._stream.refused

    @property
    def reconnects(self) -> int:
        return 0 if self._stream is None else self._stream.reconnects

    def stop(self, reason: str) -> None:
        """End the feed (closing the upstream connection); `reason` is what readers see."""
        if self.reason is None:
            self.reason = reason
        self._scope.cancel()

    def hand_over(self) -> None:
        """Close the upstream connection without ending the subscription (a shared store's
        lease was lost or released: another process carries on from the stored cursor)."""
        self.handed_over = True
        self._scope.cancel()

    async def run(self) -> None:
        record = self._record
        arguments: dict[str, Any] = dict(record.arguments)
        if record.event_types is not None:
            arguments["event_types"] = record.event_types
        if record.match is not None:
            arguments["match"] = record.match
        if record.last_event_id:
            arguments["last_event_id"] = record.last_event_id
        reason = None
        try:
            with self._scope:
                async with self._bridge.feed(
                    record.tool, arguments, watch=self._watch, max_failures=MAX_FAILURES
                ) as run:
                    self._stream = run.state
                    await self._buffer(run)
                reason = self._closed_reason()
        except StoreUnavailable as exc:  # the lease was lost, or the store is down: no writes
            self.handed_over = True
            if not self.ready.is_set():
                self.error = exc
        except BridgeError as exc:
            reason = "error: " + " ".join(str(exc).split())
            if not self.ready.is_set():
                self.error = exc
        finally:
            await self._end(reason)

    async def _buffer(self, run: Accepted) -> None:
        """Append the accepted events a chunk at a time, with the feed's status in the same
        store step (under a firehose one step carries hundreds of events); the first event
        after each reconnect (or a takeover) is marked as a gap."""
        state = run.state
        seen_reconnects = 0
        gap = self._resumed
        async for items in run.batches():
            events, now = [], utc_now()  # one chunk: one arrival time
            for item in items:
                if item["id"] and item["id"] in self._known:
                    continue  # replayed after a takeover: buffered already
                gap = gap or state.reconnects != seen_reconnects
                seen_reconnects = state.reconnects
                events.append(_stored(item, gap, now))
                gap = False
            if not events:
                continue
            await self._store.append(
                self.id,
                events,
                state=self.state,
                reconnects=state.reconnects,
                last_event_id=run.last_event_id,
                filtered=run.filtered,
                oversized=run.skipped["oversized"],
            )
            self._on_append(self.id)

    def _watch(self) -> None:
        """The stream opened or closed a connection: live, or reconnecting."""
        stream = self._stream
        if stream is None or self.state == "ended":
            return
        self.state = "live" if stream.connected else "reconnecting"
        if stream.connected:
            self.connected = True
            self.ready.set()

    def _closed_reason(self) -> str:
        spec = self._bridge.tools[self._record.tool].spec
        if not spec.template.reconnect:
            return "closed: the upstream ended the stream, and the manual sets reconnect: false"
        if spec.template.body_field is not None:
            return "closed: the upstream ended the stream, and a request with a body is not re-sent"
        return "closed: the upstream answered HTTP 204 (no more events)"

    async def _end(self, reason: str | None) -> None:
        """Record the end, also when cancelled (shielded: the registry is waiting for it);
        a feed handed over records nothing: the subscription goes on elsewhere."""
        self.state = "ended"
        if self.reason is None:
            self.reason = reason or "ended"
        if not self.handed_over:
            with anyio.CancelScope(shield=True), contextlib.suppress(StoreUnavailable):
                await self._store.update(
                    self.id, state="ended", reason=self.reason, reconnects=self.reconnects
                )
        self.ready.set()
        self.done.set()
        self._on_append(self.id)


def _stored(item: dict[str, Any], gap: bool, received_at: str) -> StoredEvent:
    """An accepted event as the store keeps it; its size is what it costs of the limits."""
    data = item["data"]
    text = data.encode() if isinstance(data, str) else pydantic_core.to_json(data)  # UTF-8
    size = len(item["event"]) + len(item["id"]) + len(text)
    return StoredEvent(item["event"], item["id"], data, received_at, size, gap)


def utc_now() -> str:
    """Now in UTC, ISO 8601 with milliseconds: `2026-05-01T12:00:00.123Z`."""
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
