"""The store behind subscriptions: status records and bounded event buffers, read by cursor.

The MCP layer and the registry see only this protocol, so a shared store (Redis Streams, one
stream and one hash per subscription) can replace the in-memory one without touching them.
Decisions that keep that door open:

- Every method is async, and records are plain data (JSON-able fields, wall-clock times), so
  any replica can read what another wrote.
- The store assigns each appended event a sequence number, strictly increasing per
  subscription from 1. A cursor is that number (plus the subscription's id), never a list
  position, so trimming the buffer never shifts anyone's place: what a reader missed is
  exactly `first buffered seq - cursor - 1`, reported as `dropped`.
- Dedupe is the store's: `create` returns the record already holding the same key, atomically,
  so two replicas subscribing at once still share one subscription.
- Cursors are opaque strings that name their subscription, so one passed to another
  subscription is refused with a clear message instead of reading from a wrong position.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from ..errors import ArgumentError, BridgeError

STATES = ("connecting", "live", "reconnecting", "ended")
_ID = re.compile("sub_[0-9a-f]{1,32}")


@dataclass(slots=True)
class StoredEvent:
    """One buffered event: the call result's shape plus when the bridge received it.

    `seq` is 0 until the store appends the event. `gap` marks the first event after the upstream
    connection was made again: an upstream that does not replay after `Last-Event-ID` may have
    sent events meanwhile that nobody received. `size` is what it costs of the byte limits.
    """

    event: str
    id: str
    data: Any
    received_at: str
    size: int
    gap: bool = False
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        item = {"event": self.event, "id": self.id, "data": self.data}
        item["received_at"] = self.received_at
        if self.gap:
            item["gap"] = True
        return item


@dataclass
class SubscriptionRecord:
    """What is known about one subscription; the store keeps the buffer counters current."""

    id: str
    key: str  # tool, arguments and filters, canonical: the dedupe key
    tool: str
    arguments: dict[str, Any]
    event_types: list[str] | None
    match: dict[str, Any] | None
    buffer_events: int
    pinned: bool
    created_at: float  # time.time(): comparable across processes
    last_read_at: float
    state: str = "connecting"
    reason: str | None = None  # why it ended
    reconnects: int = 0
    last_event_id: str = ""
    read_seq: int = 0  # where the previous read ended: a read without a cursor starts here
    filtered: int = 0
    oversized: int = 0
    # kept by the store:
    last_seq: int = 0
    buffered: int = 0
    dropped: int = 0
    bytes: int = 0

    def copy(self) -> SubscriptionRecord:
        """A shallow copy: callers get a snapshot, the store keeps its own."""
        return replace(self)


class Page(NamedTuple):
    """One read: the events after the cursor, how many were trimmed before the reader saw
    them, and whether more is buffered than `limit` allowed."""

    events: list[StoredEvent]
    dropped: int
    has_more: bool


class SubscriptionStore(Protocol):
    """Status records and bounded event buffers. Unknown ids: `describe` None, others no-ops
    (a subscription can end while a reader holds its id)."""

    async def create(
        self, record: SubscriptionRecord, *, limit: int | None = None
    ) -> SubscriptionRecord | None:
        """Add `record`, or return the existing record with the same key (adding nothing; a
        join needs no room). None, adding nothing, when `limit` subscriptions exist already:
        one atomic step, so concurrent subscribes on any replicas never pass the limit."""
        ...

    async def describe(self, sub_id: str) -> SubscriptionRecord | None: ...

    async def find(self, key: str) -> SubscriptionRecord | None:
        """The record holding this dedupe key, if any."""
        ...

    async def update(self, sub_id: str, **changes: Any) -> None:
        """Set fields of the record (state, reason, reconnects, read_seq, ...)."""
        ...

    async def append(self, sub_id: str, events: list[StoredEvent], **changes: Any) -> int:
        """Buffer `events` in order, numbering them, and set `changes` on the record, in one
        step; trims the oldest past the limits. Returns the last sequence number."""
        ...

    async def read(self, sub_id: str, after_seq: int, limit: int) -> Page: ...

    async def wait_for_new(self, sub_id: str, after_seq: int, timeout: float) -> bool:
        """Wait up to `timeout` s for an event after `after_seq` (or the end); True if any."""
        ...

    async def newest(self, sub_id: str, limit: int) -> list[StoredEvent]:
        """The newest `limit` buffered events, oldest first (moves no cursor)."""
        ...

    async def delete(self, sub_id: str) -> None: ...

    async def count(self) -> int:
        """How many subscriptions there are (the limit itself is checked in `create`)."""
        ...

    async def list(self) -> list[SubscriptionRecord]: ...

    # -- sharing: only a store shared by replicas (Redis) has more than one owner to choose --

    shared: bool
    """Whether other processes use this store too (then feeds are leased and handed over)."""
    replica: str
    """This process's id among the store's users (in `/healthz` and the store's leases)."""
    lease_seconds: float
    """How long a feed's lease lasts unless renewed (a shared store's; renewed at a third)."""

    async def open(self) -> None:
        """Check the store answers (`StoreUnavailable` if not); called once at start."""
        ...

    async def close(self) -> None: ...

    async def claim(self, sub_id: str) -> bool:
        """Take the lease on feeding `sub_id` unless another process holds it."""
        ...

    async def renew(self, sub_id: str) -> bool:
        """Extend this process's lease; False when it was lost (stop feeding at once)."""
        ...

    async def release(self, sub_id: str) -> None: ...

    async def unowned(self) -> list[str]:
        """Subscriptions that have not ended and whose feed nobody holds."""
        ...

    async def listen(self, on_news: OnNews) -> None:
        """Run until cancelled, telling `on_news(kind, sub_id)` what other processes did:
        kind "append" (events or a state change), "create" or "delete"."""
        ...


OnNews = Callable[[str, str], None]


class StoreUnavailable(BridgeError):
    """The store did not answer: subscriptions need it; plain tool calls go on without it."""

    kind = "store"


class LeaseLost(StoreUnavailable):
    """Another process feeds this subscription now: this one must stop writing at once."""


class CursorError(ArgumentError):
    """A cursor that is not one of ours, or belongs to another subscription."""


@dataclass(frozen=True)
class Cursor:
    subscription: str
    seq: int

    def encode(self) -> str:
        raw = f"{self.subscription}:{self.seq}".encode()
        return "c_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: Any, subscription: str) -> Cursor:
        """The cursor in `text`, which must belong to `subscription`."""
        hint = "Pass the cursor of an earlier read of this subscription unchanged, or leave it out."
        try:
            if not isinstance(text, str) or not text.startswith("c_") or len(text) > 200:
                raise ValueError
            padded = text[2:] + "=" * (-len(text[2:]) % 4)
            owner, _, seq = base64.urlsafe_b64decode(padded).decode().rpartition(":")
            cursor = cls(owner, int(seq))
            if not _ID.fullmatch(owner) or not seq.isdecimal():
                raise ValueError
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise CursorError(
                "cursor is not a cursor of this bridge.", argument="cursor", hint=hint
            ) from None
        if cursor.subscription != subscription:
            raise CursorError(
                f"cursor belongs to subscription {cursor.subscription!r}, not {subscription!r}.",
                argument="cursor",
                hint=hint,
            )
        return cursor
