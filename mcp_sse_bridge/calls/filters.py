"""What a call asks for: which events it wants (`EventFilter`), and when its batch ends (`Bounds`).

Both are plain values, built from the control arguments (`arguments.plan_call`) and applied by
the pass over the stream (`batch.Accepted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..shaping import lookup
from ..upstream.sse import ServerSentEvent
from .events import NOT_JSON, decode


def _equal(actual: Any, expected: Any) -> bool:
    # Python says True == 1; a filter on JSON data must not.
    return isinstance(actual, bool) is isinstance(expected, bool) and actual == expected


@dataclass(frozen=True)
class EventFilter:
    """Which events the caller wants: an allow-list of types and equality on JSON fields.

    `match` maps dotted paths to expected values, all of which must hold: `{"quote.venue": "X"}`
    reads `data["quote"]["venue"]`, and a decimal segment indexes a list (`"items.0.id"`). Data is
    decoded only for events whose type passes, and data that is not JSON never matches.
    """

    event_types: frozenset[str] | None = None
    match: Mapping[str, Any] | None = None
    _paths: tuple[tuple[tuple[str, ...], Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        paths = tuple((tuple(path.split(".")), want) for path, want in (self.match or {}).items())
        object.__setattr__(self, "_paths", paths)

    def accepts(self, event: ServerSentEvent) -> bool:
        if self.event_types is not None and event.event not in self.event_types:
            return False
        if not self._paths:
            return True
        data = decode(event.data)
        return data is not NOT_JSON and all(
            _equal(lookup(data, path), want) for path, want in self._paths
        )


@dataclass(frozen=True)
class Bounds:
    """When a batch ends. `max_seconds` covers the whole call, reconnects included."""

    max_events: int = 10
    max_seconds: float = 15.0
    idle_seconds: float | None = None
    max_bytes: int | None = None
    until_event: str | None = None
    summary_events: int = 100_000  # events a `summary` aggregates at most
