"""Sampling a live event stream: `mcp-sse-bridge probe`.

The probe is a real call: it loads the tool `suggest.plan_tool` made of the command line into a
`calls.Bridge` and calls it, so the request, auth, variables, secret masking, https rule and
handshake checks are exactly a call's. A `StreamObserver` sees what a call throws away (the
response headers, comment lines, data-less events, `retry:`). Sampling runs without reconnects,
so that a stream the server ends is seen as such. Then it calls once more with `last_event_id`
to learn whether the server honours it (`ids.py` says how that is judged).

Bounded: at most `--events` events (up to `MAX_EVENTS`), `--seconds` (up to `MAX_SECONDS`), a
byte budget, `MAX_TYPES` event types tracked (more are counted), `MAX_INTERVALS` keep-alive
intervals kept. Everything kept from the stream is redacted with the bridge's secrets.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from ..calls.bridge import Bridge, Limits
from ..errors import BridgeError
from ..manual import parse_manual
from ..manual.variables import SecretRegistry, Variables
from ..urls import display_url
from . import ids
from .inference import Sketch
from .report import EventTypeReport, KeepAlives, ProbeReport
from .suggest import ToolPlan

MAX_EVENTS = 10_000
MAX_SECONDS = 300.0
MAX_TYPES = 50
MAX_DATALESS_TYPES = 20
MAX_INTERVALS = 1000
MAX_RETRY_VALUES = 10
MAX_BYTES = 4 * 1024 * 1024
SAMPLE_CHARS = 160


@dataclass(frozen=True)
class ProbeSettings:
    seconds: float = 10.0
    events: int = 200
    resume_seconds: float = 5.0  # how long the resume check waits for its first event


class _Intervals:
    """Times between occurrences; the median is the keep-alive interval."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.gaps: list[float] = []

    def tick(self, now: float) -> None:
        if self.last is not None and len(self.gaps) < MAX_INTERVALS:
            self.gaps.append(now - self.last)
        self.last = now

    def median(self) -> float | None:
        return round(statistics.median(self.gaps), 3) if self.gaps else None


class _Tap:
    """The `StreamObserver` of the sampling call: headers, comments, pings and `retry:`."""

    def __init__(self, clock: Callable[[], float], redact: Callable[[str], str]) -> None:
        self.clock = clock
        self.redact = redact
        self.started = clock()
        self.response_at: float | None = None
        self.headers: httpx2.Headers | None = None
        self.status: int | None = None
        self.http_version = ""
        self.comments = 0
        self.comment_times, self.pings = _Intervals(), _Intervals()
        self.dataless: dict[str, int] = {}
        self.retry: list[int] = []
        self._event = ""  # the block under way: its event type, and whether it has data
        self._data = False

    def response(self, response: httpx2.Response) -> None:
        if self.status is None:
            self.response_at = self.clock() - self.started
            self.status, self.headers = response.status_code, response.headers
            self.http_version = response.http_version

    def lines(self, lines: list[str]) -> None:
        now = self.clock()
        for line in lines:
            if not line:
                if self._event and not self._data:
                    self._ping(self._event, now)
                self._event, self._data = "", False
            elif line[0] == ":":
                self.comments += 1
                self.comment_times.tick(now)
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    self._data = True
                elif name == "event":
                    self._event = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    self._retry(int(value))

    def _retry(self, value: int) -> None:
        if value not in self.retry and len(self.retry) < MAX_RETRY_VALUES:
            self.retry.append(value)

    def _ping(self, event: str, now: float) -> None:
        name = self.redact(event)[:SAMPLE_CHARS]
        if name in self.dataless or len(self.dataless) < MAX_DATALESS_TYPES:
            self.dataless[name] = self.dataless.get(name, 0) + 1
        self.pings.tick(now)


@dataclass
class _Sample:
    """What the sampled events add up to, kept per event type and bounded."""

    clock: Callable[[], float]
    started: float
    first_event_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    sketches: dict[str, Sketch] = field(default_factory=dict)
    other: int = 0
    seen_ids: list[str] = field(default_factory=list)
    tracker: ids.ResumeTracker = field(default_factory=ids.ResumeTracker)

    async def add(self, event: dict[str, Any], count: int) -> None:
        if self.first_event_s is None:
            self.first_event_s = self.clock() - self.started
        kind, data = event["event"], event["data"]
        self.seen_ids.append(event["id"])
        self.tracker.add(ids.Seen(kind, event["id"], data))
        if kind not in self.counts and len(self.counts) >= MAX_TYPES:
            self.other += 1
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind not in self.samples:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            self.samples[kind] = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "..."
            self.sketches[kind] = Sketch()
        self.sketches[kind].add(data)


async def probe(
    plan: ToolPlan,
    settings: ProbeSettings,
    *,
    variables: Variables,
    manual_name: str = "probe",
    allow_insecure_http: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[ProbeReport, SecretRegistry]:
    """Sample the stream the plan's tool reads, then check `Last-Event-ID`; raises BridgeError.

    Also returns every secret the run knew, for checking what is written afterwards.
    """
    sampling = json.loads(json.dumps(plan.tool))
    sampling["tool_call_template"]["reconnect"] = False
    manual = parse_manual(
        json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [sampling]}),
        name=manual_name,
        source="probe",
        trusted=True,
    )
    explicit = {**variables.explicit, **plan.values}
    runner = Variables(explicit, environ=variables.environ, allow=variables.allow)
    limits = Limits(
        default_max_events=settings.events,
        max_max_events=settings.events,
        default_max_seconds=settings.seconds,
        max_max_seconds=max(settings.seconds, settings.resume_seconds),
        max_bytes=MAX_BYTES,
    )
    bridge = Bridge(
        [manual], variables=runner, limits=limits, allow_insecure_http=allow_insecure_http
    )
    (name,) = bridge.tools
    async with bridge:
        tap = _Tap(clock, bridge.secrets.redact)
        sample = _Sample(clock, tap.started)
        batch = await bridge.call(name, plan.arguments, on_event=sample.add, observer=tap)
        report = _report(tap, sample, bridge.tools[name].spec.template.url)
        report.elapsed_s, report.stop_reason = batch.elapsed_s, batch.stop_reason
        if tap.status is None and batch.stop_reason == "closed":
            report.status = 204  # the stream ends without a response only after a 204
        report.error = batch.error
        report.count, report.oversized = batch.count, batch.skipped.get("oversized", 0)
        report.event_types = _event_types(sample, batch.elapsed_s)
        await _check_resume(bridge, name, plan.arguments, sample.tracker, settings, report)
    return report, bridge.secrets


def _report(tap: _Tap, sample: _Sample, url: str) -> ProbeReport:
    headers = tap.headers or httpx2.Headers()
    changes = ids.id_changes(sample.seen_ids)
    return ProbeReport(
        where=f"GET {display_url(url)}",
        status=tap.status,
        content_type=headers.get("content-type", ""),
        encoding=headers.get("content-encoding", ""),
        http_version=tap.http_version,
        first_byte_s=_round(tap.response_at),
        first_event_s=_round(sample.first_event_s),
        other_types=sample.other,
        id_style=ids.id_style(sample.seen_ids),
        first_id=changes[0] if changes else "",
        last_id=changes[-1] if changes else "",
        retry_ms=tap.retry,
        keep_alives=KeepAlives(
            comments=tap.comments,
            comment_interval_s=tap.comment_times.median(),
            dataless=tap.dataless,
            dataless_interval_s=tap.pings.median(),
        ),
    )


def _event_types(sample: _Sample, elapsed: float) -> list[EventTypeReport]:
    return [
        EventTypeReport(
            name=kind,
            count=count,
            rate_per_s=round(count / elapsed, 3) if elapsed > 0 else 0.0,
            sample=sample.samples[kind],
            schema=sample.sketches[kind].schema(),
            fields=sample.sketches[kind].fields(),
        )
        for kind, count in sample.counts.items()
    ]


async def _check_resume(
    bridge: Bridge,
    name: str,
    arguments: dict[str, Any],
    tracker: ids.ResumeTracker,
    settings: ProbeSettings,
    report: ProbeReport,
) -> None:
    """Reconnect once with an id seen, and judge the first event that comes back."""
    planned = tracker.plan()
    if planned is None or tracker.first is None:
        report.resume = ids.NO_IDS if report.count else ids.INCONCLUSIVE
        return
    cursor, expected = planned
    report.resume_cursor = cursor
    again = {**arguments, "last_event_id": cursor, "max_events": 1}
    again["max_seconds"] = settings.resume_seconds
    try:
        batch = await bridge.call(name, again)
    except BridgeError as err:
        report.resume, report.resume_detail = ids.INCONCLUSIVE, f"the reconnect failed: {err}"
        return
    first = None
    if batch.events:
        event = batch.events[0]
        first = ids.Seen(event["event"], event["id"], event["data"])
        report.resume_detail = f"first event after the reconnect: id {event['id']!r}"
    report.resume = ids.classify_resume(tracker.first, cursor, expected, first)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
