"""One upstream event in the result shape: `{"event", "id", "data"}`, data decoded when JSON.

Decoding is strict and refuses what would make a result unsendable (see `decode`). It runs on
every accepted event, so it is the cost of shaping calls that accept every event of a stream:
pydantic-core's JSON parser (already a dependency, through pydantic) takes a third of the time
of the standard library's per event, and agrees with it on every value it accepts (checked on
integers, floats, escapes and surrogate pairs); what it accepts beyond the rules here (numbers
that overflow to infinity, nesting deeper than `MAX_DEPTH`) is refused after cheap text checks
say it may be there (an `e` followed by three digits; more brackets than `MAX_DEPTH`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pydantic_core

from ..upstream.sse import ServerSentEvent

Redact = Callable[[str], str]

NOT_JSON: Any = object()
MAX_DEPTH = 64
"""Data nested deeper than this stays text: the MCP SDK cannot serialise ~250 levels, and no
real event needs 64."""

_from_json = pydantic_core.from_json
_INFINITIES = (math.inf, -math.inf)
# An overflowing float has an exponent of 3 digits or more (or a mantissa of 309 digits).
_EXPONENT = re.compile(r"e\+?[0-9]{3}")  # a literal first: `re` jumps from one `e` to the next
_EXPONENT_UPPER = re.compile(r"E\+?[0-9]{3}")


def decode(text: str) -> Any:
    """The strict JSON value of `text`, or `NOT_JSON`.

    Refused, so that the event keeps its text: NaN and Infinity (not JSON), numbers beyond the
    float range (they would become Infinity), nesting deeper than `MAX_DEPTH`, and escaped lone
    surrogates (`"\\ud800"`, not encodable as UTF-8). Each of them would make the result
    unsendable as JSON, losing the whole batch for one event.
    """
    try:
        value = _from_json(text, allow_inf_nan=False)
    except ValueError:  # lone surrogates, NaN, bad syntax, integers over 4300 digits
        return NOT_JSON
    # Nesting deeper than MAX_DEPTH takes more than 2 * MAX_DEPTH brackets.
    if len(text) > 2 * MAX_DEPTH and _too_deep_text(text) and _too_deep(value):
        return NOT_JSON
    if (
        len(text) > 308
        or ("e" in text and _EXPONENT.search(text))
        or ("E" in text and _EXPONENT_UPPER.search(text))
    ) and _has_infinity(value):
        return NOT_JSON
    return value


def _too_deep_text(text: str) -> bool:
    return text.count("[") + text.count("{") > MAX_DEPTH


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return value in _INFINITIES
    stack = [value] if isinstance(value, dict | list) else []
    while stack:
        item = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if math.inf in children or -math.inf in children:
            return True
        stack.extend(child for child in children if isinstance(child, dict | list))
    return False


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
    text itself (e.g. OpenAI's "[DONE]", or JSON that `decode` refuses).
    """
    value = decode(event.data)
    return {
        "event": event.event,
        "id": event.id,
        "data": event.data if value is NOT_JSON else value,
    }


def redacted_dict(event: ServerSentEvent, redact: Redact) -> dict[str, Any]:
    """`event_to_dict` with every secret masked.

    The data text is redacted before it is decoded, so that a secret the upstream echoes as a
    JSON number (`{"pin": 90817263}`) is caught too; such data is then no longer JSON and stays
    text. The decoded strings are redacted again, for a secret written with JSON escapes.
    """
    text = redact(event.data)
    value = decode(text)
    return {
        "event": redact(event.event),
        "id": redact(event.id),
        "data": text if value is NOT_JSON else _scrub(value, redact),
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
