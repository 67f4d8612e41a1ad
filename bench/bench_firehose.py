"""Firehose filtering end to end: how many upstream events per second a filtered call digests.

The upstream sends EVENTS events as fast as the socket takes them, one in 10,000 of type
`match`, the last event being the last match. One MCP tool call over stdio (`event_type:
"match"`, `max_events` = number of matches) must read the whole stream to return; so does the
reference UTCP client. events/s = upstream events / wall time of the call, best of REPEATS.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import peer_utcp, upstream
from bench.report import Row
from bench.under_test import run_bridge, sse_tool, write_manual

EVERY = 10_000
TARGET = 3.0
NOTE = (
    "Firehose: one stdio tool call (`event_type: match`) vs the reference UTCP client "
    "(utcp-http `SseCommunicationProtocol.call_tool_streaming`, same template, own process); "
    f"1 in {EVERY:,} events matches; events/s over the whole call, best of the repeats; "
    f"target >= {TARGET:g}x the reference (aim 4x)."
)


async def run(quick: bool) -> list[Row]:
    events = 200_000  # cheap enough for --quick too; fewer repeats there
    repeats = 2 if quick else 3
    matches = events // EVERY
    async with upstream.running(events, EVERY) as base:
        url = f"{base}/firehose/{events}/{EVERY}"
        with tempfile.TemporaryDirectory() as tmp:
            manual = write_manual(
                Path(tmp),
                "firehose",
                [
                    sse_tool("firehose", url, "match"),
                    sse_tool("warmup", f"{base}/firehose/100/10", "match"),
                ],
            )
            async with run_bridge([manual]) as bridge:
                await bridge.call("warmup", {"max_events": 10})
                ours: list[float] = []
                peer: list[float] = []
                for _ in range(repeats):  # interleaved, so drift on a shared machine hits both
                    start = time.perf_counter()
                    batch = await bridge.call(
                        "firehose", {"max_events": matches, "max_seconds": 60}
                    )
                    ours.append(events / (time.perf_counter() - start))
                    if batch["count"] != matches:
                        raise RuntimeError(f"bridge returned {batch['count']} of {matches} matches")
                    result = await peer_utcp.measure("firehose", url, events, matches)
                    if result["matched"] != matches:
                        raise RuntimeError(f"utcp got {result['matched']} of {matches} matches")
                    peer.append(result["events_per_s"])
    ratio = max(ours) / max(peer)
    return [
        Row(
            "firehose",
            f"{events:,} events, events/s",
            f"{max(ours):,.0f}",
            "utcp-http",
            f"{max(peer):,.0f}",
            ratio,
            f">= {TARGET:g}x",
            ratio >= TARGET,
        )
    ]
