"""Latency: from the upstream's write of an event to the MCP client's progress callback.

The upstream stamps each event with `time.monotonic_ns()` right before writing it; the progress
callback in this process subtracts it from its own `time.monotonic_ns()` (CLOCK_MONOTONIC is one
clock for the whole machine on Linux). Events are spaced INTERVAL_MS apart so the figure is the
latency of one event through the pipeline, not a queue.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from bench import peer_utcp, upstream
from bench.measure import percentile
from bench.report import Row
from bench.under_test import run_bridge, sse_tool, write_manual

INTERVAL_MS = 5
TARGET_P50_MS = 2.0
STAMP = re.compile(r"sent_ns\D{0,4}(\d{6,})")
NOTE = (
    f"Latency: upstream write -> progress callback of the MCP client (stdio), events {INTERVAL_MS} "
    "ms apart; the reference figure is upstream write -> event yielded by the utcp-http client in "
    f"its own process (no MCP hop). Target p50 < {TARGET_P50_MS:g} ms."
)


async def run(quick: bool) -> list[Row]:
    events = 500 if quick else 2000
    delays_ms: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        found = STAMP.search(message or "")
        if found:
            delays_ms.append((time.monotonic_ns() - int(found.group(1))) / 1e6)

    async with upstream.running() as base:
        url = f"{base}/latency/{events}/{INTERVAL_MS * 1000}"
        with tempfile.TemporaryDirectory() as tmp:
            manual = write_manual(
                Path(tmp),
                "latency",
                [sse_tool("latency", url), sse_tool("warmup", f"{base}/latency/5/0")],
            )
            options = ("--max-events-limit", str(events), "--max-bytes", str(64 << 20))
            async with run_bridge([manual], *options) as bridge:
                await bridge.call("warmup", {"max_events": 5}, on_progress)
                delays_ms.clear()
                await bridge.call(
                    "latency", {"max_events": events, "max_seconds": 120}, on_progress
                )
        if len(delays_ms) < events:
            raise RuntimeError(
                f"{len(delays_ms)} of {events} progress messages carried the event's stamp; "
                "the progress message should start with the event's data"
            )
        peer = await peer_utcp.measure("latency", url, events)
    p50, p99 = percentile(delays_ms, 50), percentile(delays_ms, 99)
    return [
        Row(
            "latency",
            f"p50 over {events:,} events",
            f"{p50:.2f} ms",
            "utcp-http (direct)",
            f"{peer['p50_ms']:.2f} ms",
            peer["p50_ms"] / p50,
            f"< {TARGET_P50_MS:g} ms",
            p50 < TARGET_P50_MS,
        ),
        Row(
            "latency",
            f"p99 over {events:,} events",
            f"{p99:.2f} ms",
            "utcp-http (direct)",
            f"{peer['p99_ms']:.2f} ms",
            peer["p99_ms"] / p99,
        ),
    ]
