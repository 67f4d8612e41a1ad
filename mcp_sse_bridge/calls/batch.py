"""One pass over an endless stream of events, under a filter and bounds, into one bounded batch.

`Accepted` is the single pass over a stream: it applies the filter and every bound
(`filters.py`) and keeps the counts. `collect()` drives it to build the `Batch` that becomes a
tool result; streaming consumers (MCP progress) iterate `Accepted` themselves, so both paths
follow the same rules.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import BridgeError, ConnectError
from ..shaping import MISSING, Shaper, Shaping
from ..shaping.paths import Selection, project_data
from ..shaping.shaper import event_size, fields_note
from ..upstream.sse import ServerSentEvent
from ..upstream.stream import StreamState
from .events import NOT_JSON, Redact, decode, event_to_dict, redacted_dict
from .filters import Bounds, EventFilter

OnEvent = Callable[[dict[str, Any], int], Awaitable[None]]
OnFold = Callable[[int], None]
"""Hears how many events a shaping pass has folded so far, after each chunk (no event is
yielded to report it with)."""


def _size(event: ServerSentEvent) -> int:
    """What an event costs of the byte budget: the UTF-8 bytes of its type, id and data."""
    return len(event.event.encode()) + len(event.id.encode()) + len(event.data.encode())


@dataclass
class Batch:
    """A tool result. `error` is set only when stop_reason is "error" (see `collect`).

    `folded` and `summary` are set by shaping (`latest_per`, `summary`), `note` says in one line
    what shaping did (None for a raw batch), `format` is how the server renders the text.
    """

    events: list[dict[str, Any]]
    count: int
    stop_reason: str
    last_event_id: str
    elapsed_s: float
    reconnects: int
    skipped: dict[str, int]
    error: str | None = None
    folded: int | None = None
    summary: dict[str, Any] | None = None
    note: str | None = None
    format: str = "json"

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
        if self.folded is not None:
            result["folded"] = self.folded
        if self.summary is not None:
            result["summary"] = self.summary
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

    `shaping` (see `shaping.Shaper`): with `fields` alone each yielded event's data is projected,
    and `max_bytes` counts the projected data. With `latest_per` or `summary` the pass folds every
    accepted event into a `Shaper` and yields none: `max_events` and `max_bytes` no longer end it
    (they bound the shaped result), only `until_event`, the summary's `summary_events`
    ("max_events"), the time bounds and the end of the stream do.
    """

    def __init__(
        self,
        chunks: AsyncIterator[list[ServerSentEvent]],
        state: StreamState,
        *,
        filter: EventFilter,
        bounds: Bounds,
        redact: Redact | None = None,
        shaping: Shaping | None = None,
    ) -> None:
        self._chunks = chunks
        self._shaping = shaping = shaping or Shaping()
        self._shaper: Shaper | None = None
        self._project = None
        if shaping.reduces:
            limit = bounds.summary_events
            self._shaper = Shaper(
                shaping, max_events=bounds.max_events, summary_limit=limit, decode=_value
            )
        else:
            self._project = shaping.projector()
        self._state = state
        self._filter = filter
        self._bounds = bounds
        self._redact = redact
        self._on_fold: OnFold | None = None
        types, until = filter.event_types, bounds.until_event
        # The types some rule can accept (None: any); `_take` drops the others in one go.
        self._types = None if types is None else types | {until} if until else types
        self._cursor = state.last_event_id
        self._end = math.inf
        self._idle_at = math.inf
        self._heard = True  # events arrived since the idle bound was last set
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
        """Where to resume: the stream's last event ID after the last event consumed and the
        id-only blocks that followed it (an empty list from the stream), whatever block set it;
        never past an event not taken, nor after one `max_bytes` left out."""
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
            if chunk is not None and self._shaper is not None:
                self._fold(chunk, self._shaper)
            elif chunk is not None:
                for item in self._take(chunk):
                    yield item

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The accepted events a chunk at a time, all bounds applied (no shaping): for a
        consumer that stores them in one step per chunk, as a subscription's feed does."""
        self._end = anyio.current_time() + self._bounds.max_seconds
        while self.stop_reason is None:
            chunk = await self._next_within_bounds(self._bounds.idle_seconds)
            if chunk and (taken := list(self._take(chunk))):
                yield taken

    async def _next_within_bounds(self, idle: float | None) -> list[ServerSentEvent] | None:
        """The next chunk, or None with `stop_reason` set when the stream or a bound ends."""
        if idle is not None and self._heard:  # idle time is upstream silence, never the
            self._idle_at = anyio.current_time() + idle  # consumer's own time
        chunk = None
        with anyio.CancelScope(deadline=min(self._end, self._idle_at)) as scope:
            chunk = await anext(self._chunks, None)
        self._heard = bool(chunk)  # an id-only block (an empty list) is no event
        if scope.cancelled_caught:
            reason = "idle" if self._idle_at < self._end else "max_seconds"
            if self._state.connecting:
                raise _no_response(reason, self._bounds, self._state)
            self.stop_reason = reason
        elif chunk is None:
            self.stop_reason = "closed"
        return chunk

    def _take(self, chunk: list[ServerSentEvent]) -> Iterator[dict[str, Any]]:
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
            item = None if self._project is None else self._projected(event, self._project)
            size = _size(event) if item is None else event_size(item)
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
            yield self._result(event) if item is None else item
            if self.stop_reason is not None:
                if i == len(chunk) - 1:  # what follows it in the chunk carries no event
                    self._move_cursor(self._state.last_event_id, chunk, len(chunk))
                return
        self.filtered += len(chunk) - done
        self._move_cursor(self._state.last_event_id, chunk, len(chunk))

    def _fold(self, chunk: list[ServerSentEvent], shaper: Shaper) -> None:
        """A shaping pass over one chunk: its accepted events go to `shaper` as one list."""
        until, types = self._bounds.until_event, self._types
        candidates = chunk if types is None else [e for e in chunk if e.event in types]
        if until is not None and until in (kinds := [e.event for e in candidates]):
            candidates = candidates[: kinds.index(until) + 1]
            self.stop_reason = "until_event"
        accepted = candidates
        if self._filter.match:  # the types were checked above
            accepts = self._filter.accepts
            accepted = [e for e in candidates if e.event == until or accepts(e)]
        if shaper.scans:  # fewer decoded, or decoded into less (see `Shaper.scans`)
            redact = self._redact
            texts = [e.data for e in accepted]
            if redact is not None:
                texts = list(map(redact, texts))
            taken = shaper.feed_texts(accepted, texts, self._result, time.time(), redact)
        else:
            taken = shaper.feed([self._result(e) for e in accepted], time.time())
        self.count += taken
        if self._on_fold is not None and taken:
            self._on_fold(self.count)
        last = None  # the last event consumed, when the pass ends inside this chunk
        if 0 < taken < len(accepted):  # the summary's limit
            last = accepted[taken - 1]
        elif self.stop_reason == "until_event":
            last = candidates[-1]
        if shaper.full and self.stop_reason is None:
            self.stop_reason = "max_events"
        if last is None:
            self.filtered += len(chunk) - taken
            self._move_cursor(self._state.last_event_id, chunk, len(chunk))
        else:
            end = next(i for i, event in enumerate(chunk) if event is last) + 1
            self.filtered += end - taken
            self._move_cursor(last.id, chunk, end)

    def _projected(self, event: ServerSentEvent, tree: Selection) -> dict[str, Any]:
        item = self._result(event)
        item["data"] = project_data(item["data"], tree)
        return item

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
        return redacted_dict(event, self._redact)

    async def collect(
        self, on_event: OnEvent | None = None, on_fold: OnFold | None = None
    ) -> Batch:
        """Run the pass to its end and return the batch; see the module's `collect`."""
        self._on_fold = on_fold
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
                if not items and not self.count:  # a shaping pass yields none: it counts them
                    raise
                error = str(exc)
        if scope.cancelled_caught and self._state.connecting:
            raise _no_response("max_seconds", self._bounds, self._state)
        redact = self._redact or str
        batch = Batch(
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
        return self._shaped(batch)

    def _shaped(self, batch: Batch) -> Batch:
        """`batch` with the shaper's result, or the `fields` note, and the text format."""
        batch.format = self._shaping.format
        redact = self._redact or str  # a note may echo the caller's paths
        if self._shaper is None:
            if self._shaping.fields is not None:
                batch.note = redact(fields_note(self._shaping.fields))
            return batch
        shaped = self._shaper.result(self._bounds.max_bytes)
        batch.events, batch.count = shaped.events, len(shaped.events)
        batch.folded, batch.summary = shaped.folded, shaped.summary
        batch.note = redact(shaped.note)
        batch.skipped["filtered"] += shaped.filtered
        batch.skipped.update(shaped.skipped)
        return batch


def _value(text: str) -> Any:
    """The strict JSON value of `text`, or `MISSING` (what shaping's key scan decodes with)."""
    value = decode(text)
    return MISSING if value is NOT_JSON else value


def _no_response(bound: str, bounds: Bounds, state: StreamState) -> ConnectError:
    """The error for a time bound that ended a pass before the first connection was made."""
    seconds = bounds.idle_seconds if bound == "idle" else bounds.max_seconds
    upstream = f"the upstream ({state.where})" if state.where else "the upstream"
    why = f" The last attempt was refused: {state.refused}" if state.refused else ""
    return ConnectError(
        f"No response from {upstream} within {seconds:g} s ({bound}): the event stream was "
        f"never established.{why}",
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
