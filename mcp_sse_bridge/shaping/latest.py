"""`latest_per`: the newest event per distinct value at a path, i.e. the feed's current state."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

from .keyscan import Decode, KeyScan, key_of
from .paths import MISSING, Path, lookup

ToItem = Callable[[Any], dict[str, Any]]
"""A raw event (never a dict) in the result shape: decoded and redacted."""

__all__ = ["LatestPer", "ToItem", "key_of"]


class LatestPer:
    """Folds events into the newest one per key, in order of each key's latest arrival.

    At most `max_keys` keys are kept: an event with a key first seen after that is counted in
    `skipped` and dropped, so the keys kept are the first ones seen and each is current. An event
    without the path (text data included) is counted in `missing` (the caller counts it as
    filtered); `text` counts those whose data is not JSON at all.

    `feed` takes decoded events. `feed_texts` takes a chunk's raw events with their data texts:
    when a `KeyScan` (given `decode`, the bridge's strict decoder) reads every key from the texts,
    it keeps the newest raw event per key and decodes only those, when `events()` is asked for;
    else it decodes the chunk and feeds it. For streams of JSON objects both fold the same events
    the same way; a text that is not valid JSON but reads as holding the key once is folded under
    that key (and returned as its text if it stays the newest).
    """

    def __init__(self, path: Path, max_keys: int, *, decode: Decode | None = None) -> None:
        self.path = path
        self._max_keys = max_keys
        self._kept: dict[Any, Any] = {}  # key -> its newest event, decoded (a dict) or raw
        self._arrival: dict[Any, int] = {}  # key -> the arrival number of that event
        self._arrivals = 0
        self._to_item: ToItem | None = None
        self._scan = None if decode is None else KeyScan(path, decode)
        self.folded = 0
        self.skipped = 0
        self.missing = 0
        self.text = 0

    @property
    def scans(self) -> bool:
        """Whether `feed_texts` can read keys from texts (else it decodes every event)."""
        return self._scan is not None and self._scan.usable

    def feed(self, items: list[dict[str, Any]]) -> None:
        kept, arrival, path, single = self._kept, self._arrival, self.path, len(self.path) == 1
        for number, item in enumerate(items, self._arrivals):
            data = item["data"]
            if single and type(data) is dict:
                value = data.get(path[0], MISSING)
            else:
                value = lookup(data, path)
            if value is MISSING:
                self.missing += 1
                self.text += isinstance(data, str)
                continue
            key = value if type(value) is str else key_of(value)  # no tuple is a str
            if key not in kept and len(kept) >= self._max_keys:
                self.skipped += 1
                continue
            kept[key] = item
            arrival[key] = number
            self.folded += 1
        self._arrivals += len(items)

    def feed_texts(
        self,
        events: list[Any],
        texts: list[str],
        to_item: ToItem,
        clean: Callable[[str], str] | None = None,
    ) -> None:
        """Fold one chunk: raw `events` (none a dict) with their (redacted) data `texts`;
        `to_item` decodes one, `clean` is the redaction it applies to decoded strings."""
        self._to_item = to_item
        keys = self._scan.keys(texts) if self._scan is not None and self._scan.usable else None
        if clean is not None and keys and any(clean(k) != k for k in set(keys) if type(k) is str):
            keys = None  # the decoded key would be masked: let decoding say which
        if keys is None:
            self.feed([to_item(event) for event in events])
            return
        kept, arrival, base = self._kept, self._arrival, self._arrivals
        last = {key: at for at, key in enumerate(keys)}  # each key's last event of the chunk
        for key, at in last.items():  # a step per distinct key, not per event
            kept[key] = events[at]
            arrival[key] = base + at
        self._arrivals += len(keys)
        folded = len(keys)
        if len(kept) > self._max_keys:  # keys first seen past the limit: not kept
            extra = set(islice(kept, self._max_keys, None))
            for key in extra:
                del kept[key], arrival[key]
            folded -= sum(map(extra.__contains__, keys))
        self.folded += folded
        self.skipped += len(keys) - folded

    def events(self) -> list[dict[str, Any]]:
        """The newest event per key, decoded, in order of arrival."""
        kept, to_item = self._kept, self._to_item
        for key, event in kept.items():
            if type(event) is not dict and to_item is not None:
                kept[key] = to_item(event)
        return [kept[key] for key in sorted(kept, key=self._arrival.__getitem__)]
