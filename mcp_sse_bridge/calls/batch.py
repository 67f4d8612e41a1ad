"""Filters and bounds: turn an endless stream of events into one bounded batch.

`Accepted` is the single pass over a stream: it applies the filter and every bound and keeps the
counts. `collect()` drives it to build the `Batch` that becomes a tool result; streaming consumers
(MCP progress) iterate `Accepted` themselves, so both paths follow the same rules.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..errors import BridgeError, ConnectError
from ..upstream.sse import ServerSentEvent
from ..upstream.stream import StreamState

OnEvent = Callable[[dict[str, Any], int], Awaitable[None]]
Redact = Callable[[str], str]

_NOT_JSON = object()
MAX_DEPTH = 64
"""Data nested deeper than this stays text: the MCP SDK cannot serialise ~250 levels, and no
real event needs 64."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # `1e400`: valid JSON text, but no float a result could hold
        raise ValueError(f"{text[:20]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _decode(text: str) -> Any:
    """The strict JSON value of `text`, or `_NOT_JSON`.

    Refused, so that the event keeps its text: NaN and Infinity (not JSON), numbers beyond the
    float range (they would become Infinity), nesting deeper than `MAX_DEPTH`, and escaped lone
    surrogates (`"\\ud800"`, not encodable as UTF-8). Each of them would make the result
    unsendable as JSON, losing the whole batch for one event.
    """
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(value):
        return _NOT_JSON
    if _SURROGATE_ESCAPE.search(text) and not _encodable(value):
        return _NOT_JSON
    return value


def _encodable(value: Any) -> bool:
    """Whether `value` survives UTF-8 (a pair of escaped surrogates does; a lone one does not)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _too_deep(value: Any) -> bool:
    """Whether `value` nests containers more than `MAX_DEPTH` levels deep (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def event_to_dict(event: ServerSentEvent) -> dict[str, Any]:
    """One event in the result shape: `{"event", "id", "data"}`.

    `id` is always present, "" when the stream never set one, so consumers need no key checks.
    `data` is the decoded value when the whole text is strict JSON (so "42" becomes 42), else the
    text itself (e.g. OpenAI's "[DONE]", or JSON that `_decode` refuses).
    """
    value = _decode(event.data)
    return {
        "event": event.event,
        "id": event.id,
        "data": event.data if value is _NOT_JSON else value,
    }


def _redacted_dict(event: ServerSentEvent, redact: Redact) -> dict[str, Any]:
    """`event_to_dict` with every secret masked.

    The data text is redacted before it is decoded, so that a secret the upstream echoes as a
    JSON number (`{"pin": 90817263}`) is caught too; such data is then no longer JSON and stays
    text. The decoded strings are redacted again, for a secret written with JSON escapes.
    """
    text = redact(event.data)
    value = _decode(text)
    return {
        "event": redact(event.event),
        "id": redact(event.id),
        "data": text if value is _NOT_JSON else _scrub(value, redact),
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


def _size(event: ServerSentEvent) -> int:
    """What an event costs of the byte budget: the UTF-8 bytes of its type, id and data."""
    return len(event.event.encode()) + len(event.id.encode()) + len(event.data.encode())


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
    - `max_bytes` bounds the accepted events' size, counted as the UTF-8 bytes of each event's
      type, id and data text (the result's JSON adds some 30 bytes of keys and quotes per
      event): the event that would exceed it is left out and ends the pass ("max_bytes"), so a
      resume starts with it. An event that alone exceeds the budget is skipped and counted as
      oversized instead, or no resume could ever get past it. An id larger than the budget never
      becomes the cursor either: `last_event_id` stays at the last id that fits, and a resume
      replays (and skips again) what came after it;
    - the pass ends at `max_events` accepted events, when no event at all (accepted or not)
      arrived for `idle_seconds` while waiting for one ("idle"), at `max_seconds` from the first
      iteration ("max_seconds"), or at a clean end of the upstream ("closed");
    - but when a time bound ends the pass while the stream is still making its first connection
      (`state.connecting`), that is a `ConnectError`: an upstream that never answered must not
      look like a quiet stream.

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
    def state(self) -> StreamState:
        """The stream's state: reconnects, the connection's last event id, whether it is open."""
        return self._state

    @property
    def last_event_id(self) -> str:
        """Where to resume: after the last event consumed, never after one `max_bytes` left out."""
        return self._cursor

    @property
    def skipped(self) -> dict[str, int]:
        return {"filtered": self.filtered, "oversized": self._state.oversized + self.oversized}

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._pass(caller_ends=False)

    async def _pass(self, *, caller_ends: bool) -> AsyncIterator[dict[str, Any]]:
        """The accepted events. With `caller_ends`, the caller's own scope ends the pass at
        `max_seconds` (as `collect`'s does), so a wait needs a scope only for an idle bound: a
        scope per wait was a twentieth of the CPU of a call with a few small chunks."""
        self._end = anyio.current_time() + self._bounds.max_seconds
        idle = self._bounds.idle_seconds
        scoped = idle is not None or not caller_ends
        while self.stop_reason is None:
            if scoped:
                chunk = await self._next_within_bounds(idle)
            else:
                chunk = await anext(self._chunks, None)
                if chunk is None:
                    self.stop_reason = "closed"
            if chunk is not None:
                for event in self._take(chunk):
                    yield self._result(event)

    async def _next_within_bounds(self, idle: float | None) -> list[ServerSentEvent] | None:
        """The next chunk, or None with `stop_reason` set when the stream or a bound ends."""
        if idle is not None:  # idle time is upstream silence, never the consumer's own time
            self._idle_at = anyio.current_time() + idle
        chunk = None
        with anyio.CancelScope(deadline=min(self._end, self._idle_at)) as scope:
            chunk = await anext(self._chunks, None)
        if scope.cancelled_caught:
            reason = "idle" if self._idle_at < self._end else "max_seconds"
            if self._state.connecting:
                raise _no_response(reason, self._bounds, self._state.where)
            self.stop_reason = reason
        elif chunk is None:
            self.stop_reason = "closed"
        return chunk

    def _take(self, chunk: list[ServerSentEvent]) -> Iterator[ServerSentEvent]:
        """The accepted events of one chunk, in order; sets `stop_reason` when one ends the pass.

        Counts and the cursor are exact wherever the pass stops, also inside the chunk.
        """
        bounds, types = self._bounds, self._types
        budget = bounds.max_bytes
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
            size = _size(event)
            if budget is not None and self.bytes + size > budget:
                if self.count:
                    self.stop_reason = "max_bytes"
                    if i:
                        self._move_cursor(chunk[i - 1].id, chunk, i - 1)
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
        self._move_cursor(self._state.last_event_id, chunk, len(chunk))

    def _move_cursor(self, last_id: str, chunk: list[ServerSentEvent], end: int) -> None:
        """Move the cursor past `chunk[:end]`, to `last_id`; when that id alone would break the
        byte budget, to the latest id before it that fits (or leave it where it is)."""
        for event_id in itertools.chain([last_id], (chunk[i].id for i in range(end - 1, -1, -1))):
            if self._fits(event_id):
                self._cursor = event_id
                return

    def _fits(self, event_id: str) -> bool:
        budget = self._bounds.max_bytes
        return budget is None or len(event_id) <= budget // 4 or len(event_id.encode()) <= budget

    def _result(self, event: ServerSentEvent) -> dict[str, Any]:
        if self._redact is None:
            return event_to_dict(event)
        return _redacted_dict(event, self._redact)

    async def collect(self, on_event: OnEvent | None = None) -> Batch:
        """Run the pass to its end and return the batch; see the module's `collect`."""
        items: list[dict[str, Any]] = []
        error: str | None = None
        start = anyio.current_time()
        # The pass bounds its own waits; this scope also bounds a slow `on_event`, and may be the
        # one to fire first (it started first).
        with anyio.move_on_after(self._bounds.max_seconds) as scope:
            try:
                async with contextlib.aclosing(self._pass(caller_ends=True)) as accepted:
                    async for item in accepted:
                        items.append(item)
                        if on_event is not None:
                            await on_event(item, len(items))
            except BridgeError as exc:
                if not items:
                    raise
                error = str(exc)
        if scope.cancelled_caught and self._state.connecting:
            raise _no_response("max_seconds", self._bounds, self._state.where)
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


def _no_response(bound: str, bounds: Bounds, where: str) -> ConnectError:
    """The error for a time bound that ended a pass before the first connection was made."""
    seconds = bounds.idle_seconds if bound == "idle" else bounds.max_seconds
    upstream = f"the upstream ({where})" if where else "the upstream"
    return ConnectError(
        f"No response from {upstream} within {seconds:g} s ({bound}): the event stream was "
        "never established.",
        hint="Check that the server is up and the URL is its event stream (and that the OAuth2 "
        "token endpoint answers, if the manual uses one), or allow the call more time.",
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

    Running out of time is not an error: the batch holds what arrived, with its stop_reason,
    unless the first connection was still being made (`ConnectError`, see `Accepted`). An
    upstream error before any event was accepted is raised; after that it is returned as the
    batch with stop_reason "error" and the message in `error`, because the events already
    taken from the stream could not be fetched again otherwise. `chunks` yields lists of events
    as `stream.open_chunks` does; the caller owns it and closes it (e.g. with
    `contextlib.aclosing`). `redact` cleans events and the error text.
    """
    run = Accepted(chunks, state, filter=filter, bounds=bounds, redact=redact)
    return await run.collect(on_event)
