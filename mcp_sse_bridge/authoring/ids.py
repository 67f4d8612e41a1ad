"""What a stream's event ids say: their style, and whether the server honours `Last-Event-ID`.

The resume check reconnects once with an id the probe saw and looks at the first event that
comes back. To make a resume recognisable it sends the id of the event *before* the last one
seen (precisely: the last id that differs from the final one), so a server that resumes must
send an event the probe already knows; a server that starts over sends the first one again;
anything else means the id was ignored (a live feed without history). With a single id seen,
only numeric ids can tell a resume (the next id is larger) from an ignored header.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NONE = "none"
NUMERIC = "numeric, increasing"
NUMERIC_UNORDERED = "numeric, not increasing"
UUID = "uuid"
OPAQUE = "opaque"

RESUMED = "resumed"
REPLAYED = "replayed"
IGNORED = "ignored"
NO_IDS = "no ids"
INCONCLUSIVE = "inconclusive"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Seen:
    """One sampled event, as the resume check compares it."""

    event: str
    id: str
    data: Any


def id_changes(ids: Sequence[str]) -> list[str]:
    """The ids as they changed: an event without an `id:` line repeats the previous one."""
    changes: list[str] = []
    for value in ids:
        if value and (not changes or changes[-1] != value):
            changes.append(value)
    return changes


def id_style(ids: Sequence[str]) -> str:
    """none, numeric (increasing or not), uuid or opaque."""
    changes = id_changes(ids)
    if not changes:
        return NONE
    if all(value.isascii() and value.isdigit() for value in changes):
        numbers = [int(value) for value in changes]
        increasing = all(a < b for a, b in itertools.pairwise(numbers))
        return NUMERIC if increasing else NUMERIC_UNORDERED
    if all(_UUID.fullmatch(value) for value in changes):
        return UUID
    return OPAQUE


class ResumeTracker:
    """Keeps, while events pass, only what the resume check needs (not the whole sample)."""

    def __init__(self) -> None:
        self.first: Seen | None = None
        self.last: Seen | None = None
        self._candidate: tuple[str, Seen] | None = None  # (an earlier id, the event after it)

    def add(self, seen: Seen) -> None:
        if self.first is None:
            self.first = seen
        if self.last is not None and self.last.id and seen.id != self.last.id:
            self._candidate = (self.last.id, seen)
        self.last = seen

    def plan(self) -> tuple[str, Seen | None] | None:
        """The id to reconnect with, and the event a resume must send first (None: unknown).

        None when the last event had no id: there is nothing to resume from.
        """
        if self.last is None or not self.last.id:
            return None
        if self._candidate is not None:
            return self._candidate
        return self.last.id, None


def classify_resume(start: Seen, cursor: str, expected: Seen | None, first: Seen | None) -> str:
    """RESUMED, REPLAYED, IGNORED or INCONCLUSIVE, from the first event after the reconnect.

    `start` is the first event sampled, `cursor` the id sent, `expected` what a resume sends.
    """
    if first is None:
        return INCONCLUSIVE
    if expected is not None and first.id == expected.id:  # its data may differ (a timestamp)
        return RESUMED
    if first.id == start.id or (first.event, first.data) == (start.event, start.data):
        return REPLAYED
    if cursor.isascii() and cursor.isdigit() and first.id.isascii() and first.id.isdigit():
        if int(first.id) <= int(cursor):
            return REPLAYED
        if expected is None:
            return RESUMED if int(first.id) == int(cursor) + 1 else IGNORED
    if expected is None:
        return INCONCLUSIVE
    return IGNORED


ADVICE = {
    RESUMED: "the server resumed after it: calls can continue where a batch ended "
    "(pass last_event_id), and a dropped stream reconnects without losing or repeating events",
    REPLAYED: "the server replayed from the start: a reconnect would repeat events, so the "
    "manual sets reconnect: false; to follow the stream across calls, a subscription is needed",
    IGNORED: "the server ignored it and sent new events: calls cannot resume (events between "
    "two calls are lost); to follow the stream without gaps, a subscription is needed",
    NO_IDS: "the stream sends no ids, so calls cannot resume; to follow it without gaps, a "
    "subscription is needed",
    INCONCLUSIVE: "no conclusion (no event arrived after the reconnect in time, or too few ids "
    "were seen)",
}
