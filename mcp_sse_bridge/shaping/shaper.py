"""The shaping entry point: options (`Shaping`), the reducer (`Shaper`) and its result (`Shaped`).

Contract, for a live call and for a read of buffered events alike: feed the accepted events in
arrival order, in the result shape and already redacted, as lists (`Shaper.feed(items, at)`,
`at` their arrival time in seconds since the epoch), stop feeding when `full` says so, then take
`result(max_bytes)`. `shape()` does all of it for one list. The caller keeps its own counts
(`filtered`, `oversized`) and adds `Shaped.filtered` (events without the `latest_per` path) to
its filtered count.

- `fields` only: each event's data keeps the selected paths; nothing is folded.
- `fields` with `latest_per`: the key's path is kept in the data too.
- `latest_per`: the newest event per key (see `latest.LatestPer`); `max_events` caps the keys.
- `summary`: aggregates over every event fed (see `summary.Summary`), at most `summary_limit`
  events (`full` then turns true); events are the last `max_events` ones, or the latest per key
  when `latest_per` is given too. `fields` limits the aggregated fields.
- `max_bytes` bounds what is returned: the summary's JSON plus each returned event's type, id
  and data (compact JSON, or the text) as UTF-8. The oldest returned events that do not fit are
  left out and counted in `skipped["over_budget"]`.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from ..errors import ArgumentError
from .keyscan import Decode
from .latest import LatestPer, ToItem
from .paths import MISSING, Path, Selection, dotted, project_data, selection
from .summary import Summary, size


@dataclass(frozen=True)
class Shaping:
    """A call's shaping arguments, validated (`calls.arguments.plan_shaping`)."""

    fields: tuple[Path, ...] | None = None
    latest_per: Path | None = None
    summary: bool = False
    format: str = "json"

    @property
    def reduces(self) -> bool:
        """Whether events are folded (so the call collects until a time bound or the end)."""
        return self.latest_per is not None or self.summary

    @property
    def shapes(self) -> bool:
        """Whether the result is not the raw batch (and so carries a note saying what was done)."""
        return self.reduces or self.fields is not None

    def projector(self) -> Selection | None:
        """The `fields` selection; with `latest_per` its path is kept too, so that each event
        still says which key it is the latest of."""
        if self.fields is None:
            return None
        key = () if self.latest_per is None else (self.latest_per,)
        return selection((*self.fields, *key))


@dataclass
class Shaped:
    events: list[dict[str, Any]]
    note: str
    folded: int | None = None
    summary: dict[str, Any] | None = None
    filtered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def event_size(event: dict[str, Any]) -> int:
    data = event["data"]
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    return len(event["event"].encode()) + len(event["id"].encode()) + len(text.encode())


def fit(events: list[dict[str, Any]], budget: int | None) -> tuple[list[dict[str, Any]], int]:
    """The newest events whose sizes fit `budget`, in order, and how many were left out."""
    if budget is None:
        return events, 0
    kept = 0
    for event in reversed(events):
        budget -= event_size(event)
        if budget < 0:
            break
        kept += 1
    return events[len(events) - kept :], len(events) - kept


MAX_NOTE_PATHS_CHARS = 300  # of the paths a `fields` note lists; the rest are counted


def fields_note(fields: tuple[Path, ...]) -> str:
    """The note for `fields`, listing paths up to `MAX_NOTE_PATHS_CHARS` and counting the rest
    (paths are bounded too, so a note stays a line however many and long they are)."""
    shown: list[str] = []
    used = 0
    for path in fields:
        text = dotted(path)
        if shown and used + len(text) > MAX_NOTE_PATHS_CHARS:
            break
        shown.append(
            text if len(text) <= MAX_NOTE_PATHS_CHARS else text[:MAX_NOTE_PATHS_CHARS] + "..."
        )
        used += len(text) + 2
    more = len(fields) - len(shown)
    listed = ", ".join(shown) + (f" and {more} more" if more else "")
    return f"fields {listed}: each event's data keeps only these paths"


class Shaper:
    """Reduces accepted events as `Shaping` says; see the module docstring for the contract."""

    def __init__(
        self,
        shaping: Shaping,
        *,
        max_events: int,
        summary_limit: int,
        decode: Decode | None = None,
    ) -> None:
        self.shaping = shaping
        self._project = shaping.projector()
        self._limit = summary_limit
        self._max_events = max_events
        self._decode = decode
        self._latest = None
        self._summary = Summary(shaping.fields) if shaping.summary else None
        if shaping.latest_per is not None:
            scan = None if self._summary is not None else decode  # a summary decodes them all
            self._latest = LatestPer(shaping.latest_per, max_events, decode=scan)
        # The last `max_events` events fed: in the result shape, or raw (from `feed_texts`).
        self._kept: collections.deque[Any] = collections.deque(maxlen=max_events)
        self._to_item: ToItem | None = None
        self.taken = 0

    @property
    def full(self) -> bool:
        """Whether the summary took `summary_limit` events: feed no more."""
        return self._summary is not None and self.taken >= self._limit

    def feed(self, items: list[dict[str, Any]], at: float) -> int:
        """Take `items` (one chunk's accepted events); returns how many were taken, fewer than
        given only when the summary's limit was reached."""
        if self._summary is not None:
            items = items[: max(0, self._limit - self.taken)]
            self._summary.feed(items, at)
        self.taken += len(items)
        if self._latest is not None:
            self._latest.feed(items)
        else:
            self._kept.extend(items)
        return len(items)

    @property
    def scans(self) -> bool:
        """Whether `feed_texts` pays off: `latest_per` alone decodes only the events it keeps,
        `summary` alone decodes just the data (no event dicts but the samples')."""
        if self._summary is not None:
            return self._latest is None and self._decode is not None
        return self._latest is not None and self._latest.scans

    def feed_texts(
        self,
        events: list[Any],
        texts: list[str],
        to_item: ToItem,
        at: float,
        clean: Callable[[str], str] | None = None,
    ) -> int:
        """`feed` for one chunk given as its accepted raw `events` (none a dict) and their
        (redacted) data `texts`: `to_item` decodes one, `clean` is the redaction it applies to
        decoded strings."""
        if self._summary is not None and self._latest is None and self._decode is not None:
            room = max(0, self._limit - self.taken)
            events, texts = events[:room], texts[:room]
            if events:
                self._summarise(events, texts, to_item, at, clean)
            self._to_item = to_item
            self._kept.extend(events)
            self.taken += len(events)
            return len(events)
        if self._latest is None or self._summary is not None:
            return self.feed(list(map(to_item, events)), at)
        self._latest.feed_texts(events, texts, to_item, clean)
        self.taken += len(events)
        return len(events)

    def _summarise(
        self,
        events: list[Any],
        texts: list[str],
        to_item: ToItem,
        at: float,
        clean: Callable[[str], str] | None,
    ) -> None:
        """Feed the summary one chunk's decoded data, redacted as `to_item` would: the texts
        are redacted already, so only a text with an escape (which may spell a secret) is
        decoded by `to_item` itself, and the types and ids are masked here."""
        assert self._summary is not None and self._decode is not None
        datas = list(map(self._decode, texts))
        if MISSING in datas:  # not JSON: the data is its text, as in the result shape
            datas = [t if d is MISSING else d for d, t in zip(datas, texts, strict=True)]
        kinds = [event.event for event in events]
        first, last = events[0].id, events[-1].id
        if clean is not None:
            if any(map(str.__contains__, texts, repeat("\\"))):
                escaped = (i for i, text in enumerate(texts) if "\\" in text)
                for i in escaped:
                    datas[i] = to_item(events[i])["data"]
            kinds, first, last = list(map(clean, kinds)), clean(first), clean(last)
        self._summary.feed_data(datas, kinds, first, last, at)

    @property
    def filtered(self) -> int:
        return 0 if self._latest is None else self._latest.missing

    def result(self, max_bytes: int | None) -> Shaped:
        """The shaped events and what was done; `ArgumentError` for `latest_per` over a stream
        whose data was all text."""
        latest, summary = self._latest, self._summary
        all_text = latest is not None and 0 < latest.text == latest.missing  # every event
        if latest is not None and all_text and not latest.folded and summary is None:
            raise ArgumentError(
                f"latest_per={dotted(latest.path)!r} needs JSON data, but all {latest.text} "
                "event(s) had text data (no paths to read).",
                argument="latest_per",
                hint="Leave latest_per out for this tool, or use summary=true to count them.",
            )
        to_item = self._to_item
        if latest is not None:
            events = latest.events()
        elif to_item is not None:
            events = [e if type(e) is dict else to_item(e) for e in self._kept]
        else:
            events = list(self._kept)
        if self._project is not None:
            tree = self._project
            events = [{**e, "data": project_data(e["data"], tree)} for e in events]
        shaped = Shaped(events=events, note="", filtered=self.filtered)
        budget = max_bytes
        if summary is not None:
            shaped.summary = summary.to_dict(limit_reached=self.full, max_bytes=max_bytes)
            budget = None if budget is None else max(0, budget - size(shaped.summary))
        shaped.events, over = fit(events, budget)
        if latest is not None:
            shaped.folded = latest.folded
            shaped.skipped["keys"] = latest.skipped
        if over:
            shaped.skipped["over_budget"] = over
        dropped = 0 if shaped.summary is None else shaped.summary.get("fields_over_budget", 0)
        shaped.note = self._note(len(shaped.events), over, dropped)
        return shaped

    def _note(self, returned: int, over: int, fields_over: int = 0) -> str:
        parts = []
        latest, summary, fields = self._latest, self._summary, self.shaping.fields
        if summary is not None:
            limit = f" (stopped at the limit of {self._limit:,})" if self.full else ""
            parts.append(f"summary of {summary.count:,} events{limit}")
        if latest is not None:
            text = f"latest per {dotted(latest.path)}: {returned} of {latest.folded:,} events"
            if latest.skipped:
                text += f" ({latest.skipped:,} events of keys beyond max_events skipped)"
            if latest.missing:
                text += f" ({latest.missing:,} event(s) without the path, counted as filtered)"
            parts.append(text)
        elif summary is not None:
            parts.append(f"events holds the last {returned}")
        if fields is not None:
            parts.append(fields_note(fields))
        if over:
            parts.append(f"{over} older event(s) left out to fit max_bytes")
        if fields_over:
            parts.append(f"{fields_over} summary field(s) left out to fit max_bytes")
        return "; ".join(parts)


def shape(
    shaping: Shaping,
    items: list[dict[str, Any]],
    *,
    max_events: int,
    summary_limit: int,
    max_bytes: int | None = None,
    at: float = 0.0,
) -> Shaped:
    """Shape one list of accepted events (e.g. buffered ones), all arrived at `at`.

    Events past the summary limit are ignored; for arrival times per event, feed a `Shaper`
    one event at a time instead.
    """
    shaper = Shaper(shaping, max_events=max_events, summary_limit=summary_limit)
    shaper.feed(items, at)
    return shaper.result(max_bytes)
