"""Incremental event-stream parser (WHATWG HTML, "Server-sent events"): bytes in, events out.

Why our own: the usual Python parsers strip no BOM, split lines at U+2028 or never at a lone CR,
accept `retry: -1`, crash on invalid UTF-8 and yield phantom events for id-only or retry-only
blocks. This one follows the spec's algorithm to the letter, keeps memory bounded whatever the
upstream sends, and is fast because it works per chunk (one decode, one split), not per byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

__all__ = ["EventStreamParser", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_MAX_RETRY_DIGITS = 18  # a longer `retry` value saturates: int() on a megabyte of digits is slow


class ServerSentEvent(NamedTuple):
    """One dispatched event; a named tuple because a firehose builds millions of them."""

    event: str = "message"  # "message" when the block had no (or an empty) `event` field
    data: str = ""
    id: str = ""  # the last event ID at dispatch ("" if none)


class EventStreamParser:
    """Feed the raw bytes of a response body chunk by chunk; get back the events each completes.

    `last_event_id` and `retry` (ms, `None` until the server sends a valid one) are what a
    reconnecting client needs. A line longer than `max_line_bytes`, or an event whose data is
    longer than `max_event_bytes` (UTF-8 of the decoded data), is dropped without being
    buffered: its event is skipped and counted in `oversized`.

    `close()` ends the stream, discarding an unfinished line or block; the parser is then ready
    for the next connection's body, keeping `last_event_id` and `retry` as EventSource does.

    `observe`, when given, sees every complete line of each chunk before it is interpreted
    (comments and data-less blocks included, which never become events; an over-cap line shows
    as a bare `:`): `mcp-sse-bridge probe` reports keep-alives with it. One check per chunk.
    """

    def __init__(
        self,
        *,
        max_line_bytes: int = 1 << 20,
        max_event_bytes: int = 1 << 20,
        last_event_id: str = "",
        observe: Callable[[list[str]], None] | None = None,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError(
                f"max_line_bytes and max_event_bytes must be at least 1 "
                f"(got {max_line_bytes} and {max_event_bytes})"
            )
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self.oversized = 0
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._observe = observe
        self._start_stream()

    def _start_stream(self) -> None:
        self._pending = bytearray()  # the unterminated last line (or a BOM prefix at the start)
        self._at_start = True  # no byte seen yet: a BOM may come, possibly split
        self._after_cr = False  # the last chunk ended with CR: a leading LF belongs to it
        self._discarding = False  # the current line is over the cap: drop it up to its end
        self._event = ""
        self._data: str | None = None  # the first data line of the block
        self._more: list[str] | None = None  # all its data lines, from the second one on
        self._size = 0  # characters of the joined `_more`
        self._id = self.last_event_id
        self._skip = False  # the current block went over a cap: do not dispatch it

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse `chunk` (any size, split anywhere) and return the events it completes."""
        if self._at_start:
            chunk = self._pending + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._pending[:] = chunk
                return []
            self._pending.clear()
            self._at_start = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]

        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self._hold(chunk)
            return []
        region = chunk[: end + 1]  # complete lines, with their line ends
        if self._discarding:
            # The over-cap line's bytes are gone; a ":" (a comment) stands in for it so that its
            # line end is handled like any other.
            self._discarding = False
            region = b":" + region[_first_line_end(region) :]
        elif self._pending:
            region = self._pending + region
            self._pending.clear()

        events: list[ServerSentEvent] = []
        if len(region) <= self._max_line:  # no line in it can be over the cap
            self._interpret(_split_lines(region.decode("utf-8", "replace")), events)
        else:
            self._interpret_capped(region, events)
        if end + 1 < len(chunk):
            self._hold(chunk[end + 1 :])
        else:
            self._after_cr = chunk[end] == 0x0D
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: an unterminated line and an unfinished block (its id too) are dropped.

        Per spec nothing can be dispatched at the end, so this returns no events; it exists so
        that the caller says where a stream ends and the next connection starts fresh.
        """
        self._start_stream()
        return []

    def _hold(self, tail: bytes) -> None:
        """Keep the start of an unterminated line, or drop it once it is over the cap."""
        if self._discarding:
            return
        self._pending += tail
        if len(self._pending) > self._max_line:
            self._pending = bytearray()
            self._discarding = True
            self._skip_block()

    def _skip_block(self) -> None:
        """The current block went over a cap: count it once, free its data, never dispatch it."""
        if not self._skip:
            self._skip = True
            self.oversized += 1
        self._data = self._more = None

    def _interpret_capped(self, region: bytes | bytearray, events: list[ServerSentEvent]) -> None:
        """The rare path for a region longer than a line may be: drop over-cap lines in place."""
        lines = region.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        lines.pop()  # the region ends with a line end
        start = 0
        for index, line in enumerate(lines):
            if len(line) > self._max_line:
                self._interpret(
                    [part.decode("utf-8", "replace") for part in lines[start:index]], events
                )
                self._skip_block()
                start = index + 1
        self._interpret([part.decode("utf-8", "replace") for part in lines[start:]], events)

    def _interpret(self, lines: list[str], events: list[ServerSentEvent]) -> None:
        """The spec's field processing and dispatch, over complete lines.

        This is the hot loop, so: state in locals; one `partition(": ")` per line, which also
        drops the optional space; the first data line kept as is and a list only from the
        second one; events built by tuple.__new__, with no Python-level constructor call.
        """
        if self._observe is not None:
            self._observe(lines)
        event, data, more, size = self._event, self._data, self._more, self._size
        id_, last_id, retry, skip = self._id, self.last_event_id, self.retry, self._skip
        max_event = self._max_event
        short = max_event // 4  # data of at most this many characters is surely under the cap
        emit = events.append
        new, cls = tuple.__new__, ServerSentEvent
        for line in lines:
            if line:
                name, _, value = line.partition(": ")
                if ":" in name:  # the first colon has no space after it
                    name, _, value = line.partition(":")
                if name == "data":
                    if data is None:
                        data = value
                    else:
                        if more is None:
                            more = [data]
                            size = len(data)
                        more.append(value)
                        size += 1 + len(value)
                        if size > max_event:  # characters: the UTF-8 is at least as long
                            data = more = None
                            if not skip:
                                skip = True
                                self.oversized += 1
                elif name == "event":
                    event = value
                elif name == "id":
                    if "\0" not in value:
                        id_ = value
                elif name == "retry" and value.isdigit() and value.isascii():
                    retry = _retry_ms(value)
            else:
                last_id = id_
                if data is not None:
                    if more is not None:
                        data = "\n".join(more)
                        more = None
                    if skip:
                        skip = False
                    elif len(data) > short and len(data.encode()) > max_event:
                        self.oversized += 1
                    else:
                        emit(new(cls, (event or "message", data, last_id)))
                    data = None
                else:
                    skip = False
                event = ""
        self._event, self._data, self._more, self._size = event, data, more, size
        self._id, self.last_event_id, self.retry, self._skip = id_, last_id, retry, skip


def _split_lines(text: str) -> list[str]:
    """Split at CRLF, LF or CR only (never `str.splitlines`); `text` ends with a line end."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    lines.pop()
    return lines


def _first_line_end(region: bytes) -> int:
    lf, cr = region.find(b"\n"), region.find(b"\r")
    return cr if lf < 0 or 0 <= cr < lf else lf


def _retry_ms(digits: str) -> int:
    """The value of a string of ASCII digits, saturating beyond 18 significant digits."""
    digits = digits.lstrip("0")
    return int(digits or "0") if len(digits) <= _MAX_RETRY_DIGITS else 10**_MAX_RETRY_DIGITS
