"""`format: "lines"`: a batch as text a model reads at a glance, one line per event.

    count=2 stop_reason=max_events last_event_id="42"
    latest per symbol: 2 of 40 events                       (shaped results only)
    summary {"count":40,...}                                (with summary: true)
    price_update 41 {"symbol":"AAPL","price":187.3}
    price_update 42 {"symbol":"MSFT","price":402.1}

Each event line is `<event> <id> <data>`: data as compact JSON, or its text when that holds no
control characters (else as a JSON string, so one event stays one line); an empty id is `-`,
and an id or type with spaces or control characters is quoted as a JSON string.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"[^\x00-\x20\x7f-\x9f\u2028\u2029]+")
_TEXT = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _word(text: str) -> str:
    if not text:
        return "-"
    return text if _PLAIN.fullmatch(text) else _compact(text)


def event_line(event: dict[str, Any]) -> str:
    data = event["data"]
    shown = data if isinstance(data, str) and _TEXT.fullmatch(data) else _compact(data)
    return f"{_word(event['event'])} {_word(event['id'])} {shown}"


def render_lines(batch: dict[str, Any], note: str | None = None) -> str:
    """The header line, the note and summary if any, then one line per event."""
    head = (
        f"count={batch['count']} stop_reason={batch['stop_reason']} "
        f"last_event_id={_compact(batch['last_event_id'])}"
    )
    if "folded" in batch:
        head += f" folded={batch['folded']}"
    for key in ("cursor", "has_more", "dropped", "state"):  # a subscription read's place
        if key in batch:
            head += f" {key}={_compact(batch[key])}"
    lines = [head]
    if "error" in batch:
        lines.append(f"error: {' '.join(batch['error'].split())}")
    if note:
        lines.append(note)
    if "summary" in batch:
        lines.append(f"summary {_compact(batch['summary'])}")
    lines += [event_line(event) for event in batch["events"]]
    return "\n".join(lines)
