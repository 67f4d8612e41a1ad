"""Shaping on a price feed: how fast a reducing call digests a stream, and how small it answers.

The upstream sends EVENTS `price` events over SYMBOLS symbols as fast as the socket takes them.
One stdio tool call with `latest_per: "symbol"` and one with `summary: true` must each read the
whole stream (every event is accepted, decoded and folded); events/s = upstream events / wall
time of the call, best of REPEATS, against the plain firehose call of `bench_firehose` (same
size, 1 in 10,000 events accepted) in the same bridge process, interleaved. Result bytes are the
JSON text of each shaped result against the plain batch of the same 200,000 events, the raw
answer to the same question: measured on a plain call of PLAIN events (allowed by this bridge's
ceilings) and scaled to EVENTS, the events being all of one size.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench import report, upstream
from bench.report import Row
from bench.under_test import run_bridge, sse_tool, write_manual

EVENTS = 200_000
SYMBOLS = 50
EVERY = 10_000
PLAIN = 10_000
TARGET = 0.8
NOTE = (
    f"Shaping: {EVENTS:,} `price` events over {SYMBOLS} symbols, one stdio call with "
    '`latest_per: "symbol"` (max_events 50) and one with `summary: true`, each reading the '
    "whole stream; events/s against the plain firehose call (1 in 10,000 accepted) in the "
    f"same run, best of the repeats, target >= {TARGET:g}x; result bytes (JSON text) against "
    f"the plain batch of all {EVENTS:,} events (measured on {PLAIN:,}, scaled)."
)
SHAPED = {
    "latest_per": {"latest_per": "symbol", "max_events": SYMBOLS},
    "summary": {"summary": True},
}


async def run(quick: bool) -> list[Row]:
    repeats = 2 if quick else 3
    async with upstream.running(EVENTS, EVERY) as base:
        prices = f"{base}/prices/{EVENTS}/{SYMBOLS}"
        firehose = f"{base}/firehose/{EVENTS}/{EVERY}"
        with tempfile.TemporaryDirectory() as tmp:
            tools = [sse_tool("prices", prices), sse_tool("firehose", firehose, "match")]
            manual = write_manual(Path(tmp), "shaping", tools)
            ceilings = ["--max-events-limit", str(PLAIN), "--max-bytes", str(1 << 26)]
            options = [*ceilings, "--summary-event-limit", str(EVENTS)]
            async with run_bridge([manual], *options) as bridge:
                speeds: dict[str, list[float]] = {"firehose": [], **{k: [] for k in SHAPED}}
                sizes: dict[str, int] = {}
                await bridge.call("prices", {**SHAPED["latest_per"], "max_seconds": 60})  # warm
                for _ in range(repeats):  # interleaved, so drift on a shared machine hits all
                    start = time.perf_counter()
                    batch = await bridge.call("firehose", {"max_events": EVENTS // EVERY})
                    speeds["firehose"].append(EVENTS / (time.perf_counter() - start))
                    for name, arguments in SHAPED.items():
                        start = time.perf_counter()
                        batch = await bridge.call("prices", {**arguments, "max_seconds": 60})
                        speeds[name].append(EVENTS / (time.perf_counter() - start))
                        _check(name, batch)
                        sizes[name] = _size(batch)
                plain = await bridge.call("prices", {"max_events": PLAIN, "max_seconds": 60})
                if plain["count"] != PLAIN:
                    raise RuntimeError(f"the plain batch has {plain['count']} of {PLAIN} events")
                sizes["plain"] = _size(plain) * (EVENTS // PLAIN)
    return _rows(speeds, sizes)


def _check(name: str, batch: dict) -> None:
    if name == "latest_per" and (batch["count"] != SYMBOLS or batch["folded"] != EVENTS):
        raise RuntimeError(f"latest_per returned {batch['count']} keys of {batch['folded']}")
    if name == "summary" and batch["summary"]["count"] != EVENTS:
        raise RuntimeError(f"summary aggregated {batch['summary']['count']} of {EVENTS}")


def _size(batch: dict) -> int:
    return len(json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode())


def _rows(speeds: dict[str, list[float]], sizes: dict[str, int]) -> list[Row]:
    plain = max(speeds["firehose"])
    rows = []
    for name in SHAPED:
        ours = max(speeds[name])
        ratio = ours / plain
        metric = f"{name}, {EVENTS:,} events, events/s"
        rows.append(
            Row(
                "shaping",
                metric,
                f"{ours:,.0f}",
                "plain firehose call",
                f"{plain:,.0f}",
                ratio,
                f">= {TARGET:g}x",
                ratio >= TARGET,
            )
        )
    for name in SHAPED:
        ratio = sizes["plain"] / sizes[name]
        rows.append(
            Row(
                "shaping",
                f"{name}, result bytes",
                f"{sizes[name]:,}",
                "plain batch",
                f"{sizes['plain']:,}",
                ratio,
                ">= 50x smaller",
                ratio >= 50,
            )
        )
    return rows


async def _alone() -> None:
    """`python -m bench.bench_shaping`: this benchmark alone, in its own RESULTS.md section
    (the full and quick runs include it too)."""
    started = time.perf_counter()
    rows = await run(quick=True)
    text = report.section("shaping", rows, [NOTE], time.perf_counter() - started)
    print(text)
    report.write(Path(__file__).parent / "RESULTS.md", "shaping", text)


if __name__ == "__main__":
    import anyio

    anyio.run(_alone)
