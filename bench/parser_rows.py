"""Parser throughput: `bench/bench_parser.py`'s measurement, run in a fresh process, as rows.

A fresh interpreter keeps the other benchmarks' garbage and threads out of a CPU-bound
measurement, and lets the run's time limit stop it for real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from bench.report import Row

TARGET = 1.5
NOTE = (
    "Parser: our EventStreamParser vs httpx-sse 0.4.3 (driven as its `aiter_sse` does) on the "
    "same stream of ~150-byte events in 64 KiB chunks, in one process, best of 3; the floor "
    f"splits on blank lines with one `partition` per line (no spec rules). Target >= {TARGET:g}x "
    "httpx-sse."
)
SCRIPT = "import json, sys; from bench.bench_parser import run; print(json.dumps(run(quick={})))"


async def measure(quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-c", SCRIPT.format(quick)]
    done = await anyio.run_process(command, cwd=Path(__file__).resolve().parent.parent, check=False)
    if done.returncode:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"bench_parser exited {done.returncode}: {reason}")
    return json.loads(done.stdout.splitlines()[-1])


async def run(quick: bool) -> list[Row]:
    result = await measure(quick)
    rates = result["events_per_s"]
    ours = f"{rates['ours']:,}"
    stream = f"{result['size_mb']:g} MB"
    ratio = result["ratio_httpx_sse"]
    return [
        Row(
            "parser",
            f"{stream}, events/s",
            ours,
            "httpx-sse 0.4.3",
            f"{rates['httpx_sse']:,}",
            ratio,
            f">= {TARGET:g}x",
            ratio >= TARGET,
        ),
        Row(
            "parser",
            f"{stream}, events/s",
            ours,
            "httpx-sse + httpx LineDecoder",
            f"{rates['httpx_sse_linedecoder']:,}",
            result["ratio_httpx_sse_linedecoder"],
        ),
        Row(
            "parser",
            f"{stream}, fraction of floor",
            ours,
            "floor: split + partition",
            f"{rates['floor']:,}",
            result["ratio_floor"],
        ),
    ]
