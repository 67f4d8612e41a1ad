"""Start-up: from spawning the bridge to the answer of its first `tools/list`, over stdio.

Timed like a host sees it: process start, interpreter and imports, manual loading, the MCP
`initialize` handshake, then `tools/list`. The floor is a bare interpreter importing the MCP SDK,
which no Python MCP server can beat; the difference is ours to spend.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp.client.stdio import get_default_environment

from bench.report import Row
from bench.under_test import run_bridge, write_manual

SUBSCRIPTION_TOOLS = 4  # subscribe, read_subscription, list_subscriptions, unsubscribe
TOOLS_PER_MANUAL = 4
NOTE = (
    "Start-up: spawn -> `initialize` -> first `tools/list` answered, median of the repeats; "
    f"each manual has {TOOLS_PER_MANUAL} tools; the floor is `python -c 'import mcp.server'`."
)


def _tool(manual: int, tool: int) -> dict[str, object]:
    """A realistic tool: a path placeholder, a query argument, a type filter."""
    return {
        "name": f"feed_{tool}",
        "description": f"Live feed {tool} of service {manual}: quotes for one symbol, live.",
        "inputs": {
            "type": "object",
            "properties": {
                "symbol": {"type": "string", "description": "Ticker symbol, e.g. AAPL"},
                "depth": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["symbol"],
        },
        "tool_call_template": {
            "call_template_type": "sse",
            "url": f"https://feeds{manual}.example.com/v1/quotes/{{symbol}}",
            "event_type": "quote",
            "headers": {"User-Agent": "bench"},
        },
    }


async def _startup_s(manuals: list[Path]) -> float:
    start = time.perf_counter()
    async with run_bridge(manuals) as bridge:
        listed = await bridge.session.list_tools()
        elapsed = time.perf_counter() - start
    expected = len(manuals) * TOOLS_PER_MANUAL + SUBSCRIPTION_TOOLS
    if len(listed.tools) != expected:
        raise RuntimeError(f"tools/list returned {len(listed.tools)} tools, expected {expected}")
    return elapsed


async def _floor_s() -> float:
    """Until the import is done (not until exit, as the bridge is timed before it exits), with
    the environment the SDK gives the servers it spawns (ours may differ, e.g. in bytecode)."""
    command = [sys.executable, "-c", "import mcp.server; print(flush=True)"]
    start = time.perf_counter()
    async with await anyio.open_process(command, env=get_default_environment()) as process:
        assert process.stdout is not None
        await process.stdout.receive()
        elapsed = time.perf_counter() - start
    return elapsed


async def run(quick: bool) -> list[Row]:
    repeats = 3 if quick else 7
    floor: list[float] = []
    times: dict[int, list[float]] = {1: [], 50: []}
    with tempfile.TemporaryDirectory() as tmp:
        manuals = [
            write_manual(Path(tmp), f"service{m}", [_tool(m, t) for t in range(TOOLS_PER_MANUAL)])
            for m in range(max(times))
        ]
        for _ in range(repeats):  # interleaved, so a busy spell on a shared machine hits all
            floor.append(await _floor_s())
            for count, samples in times.items():
                samples.append(await _startup_s(manuals[:count]))
    return [
        Row(
            "start-up",
            f"{count} manual(s), {count * TOOLS_PER_MANUAL} tools",
            f"{statistics.median(samples) * 1000:.0f} ms",
            "floor",
            f"{statistics.median(floor) * 1000:.0f} ms",
        )
        for count, samples in times.items()
    ]
