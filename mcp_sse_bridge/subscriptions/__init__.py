"""Subscriptions: upstream feeds held open between calls, buffered, read from cursors.

Owns the registry of subscriptions (`registry.py`), the background task that holds each
upstream open (`feed.py`), and the store their events and status records live in (`store.py`,
the in-memory ring buffers of `memory.py`). Imports `manual`, `upstream` and `calls`; never
`server`, `cli` or `mcp`: the four MCP tools and the resources live in `server/`.
"""

from .memory import MemoryStore
from .registry import Registry, SubscriptionLimits
from .store import Cursor, CursorError, StoredEvent, SubscriptionRecord, SubscriptionStore

__all__ = [
    "Cursor",
    "CursorError",
    "MemoryStore",
    "Registry",
    "StoredEvent",
    "SubscriptionLimits",
    "SubscriptionRecord",
    "SubscriptionStore",
]
