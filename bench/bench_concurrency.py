"""Concurrency: many tool calls at once through one bridge process over stdio.

Every call opens its own upstream stream that the server paces: EVENTS events, the first at
once and then one every INTERVAL_MS, so no client can finish a call faster than the paced time
(EVENTS - 1) * INTERVAL_MS. Memory is the bridge process's peak RSS (kernel watermark) minus its
RSS after a warm-up call, divided by the number of streams open at once.

Each side runs the burst REPEATS times and reports the median time: on a shared 2-core machine
one burst's time moves by a third from run to run (all three processes compete for the cores).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import anyio

from bench import peer_utcp, upstream
from bench.measure import peak_rss_kib, rss_kib
from bench.report import Row
from bench.under_test import ServerUnderTest, run_bridge, run_server, sse_tool, write_manual

EVENTS = 5
INTERVAL_MS = 300
PACED_S = (EVENTS - 1) * INTERVAL_MS / 1000
TIME_FACTOR = 2.5
REPEATS = 5
KIB_PER_STREAM = 100
NOTE = (
    f"Concurrency: all calls started at once on one stdio session; upstream paces {EVENTS} events "
    f"{INTERVAL_MS} ms apart (paced time {PACED_S:g} s, first event at once); time target "
    f"<= {TIME_FACTOR:g}x paced; each time is the median of {REPEATS} bursts; RSS growth = peak "
    "RSS (VmHWM) - RSS after a warm-up call, per "
    "open stream. The reference runs the same calls in its own process, without MCP; the MCP "
    "floor is an SDK stdio server whose tool only sleeps the paced time (bench/sdk_floor.py)."
)


async def _calls(server: ServerUnderTest, calls: int) -> int:
    """Run `calls` concurrent tool calls; return how many returned all their events."""
    completed = 0

    async def one() -> None:
        nonlocal completed
        batch = await server.call("paced", {"max_events": EVENTS, "max_seconds": 30})
        completed += batch["count"] == EVENTS

    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(one)
    return completed


async def _median_burst(server: ServerUnderTest, calls: int) -> tuple[float, int]:
    """The median time of REPEATS bursts of `calls`, and the fewest calls any burst completed."""
    times, completed = [], calls
    for _ in range(REPEATS):
        start = time.perf_counter()
        completed = min(completed, await _calls(server, calls))
        times.append(time.perf_counter() - start)
    return statistics.median(times), completed


async def run(quick: bool) -> list[Row]:
    calls = 200 if quick else 1000
    async with upstream.running() as base:
        url = f"{base}/paced/{EVENTS}/{INTERVAL_MS}"
        with tempfile.TemporaryDirectory() as tmp:
            manual = write_manual(
                Path(tmp),
                "paced",
                [sse_tool("paced", url), sse_tool("warmup", f"{base}/paced/1/0")],
            )
            async with run_bridge([manual]) as bridge:
                await bridge.call("warmup", {"max_events": 1})
                baseline = rss_kib(bridge.pid)
                elapsed, completed = await _median_burst(bridge, calls)
                growth = (peak_rss_kib(bridge.pid) - baseline) / calls
        peers = [await peer_utcp.measure("concurrency", url, calls, EVENTS) for _ in range(REPEATS)]
    async with run_server("bench.sdk_floor", str(PACED_S), str(EVENTS)) as floor:
        await floor.call("warmup", {})
        floor_s, floor_completed = await _median_burst(floor, calls)
    peer = {
        "elapsed_s": statistics.median(run["elapsed_s"] for run in peers),
        "completed": min(run["completed"] for run in peers),
        "rss_growth_kib": max(run["rss_peak_kib"] - run["rss_baseline_kib"] for run in peers),
    }
    if floor_completed != calls:
        raise RuntimeError(f"the MCP floor completed {floor_completed} of {calls} calls")
    peer_growth = peer["rss_growth_kib"] / calls
    limit_s = TIME_FACTOR * PACED_S
    return [
        Row(
            "concurrency",
            f"{calls:,} calls completed",
            f"{completed:,}",
            "utcp-http",
            f"{peer['completed']:,}",
            target="all",
            ok=completed == calls,
        ),
        Row(
            "concurrency",
            f"{calls:,} calls, total time",
            f"{elapsed:.2f} s",
            "utcp-http",
            f"{peer['elapsed_s']:.2f} s",
            peer["elapsed_s"] / elapsed,
            f"<= {limit_s:.2f} s",
            elapsed <= limit_s,
        ),
        Row(
            "concurrency",
            f"{calls:,} calls, total time",
            f"{elapsed:.2f} s",
            "MCP floor (tool sleeps)",
            f"{floor_s:.2f} s",
            floor_s / elapsed,
        ),
        Row(
            "concurrency",
            "RSS growth per open stream",
            f"{growth:.1f} KiB",
            "utcp-http",
            f"{peer_growth:.1f} KiB",
            peer_growth / growth if growth > 0 else None,
            f"<= {KIB_PER_STREAM} KiB",
            growth <= KIB_PER_STREAM,
        ),
    ]
