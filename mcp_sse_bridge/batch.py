"""Filters and bounds: turn an endless stream of events into one bounded batch.

`Accepted` is the single pass over a stream: it applies the filter and every bound and keeps the
counts. `collect()` drives it to build the `Batch` that becomes a tool result; streaming consumers
(MCP progress) iterate `Accepted` themselves, so both paths follow the same rules.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from .errors import BridgeError
from .sse import ServerSentEvent
from .stream import StreamState

OnEvent = Callable[[dict[str, Any], int], Awaitable[None]]
Redact = Callable[[str], str]

_NOT_JSON = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(text: str) -> Any:
    """The strict JSON value of `text`, or `_NOT_JSON`.

    NaN and Infinity are refused because a result holding them could not be sent as JSON.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def event_to_dict(event: ServerSentEvent) -> dict[str, Any]:
    """One event in the result shape: `{"event", "id", "data"}`.

    `id` is always present, "" when the stream never set one, so consumers need no key checks.
    `data` is the decoded value when the whole text is strict JSON (so "42" becomes 42), else the
    text itself (e.g. OpenAI's "[DONE]").
    """
    value = _decode(event.data)
    return {
        "event": event.event,
        "id": event.id,
        "data": event.data if value is _NOT_JSON else value,
    }


def _scrub(value: Any, redact: Redact) -> Any:
    """`value` with `redact` applied to every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(key): _scrub(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, redact) for item in value]
    return value


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(value, dict):
            value = value.get(key, _NOT_JSON)
        elif isinstance(value, list) and key.isdecimal() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _NOT_JSON
    return value


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
        data = _decode(event.data)
        return data is not _NOT_JSON and all(
            _equal(_lookup(data, path), want) for path, want in self._paths
        )


@dataclass(frozen=True)
class Bounds:
    """When a batch ends. `max_seconds` covers the whole call, reconnects included."""

    max_events: int = 10
    max_seconds: float = 15.0
    idle_seconds: float | None = None
    max_bytes: int | None = None
    until_event: str | None = None


@dataclass
class Batch:
    """A tool result. `error` is set only when stop_reason is "error" (see `collect`)."""

    events: list[dict[str, Any]]
    count: int
    stop_reason: str
    last_event_id: str
    elapsed_s: float
    reconnects: int
    skipped: dict[str, int]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "events": self.events,
            "count": self.count,
            "stop_reason": self.stop_reason,
            "last_event_id": self.last_event_id,
            "elapsed_s": self.elapsed_s,
            "reconnects": self.reconnects,
            "skipped": dict(self.skipped),
        }
        if self.error is not None:
            result["error"] = self.error
        return result


class Accepted:
    """One pass over an event stream, yielding each accepted event as a result dict.

    Rules, in order, for every event received:
    - an event whose type is `until_event` is accepted whatever the filter says, and ends the pass
      ("until_event");
    - an event the filter refuses is counted in `filtered`;
    - `max_bytes` bounds the UTF-8 size of the accepted events' `data` text: the event that would
      exceed it is left out and ends the pass ("max_bytes"), so a resume starts with it. An event
      that alone exceeds the budget is skipped and counted as oversized instead, or no resume
      could ever get past it;
    - the pass ends at `max_events` accepted events, when no event at all (accepted or not)
      arrived for `idle_seconds` while waiting for one ("idle"), at `max_seconds` from the first
      iteration ("max_seconds"), or at a clean end of the upstream ("closed").

    The input is the stream's lists of events, one per chunk read (`stream.open_chunks`). The
    events of a type no rule can accept are dropped from each list by one comprehension, so a
    firehose that matches 1 event in 10,000 costs little more than its parsing; the rules above
    run per event on the rest. `stop_reason` stays None while running and when the consumer stops
    early. Time bounds are applied only while waiting for upstream events, never around the
    consumer's own code. `redact` is applied to every string of every yielded event (secrets the
    upstream echoes).
    """

    def __init__(
        self,
        chunks: AsyncIterator[list[ServerSentEvent]],
        state: StreamState,
        *,
        filter: EventFilter,
        bounds: Bounds,
        redact: Redact | None = None,
    ) -> None:
        self._chunks = chunks
        self._state = state
        self._filter = filter
        self._bounds = bounds
        self._redact = redact
        types, until = filter.event_types, bounds.until_event
        # The types some rule can accept (None: any); `_take` drops the others in one go.
        self._types = None if types is None else types | {until} if until else types
        self._cursor = state.last_event_id
        self._end = math.inf
        self._idle_at = math.inf
        self.stop_reason: str | None = None
        self.count = 0
        self.filtered = 0
        self.oversized = 0
        self.bytes = 0

    @property
    def last_event_id(self) -> str:
        """Where to resume: after the last event consumed, never after one `max_bytes` left out."""
        return self._cursor

    @property
    def skipped(self) -> dict[str, int]:
        return {"filtered": self.filtered, "oversized": self._state.oversized + self.oversized}

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        self._end = anyio.current_time() + self._bounds.max_seconds
        idle = self._bounds.idle_seconds
        while self.stop_reason is None:
            if idle is not None:  # idle time is upstream silence, never the consumer's own time
                self._idle_at = anyio.current_time() + idle
            chunk = None
            with anyio.CancelScope(deadline=min(self._end, self._idle_at)) as scope:
                chunk = await anext(self._chunks, None)
            if scope.cancelled_caught:
                self.stop_reason = "idle" if self._idle_at < self._end else "max_seconds"
            elif chunk is None:
                self.stop_reason = "closed"
            else:
                for event in self._take(chunk):
                    yield self._result(event)

    def _take(self, chunk: list[ServerSentEvent]) -> Iterator[ServerSentEvent]:
        """The accepted events of one chunk, in order; sets `stop_reason` when one ends the pass.

        Counts and the cursor are exact wherever the pass stops, also inside the chunk.
        """
        bounds, types = self._bounds, self._types
        if types is None:
            positions: Iterable[int] = range(len(chunk))
        else:
            positions = [i for i, event in enumerate(chunk) if event.event in types]
        done = 0  # events of the chunk accounted for
        for i in positions:
            event = chunk[i]
            self.filtered += i - done  # dropped by type since the previous candidate
            done = i + 1
            until = event.event == bounds.until_event
            if not until and not self._filter.accepts(event):
                self.filtered += 1
                continue
            size = len(event.data.encode())
            if bounds.max_bytes is not None and self.bytes + size > bounds.max_bytes:
                if self.count:
                    self.stop_reason = "max_bytes"
                    if i:
                        self._cursor = chunk[i - 1].id
                    return
                self.oversized += 1
                continue
            self.bytes += size
            self.count += 1
            self._cursor = event.id
            if until:
                self.stop_reason = "until_event"
            elif self.count >= bounds.max_events:
                self.stop_reason = "max_events"
            yield event
            if self.stop_reason is not None:
                return
        self.filtered += len(chunk) - done
        self._cursor = self._state.last_event_id

    def _result(self, event: ServerSentEvent) -> dict[str, Any]:
        item = event_to_dict(event)
        if self._redact is None:
            return item
        try:
            return _scrub(item, self._redact)
        except RecursionError:  # nested nearly as deep as json.loads allows: keep the text
            return _scrub({**item, "data": event.data}, self._redact)

    async def collect(self, on_event: OnEvent | None = None) -> Batch:
        """Run the pass to its end and return the batch; see the module's `collect`."""
        items: list[dict[str, Any]] = []
        error: str | None = None
        start = anyio.current_time()
        # The pass bounds its own waits; this scope also bounds a slow `on_event`.
        with anyio.move_on_after(self._bounds.max_seconds):
            try:
                async with contextlib.aclosing(aiter(self)) as accepted:
                    async for item in accepted:
                        items.append(item)
                        if on_event is not None:
                            await on_event(item, len(items))
            except BridgeError as exc:
                if not items:
                    raise
                error = str(exc)
        redact = self._redact or str
        return Batch(
            events=items,
            count=len(items),
            # A pass the consumer's slowness cut short has no stop_reason of its own.
            stop_reason="error" if error is not None else self.stop_reason or "max_seconds",
            last_event_id=redact(self.last_event_id),
            elapsed_s=round(anyio.current_time() - start, 3),
            reconnects=self._state.reconnects,
            skipped=self.skipped,
            error=None if error is None else redact(error),
        )


async def collect(
    chunks: AsyncIterator[list[ServerSentEvent]],
    state: StreamState,
    *,
    filter: EventFilter,
    bounds: Bounds,
    on_event: OnEvent | None = None,
    redact: Redact | None = None,
) -> Batch:
    """Collect one bounded batch; `on_event(event, count)` is awaited for each accepted event.

    Running out of time is not an error: the batch holds what arrived, with its stop_reason. An
    upstream error before any event was accepted is raised; after that it is returned as the
    batch with stop_reason "error" and the message in `error`, because the events already
    taken from the stream could not be fetched again otherwise. `chunks` yields lists of events
    as `stream.open_chunks` does; the caller owns it and closes it (e.g. with
    `contextlib.aclosing`). `redact` cleans events and the error text.
    """
    run = Accepted(chunks, state, filter=filter, bounds=bounds, redact=redact)
    return await run.collect(on_event)
