"""`latest_per`: the newest event per distinct value at a path, i.e. the feed's current state."""

from __future__ import annotations

import json
from typing import Any

from .paths import MISSING, Path, lookup


def key_of(value: Any) -> tuple[type, Any]:
    """A dict key for a JSON value: 1, 1.0, true and "1" stay distinct keys; objects and lists
    (unhashable) are keyed by their canonical JSON text."""
    if isinstance(value, dict | list):
        return type(value), json.dumps(value, sort_keys=True, separators=(",", ":"))
    return type(value), value


class LatestPer:
    """Folds events into the newest one per key, in order of each key's latest arrival.

    At most `max_keys` keys are kept: an event with a key first seen after that is counted in
    `skipped` and dropped, so the keys kept are the first ones seen and each is current. An event
    without the path (text data included) is counted in `missing` (the caller counts it as
    filtered); `text` counts those whose data is not JSON at all.
    """

    def __init__(self, path: Path, max_keys: int) -> None:
        self.path = path
        self._max_keys = max_keys
        self._latest: dict[Any, dict[str, Any]] = {}
        self.folded = 0
        self.skipped = 0
        self.missing = 0
        self.text = 0

    def feed(self, items: list[dict[str, Any]]) -> None:
        latest, path, single = self._latest, self.path, len(self.path) == 1
        for item in items:
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
            if key in latest:
                del latest[key]  # re-inserted below: dicts keep insertion order
            elif len(latest) >= self._max_keys:
                self.skipped += 1
                continue
            latest[key] = item
            self.folded += 1

    def events(self) -> list[dict[str, Any]]:
        return list(self._latest.values())
