"""`summary`: aggregates over every accepted event, computed a chunk at a time.

Per event type a count; first and last id and arrival time; and per data field (a dotted
path): numbers -> count, min, max, mean, last; strings -> distinct values and the top 5;
booleans -> counts of true and false; plus nulls and other values (objects, lists). Fields are
the caller's `fields`, else discovered from each new top-level shape of the JSON objects, up to
`MAX_FIELDS`. Work is done per chunk with list comprehensions and C builtins (`min`, `max`,
`sum`, `Counter.update`), not per event and field in Python, so a summary costs about what
decoding the events costs. Memory is bounded: `MAX_DISTINCT` strings per field, each cut to
`MAX_TEXT` characters.
"""

from __future__ import annotations

import datetime
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from .paths import MISSING, Path, dotted, lookup

MAX_FIELDS = 20
MAX_DEPTH = 4  # discovered paths go at most this deep into nested objects
MAX_DISTINCT = 1000
MAX_TEXT = 100
MAX_TYPES = 20  # event types listed; the rest are summed under "(other)"
TOP = 5
_NUMBERS = {int, float}
_EVENT = itemgetter("event")
_MISSING = type(MISSING)
_EMPTY: dict[str, Any] = {}


def arrival(at: float) -> str:
    """An arrival time as ISO 8601 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FieldStats:
    """The aggregates of one field, updated a column (one chunk's values) at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.numbers = 0
        self.low: float = math.inf
        self.high: float = -math.inf
        self.total: float = 0
        self.last: Any = None
        self.strings: Counter[str] = Counter()
        self.untracked = 0  # strings not counted because MAX_DISTINCT values were tracked
        self.true = self.false = self.null = self.other = 0

    def update(self, column: Sequence[Any]) -> None:
        kinds = set(map(type, column))
        if _MISSING in kinds:
            kinds.discard(_MISSING)
            column = [v for v in column if v is not MISSING]
        if not column:
            return
        present = column
        self.count += len(present)
        if kinds <= _NUMBERS:
            self._numbers(present)
            return
        if kinds & _NUMBERS:
            self._numbers([v for v in present if type(v) in _NUMBERS])
        if str in kinds:
            strings = present if kinds == {str} else [v for v in present if type(v) is str]
            if max(map(len, strings)) > MAX_TEXT:
                strings = list(map(cut, strings))
            self._strings(strings)
        if bool in kinds:
            flags = [v for v in present if type(v) is bool]
            trues = sum(flags)
            self.true += trues
            self.false += len(flags) - trues
        self.null += present.count(None) if type(None) in kinds else 0
        if dict in kinds or list in kinds:
            self.other += sum(1 for v in present if type(v) in (dict, list))

    def _numbers(self, values: list[float]) -> None:
        self.numbers += len(values)
        self.low = min(self.low, min(values))
        self.high = max(self.high, max(values))
        self.total += sum(values)
        self.last = values[-1]

    def _strings(self, values: Sequence[str]) -> None:
        """Count `values`; once `MAX_DISTINCT` values are tracked, new ones are only counted in
        `untracked` (the first new ones in order of appearance take the room left). Set
        operations on the chunk's own counts, so a column of distinct values (timestamps)
        costs no Python step per value."""
        counts = self.strings
        if len(counts) + len(values) <= MAX_DISTINCT:
            counts.update(values)
            return
        chunk = Counter(values)
        new = chunk.keys() - counts.keys()
        room = MAX_DISTINCT - len(counts)
        tracked = chunk.keys() - new
        tracked |= new if len(new) <= room else set(islice((v for v in chunk if v in new), room))
        taken = {value: chunk[value] for value in tracked}
        counts.update(taken)
        self.untracked += len(values) - sum(taken.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        if self.numbers:
            mean = self.total / self.numbers
            out["number"] = {
                "count": self.numbers,
                "min": self.low,
                "max": self.high,
                "mean": round(mean, 6) if math.isfinite(mean) else None,
                "last": self.last,
            }
        if self.strings:
            top = [{"value": v, "count": n} for v, n in self.strings.most_common(TOP)]
            text: dict[str, Any] = {"count": self.strings.total() + self.untracked}
            text["distinct"] = len(self.strings)
            if self.untracked:
                text["distinct_capped"] = True  # more values than MAX_DISTINCT were seen
            out["string"] = {**text, "top": top}
        if self.true or self.false:
            out["boolean"] = {"true": self.true, "false": self.false}
        if self.null:
            out["null"] = self.null
        if self.other:
            out["other"] = self.other
        return out


class Summary:
    """Aggregates over every event fed to it; `feed` takes one chunk's events at a time."""

    def __init__(self, fields: tuple[Path, ...] | None) -> None:
        self._given = fields
        self._fields = {path: FieldStats() for path in fields or ()}
        self._shapes: set[tuple[str, ...]] = set()
        self._parents: set[str] = set()  # top-level keys of discovered nested paths
        self.fields_capped = False
        self.count = 0
        self.values = FieldStats()  # the data that is not a JSON object, as one field
        self.text = 0  # events whose data is a string (text, or a JSON string)
        self._types: Counter[str] = Counter()
        self._first: dict[str, Any] | None = None
        self._last: dict[str, Any] | None = None

    def feed(self, items: list[dict[str, Any]], at: float) -> None:
        """Take one chunk's events in the result shape (decoded and redacted)."""
        if items:
            data = [item["data"] for item in items]
            self.feed_data(data, list(map(_EVENT, items)), items[0]["id"], items[-1]["id"], at)

    def feed_data(
        self, datas: list[Any], kinds: list[str], first_id: str, last_id: str, at: float
    ) -> None:
        """Take one chunk as its events' decoded (and redacted) data (text that is not JSON
        as its text), their types and the first and last id: no event dicts are built for it."""
        if not datas:
            return
        self.count += len(datas)
        self._types.update(kinds)
        moment = arrival(at)
        if self._first is None:
            self._first = {"id": first_id, "at": moment}
        self._last = {"id": last_id, "at": moment}
        objects = [d for d in datas if type(d) is dict]
        if len(objects) < len(datas):
            others = [d for d in datas if type(d) is not dict]
            self.values.update(others)
            self.text += list(map(type, others)).count(str)
        values = [d for d in datas if type(d) is dict or type(d) is list]
        if self._given is None and not self.fields_capped:
            self._discover(objects)
        for stats, column in self._columns(values, objects):
            stats.update(column)
        if self._parents and self._given is None:
            self._adopt_parents(objects)

    def _adopt_parents(self, objects: list[dict[str, Any]]) -> None:
        """Track a top-level key as a field of its own once it holds something other than an
        object (`{"q": 5}` after `{"q": {"p": 1}}` made `q.p` a field), so that no value goes
        uncounted; from this chunk on, its objects count as `other`."""
        for key in list(self._parents):
            if (key,) in self._fields:
                self._parents.discard(key)
            elif any(type(d.get(key, _EMPTY)) is not dict for d in objects):
                self._parents.discard(key)
                if len(self._fields) >= MAX_FIELDS:
                    self.fields_capped = True
                    return
                stats = self._fields[(key,)] = FieldStats()
                stats.update([d.get(key, MISSING) for d in objects])

    def _columns(
        self, values: list[Any], objects: list[dict[str, Any]]
    ) -> Iterator[tuple[FieldStats, Sequence[Any]]]:
        """Each field's values in the chunk (`MISSING` where absent). The top-level fields are
        read in one `itemgetter` pass and transposed by `zip` when every object has them all."""
        top = [(path[0], stats) for path, stats in self._fields.items() if len(path) == 1]
        if len(top) > 1 and objects:
            try:
                rows = list(map(itemgetter(*(key for key, _ in top)), objects))
            except KeyError:  # some object lacks a field: one pass per field
                pass
            else:
                yield from zip((stats for _, stats in top), zip(*rows, strict=True), strict=True)
                top = []
        for key, stats in top:  # a top-level key: lists have none
            yield stats, [d.get(key, MISSING) for d in objects]
        for path, stats in self._fields.items():
            if len(path) > 1:
                yield stats, [lookup(d, path) for d in values]

    def _discover(self, objects: list[dict[str, Any]]) -> None:
        """Add the leaf paths of each object whose top-level keys are a shape not seen yet."""
        new = set(map(tuple, objects)).difference(self._shapes)
        for value in objects if new else ():
            shape = tuple(value)
            if shape in new:
                new.discard(shape)
                self._shapes.add(shape)
                self._add_leaves(value, ())
                if self.fields_capped or not new:
                    return

    def _add_leaves(self, value: dict[str, Any], prefix: Path) -> None:
        for key, item in value.items():
            path = (*prefix, key)
            if type(item) is dict and item and len(path) < MAX_DEPTH:
                self._parents.add(path[0])
                self._add_leaves(item, path)
            elif path not in self._fields:
                if len(self._fields) >= MAX_FIELDS:
                    self.fields_capped = True
                    return
                self._fields[path] = FieldStats()

    def to_dict(self, *, limit_reached: bool, max_bytes: int | None = None) -> dict[str, Any]:
        """The aggregates; texts from the stream (types, ids, field names) cut to `MAX_TEXT`.
        Over `max_bytes` (UTF-8 of the compact JSON), fields are left out from the last one
        and counted in `fields_over_budget`; the rest is bounded (at most `MAX_TYPES` types)."""
        types: Counter[str] = Counter()
        for kind, count in self._types.most_common(MAX_TYPES):
            types[cut(kind)] += count
        rest = self._types.total() - types.total()
        if rest:
            types["(other)"] += rest
        out: dict[str, Any] = {"count": self.count, "by_event": dict(types)}
        if self._first is not None and self._last is not None:
            out["first"] = {**self._first, "id": cut(self._first["id"])}
            out["last"] = {**self._last, "id": cut(self._last["id"])}
        fields = {cut(dotted(p)): s.to_dict() for p, s in self._fields.items() if s.count}
        out["fields"] = fields
        if self.values.count:
            out["values"] = self.values.to_dict()
        if self.text:
            out["text"] = self.text
        if self.fields_capped:
            out["fields_capped"] = True
        out["limit_reached"] = limit_reached
        if max_bytes is not None and fields and size(out) > max_bytes:
            out["fields_over_budget"] = 0
            while fields and size(out) > max_bytes:
                fields.popitem()
                out["fields_over_budget"] += 1
        return out


def cut(text: str) -> str:
    """`text` cut to `MAX_TEXT` characters, with an ellipsis where it was cut."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8, as `max_bytes` counts them."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
