"""Checks of the benchmark harness itself (no timing): `python -m pytest bench/test_bench.py`.

What the figures rest on: the upstream sends what the benchmarks count on, the reference peer
sees the same matches, and a run's results file keeps the other mode's section.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest

from bench import peer_utcp, report, upstream
from bench.measure import peak_rss_kib, percentile, rss_kib
from bench.under_test import CallFailed, run_bridge, sse_tool, write_manual
from mcp_sse_bridge.upstream.sse import EventStreamParser


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def fetch_events(url: str) -> list:
    parser = EventStreamParser()
    events = []
    async with httpx2.AsyncClient() as client, client.stream("GET", url) as response:
        assert response.headers["content-type"] == "text/event-stream"
        async for chunk in response.aiter_raw():
            events += parser.feed(chunk)
    return events


@pytest.mark.anyio
async def test_upstream_serves_each_kind_of_stream() -> None:
    async with upstream.running(1000, 100) as base:
        firehose = await fetch_events(f"{base}/firehose/1000/100")
        paced = await fetch_events(f"{base}/paced/3/0")
        before = time.monotonic_ns()
        stamped = await fetch_events(f"{base}/latency/3/0")
        async with httpx2.AsyncClient() as client:
            missing = await client.get(f"{base}/nothing")
    assert len(firehose) == 1000
    matches = [event for event in firehose if event.event == "match"]
    assert [event.id for event in matches] == [str(seq) for seq in range(99, 1000, 100)]
    assert firehose[-1].event == "match"  # a filtered call must read the whole stream
    sizes = [len(upstream.firehose_event(seq, 100)) for seq in range(1000)]
    assert min(sizes) >= 140 and max(sizes) <= 160
    assert [event.data for event in paced] == ['{"seq":0}', '{"seq":1}', '{"seq":2}']
    stamps = [int(event.data.split(":")[1].rstrip("}")) for event in stamped]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= time.monotonic_ns()
    assert missing.status_code == 404


@pytest.mark.anyio
async def test_reference_peer_sees_the_same_matches() -> None:
    async with upstream.running() as base:
        result = await peer_utcp.measure("firehose", f"{base}/firehose/20000/1000", 20000, 20)
    assert result["matched"] == 20
    assert result["events_per_s"] > 0


@pytest.mark.anyio
async def test_bridge_under_test_collects_the_matches(tmp_path: Path) -> None:
    async with upstream.running() as base:
        tool = sse_tool("firehose", f"{base}/firehose/2000/1000", "match")
        manual = write_manual(tmp_path, "firehose", [tool])
        async with run_bridge([manual]) as bridge:
            batch = await bridge.call("firehose", {"max_events": 2})
    assert [event["id"] for event in batch["events"]] == ["999", "1999"]
    assert batch["skipped"]["filtered"] == 1998


@pytest.mark.anyio
async def test_bridge_that_cannot_start_shows_its_own_message(tmp_path: Path) -> None:
    with pytest.raises(CallFailed, match=r"missing\.json"):
        async with run_bridge([tmp_path / "missing.json"]):
            pass


def test_results_file_keeps_the_other_modes_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    report.write(path, "quick", "## Quick run A\n")
    report.write(path, "full", "## Full run A\n")
    report.write(path, "full", "## Full run B\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(report.HEADER)
    assert "Full run A" not in text
    assert text.index("Full run B") < text.index("Quick run A")


def test_failed_row_is_one_table_cell() -> None:
    row = report.failed("firehose", "boom | with a pipe\nand a newline")
    assert row.ok is False
    assert "|" not in row.ours and "\n" not in row.ours
    assert report.table([row]).count("\n") == 2  # header, rule, one row


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_memory_figures_come_from_proc() -> None:
    assert 0 < rss_kib() <= peak_rss_kib()
