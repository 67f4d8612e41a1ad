"""The registry: subscribe, read, list, unsubscribe; the limits; expiry and shutdown.

Decisions worth knowing:
- `subscribe` connects before it answers: the first connection's error (401, 404, refused,
  wrong content type, missing variable) is raised as a call's would be, and nothing is left
  behind. The record exists (state `connecting`) from the start, so the count limit also
  covers subscriptions still connecting.
- Subscribing with the same tool, arguments and filters (the dedupe key; not `buffer_events`)
  joins the existing subscription: one upstream connection and one buffer for every reader.
  A second subscribe with that key waits for the first one's connection instead of racing it.
  A joiner's cursor starts at the newest event; a new subscription's at its very first one.
- A read without a cursor continues where the previous read of that subscription ended,
  whoever made it; readers who want their own place pass their cursor back.
- Idle expiry (`ttl_seconds` without a read or subscribe) ends subscriptions that are not
  pinned, ended ones included (their buffer and end reason stay readable until then). One
  sweeper task checks every record a few times per TTL.
- Shutdown stops every feed at once: each closes its upstream connection in a shielded close.
- Status overlay: the live state (live/reconnecting) changes inside the feed without an event;
  for feeds running in this process the registry reports the feed's own view.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc

from ..calls.bridge import Bridge
from ..errors import ArgumentError, BridgeError, ConnectError, LimitError, UpstreamError
from ..manual import RESERVED_ARGUMENTS
from .feed import Feed
from .memory import MemoryStore
from .steward import Steward
from .store import Cursor, StoredEvent, StoreUnavailable, SubscriptionRecord, SubscriptionStore

SHUTDOWN_SECONDS = 1.0
Redact = Callable[[str], str]


@dataclass(frozen=True)
class SubscriptionLimits:
    """The bounds of every subscription together; each is a command-line flag."""

    max_subscriptions: int = 100  # --max-subscriptions
    max_bytes: int = 64 * 1024 * 1024  # --subscription-bytes-limit
    ttl_seconds: float = 1800.0  # --subscription-ttl
    default_buffer_events: int = 1000
    max_buffer_events: int = 10_000  # --subscription-buffer-limit


@dataclass(frozen=True)
class Pin:
    """A pinned subscription (`--subscribe`): started with the bridge, never expired."""

    tool: str
    arguments: dict[str, Any]
    event_types: list[str] | None = None
    match: dict[str, Any] | None = None
    buffer_events: int | None = None


class Watcher(Protocol):
    """Told (synchronously, must not raise) when a subscription has news or the list changed."""

    def updated(self, sub_id: str) -> None: ...

    def list_changed(self) -> None: ...


@dataclass(frozen=True)
class Subscribed:
    record: SubscriptionRecord
    joined: bool  # an existing subscription with the same key
    cursor: str  # where this subscriber starts reading


HEALTH_SECONDS = 1.0  # how long `/healthz` waits for the store


@dataclass
class Read:
    """One `read_subscription`: the events and where the reader now stands."""

    subscription: str
    events: list[dict[str, Any]]
    cursor: str
    has_more: bool
    dropped: int
    stop_reason: str
    state: str
    reason: str | None
    last_event_id: str
    elapsed_s: float
    reconnects: int
    skipped: dict[str, int]
    shaped: dict[str, Any] = field(default_factory=dict)  # `folded`, `summary`: set by shaping
    note: str | None = None  # what shaping did, in one line

    def to_dict(self) -> dict[str, Any]:
        result = {
            "subscription": self.subscription,
            "events": self.events,
            "count": len(self.events),
            "stop_reason": self.stop_reason,
            "last_event_id": self.last_event_id,
            "elapsed_s": self.elapsed_s,
            "reconnects": self.reconnects,
            "skipped": self.skipped,
            "cursor": self.cursor,
            "has_more": self.has_more,
            "dropped": self.dropped,
            "truncated": self.dropped > 0,
            "state": self.state,
            **self.shaped,
        }
        if self.reason is not None:
            result["reason"] = self.reason
        if self.dropped:
            result["hint"] = DROPPED_HINT
        return result


DROPPED_HINT = (
    "Events were overwritten before this read: read more often, subscribe with a larger "
    "buffer_events (ceiling --subscription-buffer-limit), or raise --subscription-bytes-limit."
)


class Registry:
    """Every subscription of one bridge; use it as an async context manager (it runs the feeds)."""

    def __init__(
        self,
        bridge: Bridge,
        *,
        limits: SubscriptionLimits = SubscriptionLimits(),
        store: SubscriptionStore | None = None,
    ) -> None:
        self.bridge = bridge
        self.limits = limits
        self.store: SubscriptionStore = store or MemoryStore(max_bytes=limits.max_bytes)
        self.watchers: list[Watcher] = []
        self.feeds: dict[str, Feed] = {}
        self._pending: dict[str, anyio.Event] = {}
        self._reading: dict[str, anyio.Lock] = {}  # reads from the default position, one at a time
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Registry:
        await self.store.open()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._sweep)
        if self.store.shared:
            steward = Steward(self)
            self._tg.start_soon(steward.run)
            self._tg.start_soon(self.store.listen, steward.news)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Stop every feed within `SHUTDOWN_SECONDS`. With a shared store the subscriptions
        live on: their leases are released, so another replica takes them over at once."""
        tg, self._tg = self._tg, None
        shared = self.store.shared
        for feed in list(self.feeds.values()):
            if shared:
                feed.hand_over()
            else:
                feed.stop("ended: the bridge shut down")
        if tg is not None:
            with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
                for feed in list(self.feeds.values()):
                    await feed.done.wait()
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)  # the body's own exception propagates as is
        with anyio.CancelScope(shield=True), contextlib.suppress(StoreUnavailable):
            for sub_id in list(self.feeds):
                await (self.store.release(sub_id) if shared else self.store.delete(sub_id))
        self.feeds.clear()
        await self.store.close()

    # -- subscribe ---------------------------------------------------------------------------

    async def subscribe(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        event_types: list[str] | None = None,
        match: dict[str, Any] | None = None,
        buffer_events: int | None = None,
        pinned: bool = False,
    ) -> Subscribed:
        """The subscription for these arguments, new or joined, and the caller's cursor."""
        if self._tg is None:
            raise RuntimeError("Registry is not open: use `async with Registry(...)`")
        size = self._buffer_events(buffer_events)
        self.validate(tool, arguments, event_types, match)
        if self.store.shared and json.dumps([arguments, match]) in self.bridge.secrets:
            raise ArgumentError(
                "The subscription's arguments hold a secret this bridge knows; a shared store "
                "would write it to Redis.",
                argument="arguments",
                hint="Leave secrets to the manual's ${VAR} placeholders, which the bridge fills "
                "in at connect time.",
            )
        key = dedupe_key(tool, arguments, event_types, match)
        while (pending := self._pending.get(key)) is not None:
            await pending.wait()  # the same subscription is being connected: share its outcome
        # Claimed before the first store round trip: every await below lets another subscribe
        # with this key run, and it must wait here rather than pass the check above too.
        self._pending[key] = done = anyio.Event()
        try:
            return await self._subscribe(key, tool, arguments, event_types, match, size, pinned)
        finally:
            del self._pending[key]
            done.set()

    async def _subscribe(
        self,
        key: str,
        tool: str,
        arguments: Mapping[str, Any],
        event_types: list[str] | None,
        match: dict[str, Any] | None,
        size: int,
        pinned: bool,
    ) -> Subscribed:
        """`subscribe` once no other subscribe with the same key is under way here."""
        now = time.time()
        fresh = SubscriptionRecord(
            id=f"sub_{secrets.token_hex(8)}",
            key=key,
            tool=tool,
            arguments=dict(arguments),
            event_types=sorted(event_types) if event_types is not None else None,
            match=match,
            buffer_events=size,
            pinned=pinned,
            created_at=now,
            last_read_at=now,
        )
        existing = await self.store.find(key)
        if existing is not None:
            await self.store.update(existing.id, last_read_at=now, pinned=existing.pinned or pinned)
            cursor = Cursor(existing.id, existing.last_seq).encode()  # a joiner reads what is next
            return Subscribed(self._overlay(existing), True, cursor)
        record = await self.store.create(fresh, limit=self.limits.max_subscriptions)
        if record is None:
            who = (
                "The replicas sharing this store hold" if self.store.shared else "This bridge holds"
            )
            raise LimitError(
                f"{who} {self.limits.max_subscriptions} subscriptions already "
                "(--max-subscriptions).",
                hint="Unsubscribe from one you no longer need (list_subscriptions shows them), "
                "or start the bridge with a higher --max-subscriptions.",
            )
        if record.id != fresh.id:  # another replica created it meanwhile: join it
            cursor = Cursor(record.id, record.last_seq).encode()
            return Subscribed(self._overlay(record), True, cursor)
        await self._connect(record)
        self.listed()
        return Subscribed(await self.status(record.id), False, Cursor(record.id, 0).encode())

    def start_feed(
        self, record: SubscriptionRecord, known_ids: frozenset[str] = frozenset()
    ) -> Feed:
        """Run the feed of `record` in this process (its lease, if shared, is already held)."""
        assert self._tg is not None
        feed = Feed(self.bridge, self.store, record, self.appended, known_ids=known_ids)
        self.feeds[record.id] = feed
        self._tg.start_soon(feed.run)
        return feed

    async def _connect(self, record: SubscriptionRecord) -> None:
        """Start the feed and wait for its first connection; on failure leave nothing behind."""
        await self.store.claim(record.id)  # a new record: nobody else can hold it yet
        feed = self.start_feed(record)
        guard = 3 * self.bridge.limits.connect_timeout
        with anyio.move_on_after(guard):
            await feed.ready.wait()
        if feed.connected:  # even if it ended since: its events are buffered
            return
        failure: BridgeError
        if feed.error is not None:
            failure = feed.error
        elif feed.state == "ended":
            failure = UpstreamError(
                f"The upstream ended the stream at once ({feed.reason}).",
                hint="Check the tool's arguments; this upstream has nothing to stream for them.",
            )
        elif feed.refused:
            failure = UpstreamError(
                f"The upstream of {record.tool!r} refused every attempt for {guard:g} s; the "
                f"last: {self.bridge.secrets.redact(feed.refused)}",
                hint="It may be restarting or rate-limiting this client: subscribe again later.",
            )
        else:
            failure = ConnectError(
                f"No response from the upstream of {record.tool!r} within {guard:g} s.",
                hint="Check that the server is up and the URL is its event stream.",
            )
        await self._remove(record.id, "ended: the first connection failed")
        raise failure

    def validate(
        self,
        tool: str,
        arguments: Any,
        event_types: list[str] | None,
        match: dict[str, Any] | None,
    ) -> None:
        """Check a subscription's arguments exactly as a call's are checked."""
        if tool not in self.bridge.tools:
            raise ArgumentError(
                f"Unknown tool {tool!r}.",
                argument="tool",
                hint=f"Subscribe to one of: {', '.join(self.bridge.tools) or 'none'}.",
            )
        if not isinstance(arguments, Mapping):
            raise ArgumentError(
                "arguments must be an object of the tool's own arguments.",
                argument="arguments",
                hint='Pass e.g. arguments={"symbol": "AAPL"}, or {} when the tool takes none.',
            )
        control = [name for name in arguments if name in RESERVED_ARGUMENTS]
        if control:
            raise ArgumentError(
                f"arguments.{control[0]} is a call's control argument, not the tool's own.",
                argument=f"arguments.{control[0]}",
                hint="Pass event_types and match beside arguments; a subscription has no "
                "max_events, max_seconds, until_event or last_event_id (read it instead).",
            )
        call = dict(arguments)
        if event_types is not None:
            call["event_types"] = event_types
        if match is not None:
            call["match"] = match
        self.bridge.validate_arguments(tool, call)

    def _buffer_events(self, value: Any) -> int:
        ceiling = self.limits.max_buffer_events
        if value is None:
            return min(self.limits.default_buffer_events, ceiling)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(
                f"buffer_events must be a whole number from 1 up to {ceiling}.",
                argument="buffer_events",
                hint=f"Pass at most {ceiling}, or leave it out for the default.",
            )
        if value > ceiling:
            raise ArgumentError(
                f"buffer_events={value} is above this bridge's ceiling of {ceiling} "
                "(--subscription-buffer-limit).",
                argument="buffer_events",
                hint=f"Pass at most {ceiling} (the operator sets --subscription-buffer-limit).",
            )
        return value

    # -- read, list, unsubscribe -------------------------------------------------------------

    async def read(
        self,
        sub_id: str,
        *,
        cursor: str | None = None,
        max_events: int = 10,
        max_bytes: int | None = None,
        wait_seconds: float = 0.0,
        shape: Callable[[Read], None] | None = None,
    ) -> Read:
        """The events after `cursor` (default: where the previous read ended), bounded.

        Reads from the default position take turns, so parallel readers never get the same
        events twice. `shape` (result shaping) runs before the position moves: a read it refuses
        moves nothing, and no event is lost to it.
        """
        lock = self._reading.setdefault(sub_id, anyio.Lock()) if cursor is None else None
        async with lock or contextlib.nullcontext():
            read, end = await self._page(sub_id, cursor, max_events, max_bytes, wait_seconds)
            if shape is not None:
                shape(read)
            await self.store.update(sub_id, read_seq=end, last_read_at=time.time())
        return read

    async def _page(
        self,
        sub_id: str,
        cursor: str | None,
        max_events: int,
        max_bytes: int | None,
        wait_seconds: float,
    ) -> tuple[Read, int]:
        """The read and the sequence number it ends at."""
        start = anyio.current_time()
        record = await self.status(sub_id)
        after = record.read_seq if cursor is None else Cursor.decode(cursor, sub_id).seq
        page = await self.store.read(sub_id, after, max_events)
        waiting = not page.events and wait_seconds > 0 and record.state != "ended"
        if waiting and await self.store.wait_for_new(sub_id, after, wait_seconds):
            page = await self.store.read(sub_id, after, max_events)
        events, cut = _within_bytes(page.events, max_bytes)
        record = await self.status(sub_id)
        end = events[-1].seq if events else min(after, record.last_seq)
        if not events and page.dropped:
            end = record.last_seq  # everything after the cursor was overwritten: move past it
        has_more = page.has_more or cut
        if cut:
            stop = "max_bytes"
        elif has_more:
            stop = "max_events"
        else:
            stop = "closed" if record.state == "ended" else "caught_up"
        read = Read(
            subscription=sub_id,
            events=[event.to_dict() for event in events],
            cursor=Cursor(sub_id, end).encode(),
            has_more=has_more,
            dropped=page.dropped,
            stop_reason=stop,
            state=record.state,
            reason=record.reason,
            last_event_id=events[-1].id if events else "",
            elapsed_s=round(anyio.current_time() - start, 3),
            reconnects=record.reconnects,
            skipped={"filtered": record.filtered, "oversized": record.oversized},
        )
        return read, end

    async def status(self, sub_id: Any) -> SubscriptionRecord:
        """The subscription's record, or an `ArgumentError` saying it is gone."""
        record = await self.store.describe(sub_id) if isinstance(sub_id, str) else None
        if record is None:
            shown = sub_id if isinstance(sub_id, str) and len(sub_id) <= 40 else "that id"
            raise ArgumentError(
                f"No subscription {shown!r}: it was unsubscribed, expired or never existed.",
                argument="subscription",
                hint="list_subscriptions shows the current ones; subscribe again to start one.",
            )
        return self._overlay(record)

    def _overlay(self, record: SubscriptionRecord) -> SubscriptionRecord:
        feed = self.feeds.get(record.id)
        if feed is not None:
            record.state = feed.state
            record.reason = feed.reason if feed.state == "ended" else None
            record.reconnects = feed.reconnects
        return record

    async def records(self) -> list[SubscriptionRecord]:
        return [self._overlay(record) for record in await self.store.list()]

    async def newest(self, sub_id: str, limit: int) -> list[StoredEvent]:
        """The newest buffered events (for the resource); counts as a read for expiry only."""
        await self.store.update(sub_id, last_read_at=time.time())
        return await self.store.newest(sub_id, limit)

    async def unsubscribe(self, sub_id: Any) -> SubscriptionRecord:
        """End it now: the upstream connection is closed before this returns."""
        record = await self.status(sub_id)
        await self._remove(record.id, "ended: unsubscribed")
        self.listed()
        record.state, record.reason = "ended", "unsubscribed"
        return record

    async def _remove(self, sub_id: str, reason: str) -> None:
        self._reading.pop(sub_id, None)
        feed = self.feeds.pop(sub_id, None)
        if feed is not None:
            feed.stop(reason)
            with anyio.move_on_after(SHUTDOWN_SECONDS):
                await feed.done.wait()
        await self.store.delete(sub_id)

    def appended(self, sub_id: str) -> None:
        for watcher in self.watchers:
            watcher.updated(sub_id)

    async def _sweep(self) -> None:
        """End subscriptions that nobody read for `ttl_seconds` (pinned ones never)."""
        ttl = self.limits.ttl_seconds
        interval = min(max(ttl / 4, 0.05), 60.0)
        while True:
            await anyio.sleep(interval)
            with contextlib.suppress(StoreUnavailable):  # Redis away: sweep when it is back
                await self._expire(ttl)

    async def _expire(self, ttl: float) -> None:
        now = time.time()
        expired = [
            record.id
            for record in await self.store.list()
            if not record.pinned and now - record.last_read_at > ttl
        ]
        for sub_id in expired:
            await self._remove(sub_id, "ended: expired")
        if expired:
            self.listed()

    async def health(self) -> dict[str, Any]:
        """For `/healthz`: which replica this is, whether the store answers (within
        `HEALTH_SECONDS`, so a hung Redis is a prompt 503 for probes with short timeouts, not a
        wait for the command timeout), and the feeds held here."""
        reachable = False
        with anyio.move_on_after(HEALTH_SECONDS), contextlib.suppress(StoreUnavailable):
            await self.store.open()
            reachable = True
        running = sum(not feed.done.is_set() for feed in self.feeds.values())
        return {
            "replica": self.store.replica,
            "store": "shared" if self.store.shared else "memory",
            "store_reachable": reachable,
            "subscriptions_owned": running,
        }

    def listed(self) -> None:
        """Subscriptions started or ended (here or, with a shared store, anywhere)."""
        for watcher in self.watchers:
            watcher.list_changed()


def dedupe_key(
    tool: str, arguments: Mapping[str, Any], event_types: list[str] | None, match: Any
) -> str:
    """What makes two subscriptions the same: tool, arguments and filters, canonical JSON."""
    types = sorted(event_types) if event_types is not None else None
    text = json.dumps([tool, arguments, types, match], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _within_bytes(events: list[StoredEvent], budget: int | None) -> tuple[list[StoredEvent], bool]:
    """The leading events within the byte budget (always at least one), and whether cut."""
    if budget is None:
        return events, False
    total = 0
    for i, event in enumerate(events):
        total += event.size
        if total > budget and i:
            return events[:i], True
    return events, False


def summary(record: SubscriptionRecord, ttl: float, redact: Redact) -> dict[str, Any]:
    """A subscription as `list_subscriptions` and the resource show it (secrets masked)."""
    now = time.time()
    item: dict[str, Any] = {
        "subscription": record.id,
        "tool": record.tool,
        "arguments": _scrub(record.arguments, redact),
        "state": record.state,
        "buffered": record.buffered,
        "buffer_events": record.buffer_events,
        "dropped": record.dropped,
        "reconnects": record.reconnects,
        "pinned": record.pinned,
        "age_s": round(now - record.created_at, 3),
        "idle_s": round(now - record.last_read_at, 3),
    }
    if record.event_types is not None:
        item["event_types"] = record.event_types
    if record.match is not None:
        item["match"] = _scrub(record.match, redact)
    if record.reason is not None:
        item["reason"] = redact(record.reason)
    if not record.pinned:
        item["expires_in_s"] = round(max(0.0, ttl - (now - record.last_read_at)), 3)
    return item


def _scrub(value: Any, redact: Redact) -> Any:
    """`value` with `redact` applied to every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _scrub(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, redact) for item in value]
    return value
