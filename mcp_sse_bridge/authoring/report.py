"""What a probe found, as data (`ProbeReport`, `--json`) and as text a person reads in seconds.

Every string in a report that came from the upstream or the command line has been redacted
before it got here; the text is made terminal-safe by the command line that prints it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import ids


@dataclass
class EventTypeReport:
    name: str
    count: int
    rate_per_s: float
    sample: str  # the first event's data, cut to `SAMPLE_CHARS`
    schema: dict[str, Any]  # inferred from every sampled event of this type
    fields: str  # the data's top-level keys and types, for people


@dataclass
class KeepAlives:
    comments: int = 0
    comment_interval_s: float | None = None
    dataless: dict[str, int] = field(default_factory=dict)  # `event: ping` with no data: count
    dataless_interval_s: float | None = None


@dataclass
class ProbeReport:
    where: str  # method and URL, without query or user info
    status: int | None = None
    content_type: str = ""
    encoding: str = ""  # Content-Encoding, "" for none
    http_version: str = ""
    first_byte_s: float | None = None  # until the response headers
    first_event_s: float | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    error: str | None = None  # the upstream failed after some events
    count: int = 0
    event_types: list[EventTypeReport] = field(default_factory=list)
    other_types: int = 0  # events of types beyond the tracked ones
    oversized: int = 0
    id_style: str = ids.NONE
    first_id: str = ""
    last_id: str = ""
    retry_ms: list[int] = field(default_factory=list)
    keep_alives: KeepAlives = field(default_factory=KeepAlives)
    resume: str = ids.NO_IDS
    resume_cursor: str = ""
    resume_detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render(report: ProbeReport) -> list[str]:
    """The report as lines of text, most important first."""
    if report.status == 204:
        return [f"{report.where}: HTTP 204: no content, the server has no events for this URL"]
    head = f"{report.where}: HTTP {report.status}, {report.content_type or 'no content type'}"
    lines = [head + (f", {report.encoding}" if report.encoding else ", no compression")]
    timing = [f"first byte after {_ms(report.first_byte_s)}"]
    if report.first_event_s is not None:
        timing.append(f"first event after {_ms(report.first_event_s)}")
    timing.append(f"{report.count} event(s) in {report.elapsed_s:.1f} s ({_stopped(report)})")
    lines.append("  " + ", ".join(timing))
    if report.error:
        lines.append(f"  then: {report.error}")
    lines.append("event types:" if report.event_types else "event types: none seen")
    for item in report.event_types:
        lines.append(f"  {item.name}: {item.count} ({item.rate_per_s:.3g}/s), e.g. {item.sample}")
        if item.fields:
            lines.append(f"    fields: {item.fields}")
        lines.append(f"    schema: {json.dumps(item.schema, separators=(',', ':'))}")
    if report.other_types:
        lines.append(f"  ... and {report.other_types} event(s) of further types")
    if report.oversized:
        lines.append(f"  {report.oversized} event(s) over the 1 MiB cap were skipped")
    lines.append(f"ids: {_ids(report)}")
    retry = ", ".join(f"{value} ms" for value in report.retry_ms) or "none sent"
    lines.append(f"retry: {retry}")
    lines.append(f"keep-alives: {_keep_alives(report.keep_alives)}")
    cursor = f" (reconnected with id {report.resume_cursor})" if report.resume_cursor else ""
    lines.append(f"Last-Event-ID{cursor}: {report.resume}: {ids.ADVICE[report.resume]}")
    if report.resume_detail:
        lines.append(f"  {report.resume_detail}")
    return lines


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"


def _stopped(report: ProbeReport) -> str:
    return {
        "max_events": "the --events limit",
        "max_seconds": "the --seconds limit",
        "closed": "the server ended the stream",
        "max_bytes": "the byte budget",
        "error": "the upstream failed",
    }.get(report.stop_reason, report.stop_reason)


def _ids(report: ProbeReport) -> str:
    if report.id_style == ids.NONE:
        return "none"
    return f"{report.id_style} (first {report.first_id!r}, last {report.last_id!r})"


def _keep_alives(keep: KeepAlives) -> str:
    parts = []
    if keep.comments:
        parts.append(f"{keep.comments} comment line(s){_every(keep.comment_interval_s)}")
    if keep.dataless:
        names = ", ".join(f"{name} x{count}" for name, count in keep.dataless.items())
        parts.append(f"data-less events ({names}){_every(keep.dataless_interval_s)}")
    return "; ".join(parts) or "none seen"


def _every(interval: float | None) -> str:
    return "" if interval is None else f", every {interval:.3g} s"
