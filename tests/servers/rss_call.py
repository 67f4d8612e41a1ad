"""Run one bridge call in a fresh process; print its batch and peak memory as JSON.

Usage: python tests/servers/rss_call.py MANUAL TOOL ARGUMENTS_JSON

Peak RSS is this process's own (`getrusage`), so pytest, hypothesis and the test servers do
not blur the figure. `baseline_kib` is the peak once the bridge is open, before the call.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import anyio

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


async def call(manual: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Bridge([load_manual(manual)], variables=Variables({}, {})) as bridge:
        baseline = peak_kib()
        batch = await bridge.call(tool, arguments)
    return {"baseline_kib": baseline, "peak_kib": peak_kib(), "batch": batch.to_dict()}


if __name__ == "__main__":
    manual, tool, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(anyio.run(call, manual, tool, arguments)))
