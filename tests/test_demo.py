"""The bundled demo feed on the wire, and `mcp-sse-bridge demo` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2
import pytest

from mcp_sse_bridge.demo.feed import price, run_feed
from mcp_sse_bridge.upstream.sse import EventStreamParser, ServerSentEvent

KEY = "demo-key-0123"


@pytest.fixture(scope="module")
def feed() -> Iterator[str]:
    with run_feed(interval=0.01, api_key=KEY) as url:
        yield url


def read_events(
    url: str, count: int, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """The first `count` events of a stream (fewer if it ends first)."""
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    with httpx2.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            events += parser.feed(chunk)
            if len(events) >= count:
                return events[:count]
    return events + parser.close()


def test_the_ticker_needs_its_key(feed: str) -> None:
    refused = httpx2.get(f"{feed}/stocks", headers={"X-Api-Key": "wrong"})
    assert refused.status_code == 401
    assert "X-Api-Key" in refused.json()["error"]


def test_the_ticker_sends_named_events_with_ids_and_resumes(feed: str) -> None:
    headers = {"X-Api-Key": KEY}
    first = read_events(f"{feed}/stocks?symbols=aapl,NVDA", 4, headers)
    assert first[0].event == "market_status"
    assert json.loads(first[0].data) == {"status": "open", "symbols": ["AAPL", "NVDA"]}
    assert [(e.event, e.id) for e in first[1:]] == [("price_update", str(n)) for n in (1, 2, 3)]
    assert json.loads(first[1].data) == {"symbol": "NVDA", "price": price("NVDA", 1)}
    resumed = read_events(f"{feed}/stocks?symbols=aapl,NVDA", 2, {**headers, "Last-Event-ID": "2"})
    assert resumed[1] == first[3]


def test_the_log_tail_keeps_levels_at_or_above_the_one_asked(feed: str) -> None:
    events = read_events(f"{feed}/logs?level=warning", 4)
    assert {e.event for e in events} == {"message"}
    assert {json.loads(e.data)["level"] for e in events} <= {"warning", "error"}
    assert httpx2.get(f"{feed}/logs?level=loud").status_code == 400


def test_a_job_reports_progress_then_ends(feed: str) -> None:
    events = read_events(f"{feed}/jobs/4711", 100)
    assert [json.loads(e.data).get("percent") for e in events[:-1]] == [0, 20, 40, 60, 80, 100]
    assert (events[-1].event, json.loads(events[-1].data)) == (
        "done",
        {"job": "4711", "status": "succeeded"},
    )


def test_the_demo_command_runs_end_to_end() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mcp_sse_bridge", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert "3 tools:" in out
    for name in ("stock_ticker", "log_tail", "job_progress"):
        assert f"  {name} " in out
    assert "progress   1/5  price_update #1: " in out
    assert "progress   5/5  price_update #5: " in out
    assert "done #7: " in out
    assert '"stop_reason": "max_events"' in out
    assert '"stop_reason": "closed"' in out
    assert elapsed < 30
