"""Subscriptions: many feeds held open in one bridge, read latency, and loss between calls.

One bridge process over stdio, driven by the SDK's client as a host would, against the bench
upstream (its paced route numbers events per connection and never replays):

- 1,000 subscriptions (200 quick), each upstream sending 1 event/s: RSS growth per subscription
  (RSS after they are all live minus RSS after a warm-up subscription), and the bridge's CPU
  while they run; then the same number of quiet feeds (one event, then silence): CPU.
- `read_subscription` of 10 buffered events: p50/p99 over stdio, against a plain call's time
  to its first event.
- Loss on a live feed (100 events/s) read by an agent once a second: polling with calls (what
  every peer does; events sent between calls are never seen) against subscribe + read.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psutil

from bench import upstream
from bench.measure import percentile, rss_kib
from bench.report import Row
from bench.under_test import ServerUnderTest, run_bridge, write_manual

TARGET_RSS_KIB = 64
TARGET_QUIET_CPU = 2.0  # % of one core
TARGET_READ_P50_MS = 2.0
NOTE = (
    "Subscriptions: N subscriptions in one bridge (stdio), each upstream 1 event/s; RSS growth per "
    "subscription = RSS with all live - RSS after a warm-up subscription; CPU of the bridge over "
    f"3 s, then with quiet feeds (target < {TARGET_QUIET_CPU:g} % of a core). read_subscription "
    "of 10 buffered events vs a plain call's time to its first event. Loss: a 100 events/s feed "
    "read once a second for the run, polling with calls vs subscribe + read (ours must be 0)."
)


def feed_tool(name: str, url: str, *, reconnect: bool = True) -> dict[str, Any]:
    inputs = {"type": "object", "properties": {"n": {"type": "integer"}}}
    template = {"call_template_type": "sse", "url": url, "reconnect": reconnect}
    return {"name": name, "description": "", "inputs": inputs, "tool_call_template": template}


async def subscribe_many(bridge: ServerUnderTest, tool: str, count: int) -> list[str]:
    ids: list[str] = []

    async def one(n: int) -> None:
        result = await bridge.call("subscribe", {"tool": tool, "arguments": {"n": n}})
        ids.append(result["subscription"])

    for start in range(0, count, 100):  # bursts of 100, as a busy host might
        async with anyio.create_task_group() as tg:
            for n in range(start, min(start + 100, count)):
                tg.start_soon(one, n)
    return ids


async def unsubscribe_all(bridge: ServerUnderTest, ids: list[str]) -> None:
    async with anyio.create_task_group() as tg:
        for sub in ids:
            tg.start_soon(bridge.call, "unsubscribe", {"subscription": sub})


async def cpu_percent(pid: int, seconds: float) -> float:
    process = psutil.Process(pid)
    before = process.cpu_times()
    await anyio.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / seconds


async def many(bridge: ServerUnderTest, count: int) -> list[Row]:
    warm = await subscribe_many(bridge, "warm", 1)
    await anyio.sleep(1)
    before = rss_kib(bridge.pid)
    live = await subscribe_many(bridge, "live", count)
    await anyio.sleep(3)  # a few events buffered in each
    per_sub = (rss_kib(bridge.pid) - before) / count
    busy = await cpu_percent(bridge.pid, 3)
    await unsubscribe_all(bridge, [*warm, *live])
    quiet_ids = await subscribe_many(bridge, "quiet", count)
    await anyio.sleep(1)
    quiet = await cpu_percent(bridge.pid, 3)
    await unsubscribe_all(bridge, quiet_ids)
    label = f"{count:,} subscriptions"
    return [
        Row("subscriptions", f"RSS per subscription, {label}", f"{per_sub:.1f} KiB",
            target=f"<= {TARGET_RSS_KIB} KiB + events", ok=per_sub <= TARGET_RSS_KIB + 4),
        Row("subscriptions", f"CPU, {label} at 1 event/s each", f"{busy:.1f} % of a core"),
        Row("subscriptions", f"CPU, {label} quiet", f"{quiet:.1f} % of a core",
            target=f"< {TARGET_QUIET_CPU:g} %", ok=quiet < TARGET_QUIET_CPU),
    ]  # fmt: skip


async def read_latency(bridge: ServerUnderTest, reads: int) -> list[Row]:
    sub = await bridge.call("subscribe", {"tool": "twenty"})
    start_cursor = sub["cursor"]
    for _ in range(50):  # the 20 events arrive at once; the feed then ends (reconnect: false)
        if (await bridge.call("list_subscriptions", {}))["subscriptions"][-1]["buffered"] >= 20:
            break
        await anyio.sleep(0.02)
    times = []
    for _ in range(reads):
        begun = time.perf_counter()
        result = await bridge.call(
            "read_subscription",
            {"subscription": sub["subscription"], "cursor": start_cursor, "max_events": 10},
        )
        times.append((time.perf_counter() - begun) * 1000)
        assert result["count"] == 10
    calls = []
    for _ in range(max(20, reads // 10)):
        begun = time.perf_counter()
        await bridge.call("first", {"max_events": 1})
        calls.append((time.perf_counter() - begun) * 1000)
    p50, p99, call_p50 = percentile(times, 50), percentile(times, 99), percentile(calls, 50)
    return [
        Row("subscriptions", "read_subscription of 10 events, p50", f"{p50:.2f} ms",
            "call to first event", f"{call_p50:.2f} ms", call_p50 / p50,
            f"< {TARGET_READ_P50_MS:g} ms", p50 < TARGET_READ_P50_MS),
        Row("subscriptions", "read_subscription of 10 events, p99", f"{p99:.2f} ms"),
    ]  # fmt: skip


async def loss(bridge: ServerUnderTest, seconds: int) -> list[Row]:
    """An agent looking once a second; the feed sends an event every 10 ms."""
    begun, received = time.perf_counter(), 0
    while time.perf_counter() - begun < seconds:
        batch = await bridge.call("hundred", {"max_events": 10})
        received += batch["count"]
        await anyio.sleep(1)
    produced = (time.perf_counter() - begun) * 100
    polling = max(0.0, 1 - received / produced)
    sub = (await bridge.call("subscribe", {"tool": "hundred"}))["subscription"]
    seqs: list[int] = []
    for _ in range(seconds):
        await anyio.sleep(1)
        read = await bridge.call("read_subscription", {"subscription": sub, "max_events": 1000})
        seqs += [event["data"]["seq"] for event in read["events"]]
    if not seqs:
        raise RuntimeError("the subscription read no events")
    span = seqs[-1] - seqs[0] + 1
    ours = (span - len(set(seqs))) / span
    return [
        Row("subscriptions", f"events lost, 100/s feed read once a second for {seconds} s",
            f"{100 * ours:.1f} %", "polling with calls", f"{100 * polling:.1f} %",
            target="0 %", ok=ours == 0),
    ]  # fmt: skip


async def run(quick: bool) -> list[Row]:
    count, reads, seconds = (200, 200, 3) if quick else (1000, 1000, 5)
    async with upstream.running() as base:
        with tempfile.TemporaryDirectory() as tmp:
            tools = [
                feed_tool("warm", f"{base}/paced/3600/1000"),
                feed_tool("live", f"{base}/paced/3600/1000"),
                feed_tool("quiet", f"{base}/paced/2/3600000"),
                feed_tool("twenty", f"{base}/paced/20/0", reconnect=False),
                feed_tool("first", f"{base}/paced/1/0", reconnect=False),
                feed_tool("hundred", f"{base}/paced/100000/10"),
            ]
            manual = write_manual(Path(tmp), "subs", tools)
            options = ("--max-subscriptions", str(count + 10), "--max-events-limit", "1000")
            async with run_bridge([manual], *options) as bridge:
                rows = await many(bridge, count)
                rows += await read_latency(bridge, reads)
                rows += await loss(bridge, seconds)
    return rows
