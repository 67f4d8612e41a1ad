"""Scale-out: three bridge replicas over streamable HTTP sharing subscriptions through Redis.

A real `redis-server` (persistence off, a temp directory) and replica processes, driven with
the SDK's streamable-HTTP client as a load balancer's clients would:

- failover: subscribe on one replica, SIGKILL it, and time until another replica's read
  returns an event received after the kill (over 10 kills, 4 quick; `--store-lease-seconds 1`);
  each killed replica is replaced, so three stay up;
- read latency: `read_subscription` of 10 buffered events through a replica that does not own
  the subscription, against the same read from a replica with the in-memory store;
- append rate: one subscription on the firehose (200,000 events, 50,000 quick), events per
  second appended into Redis by the owning replica (target >= 50k/s, one script per chunk).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp
from mcp.shared.exceptions import MCPError
from redis.asyncio import Redis

from bench import report, upstream
from bench.measure import percentile
from bench.report import Row
from tests.redis_server import redis_server
from tests.replicas import Replica, replica

TARGET_APPEND = 50_000  # events/s into Redis, one subscription
LEASE = 1.0
NOTE = (
    "Scale-out: three replicas (streamable HTTP, --store redis://, --store-lease-seconds 1) and "
    "a real redis-server on this machine. Failover: SIGKILL of the owner until another replica "
    "reads an event received after the kill. Read: 10 buffered events through a replica that "
    "does not own the subscription vs a replica with the in-memory store. Append: one "
    f"subscription on the firehose, events/s into Redis (target >= {TARGET_APPEND:,})."
)


def manual(directory: Path, base: str, events: int) -> Path:
    def tool(name: str, path: str) -> dict[str, Any]:
        template = {"call_template_type": "sse", "url": f"{base}{path}", "retry_timeout": 100}
        return {"name": name, "description": "", "tool_call_template": template}

    tools = [tool("paced", "/paced/100000/20"), tool("firehose", f"/firehose/{events}/1000000")]
    path = directory / "bench.json"
    path.write_text(json.dumps({"utcp_version": "1.0.1", "manual_version": "1", "tools": tools}))
    return path


async def call(client: mcp.Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as exc:  # say which call, so that a one-line error row can be traced
        raise RuntimeError(f"{tool} {sorted(arguments)}: {exc}") from exc
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def first_after(url: str, sub: str, moment: datetime.datetime) -> float:
    """Seconds from `moment` to the arrival of the first event read after it."""
    async with mcp.Client(url) as client:
        with anyio.fail_after(30):
            while True:
                read = await call(
                    client, "read_subscription", subscription=sub, max_events=1000, wait_seconds=5
                )
                for event in read["events"]:
                    at = datetime.datetime.fromisoformat(event["received_at"])
                    if at > moment:
                        return (at - moment).total_seconds()


async def failover(replicas: Replicas, kills: int) -> list[float]:
    """Seconds from each SIGKILL of an owner to the first event another replica's read shows."""
    times: list[float] = []
    for _ in range(kills):
        owner, other = replicas.live[0], replicas.live[1]
        async with mcp.Client(owner.url) as client:
            sub = (await call(client, "subscribe", tool="paced", arguments={}))["subscription"]
        await first_after(other.url, sub, datetime.datetime.now(datetime.UTC))  # it streams
        owner.kill()
        times.append(await first_after(other.url, sub, datetime.datetime.now(datetime.UTC)))
        async with mcp.Client(other.url) as client:
            await call(client, "unsubscribe", subscription=sub)
        await replicas.replace(owner)
    return times


async def read_latency(url: str, reads: int) -> list[float]:
    """ms per `read_subscription` of the same 10 buffered events (through the subscription's
    first cursor), on the replica at `url`."""
    async with mcp.Client(url) as client:
        sub = await call(client, "subscribe", tool="paced", arguments={})

        async def first_ten(wait_seconds: float = 0) -> dict[str, Any]:
            return await call(
                client,
                "read_subscription",
                subscription=sub["subscription"],
                cursor=sub["cursor"],
                max_events=10,
                wait_seconds=wait_seconds,
            )

        with anyio.fail_after(30):
            while (await first_ten(wait_seconds=5))["count"] < 10:
                pass
        times = []
        for _ in range(reads):
            began = time.perf_counter()
            await first_ten()
            times.append((time.perf_counter() - began) * 1000)
        await call(client, "unsubscribe", subscription=sub["subscription"])
    return times


async def append_rate(url: str, redis: Redis, prefix: str, events: int) -> float:
    """Events/s the owning replica appends into Redis for one firehose subscription."""
    async with mcp.Client(url) as client:
        sub = await call(client, "subscribe", tool="firehose", arguments={}, buffer_events=10_000)
    key = f"{prefix}sub:{sub['subscription']}"
    began = time.perf_counter()
    last = 0
    with anyio.fail_after(120):
        while last < events:  # a bench may poll: it measures, it does not assert behaviour
            await anyio.sleep(0.02)
            last = int(await redis.hget(key, "last_seq") or 0)
    return events / (time.perf_counter() - began)


class Replicas:
    """Three replicas sharing one Redis; `replace` starts a new one for a killed one."""

    def __init__(self, stack: contextlib.AsyncExitStack, manual: Path, store: str) -> None:
        self._stack, self._manual, self._store = stack, manual, store
        self.live: list[Replica] = []

    async def start(self, extra: tuple[str, ...] = ()) -> Replica:
        one = await self._stack.enter_async_context(replica(self._manual, self._store, *extra))
        self.live.append(one)
        return one

    async def replace(self, dead: Replica) -> None:
        self.live.remove(dead)
        await self.start()


async def run(quick: bool) -> list[Row]:
    events = 50_000 if quick else 200_000
    kills = 4 if quick else 10
    prefix = "mcp-sse-bridge:"
    with tempfile.TemporaryDirectory() as scratch, redis_server(Path(scratch) / "redis") as store:
        async with (
            upstream.running(events, 1_000_000) as base,
            contextlib.AsyncExitStack() as stack,
        ):
            path = manual(Path(scratch), base, events)
            replicas = Replicas(stack, path, store)
            for _ in range(3):
                await replicas.start()
            times = await failover(replicas, kills)
            shared = await read_latency(replicas.live[1].url, 200 if not quick else 50)
            local = await stack.enter_async_context(replica(path, "memory"))
            memory = await read_latency(local.url, 200 if not quick else 50)
            async with Redis.from_url(store) as redis:
                rate = await append_rate(replicas.live[0].url, redis, prefix, events)
    p50, p50_memory = statistics.median(shared), statistics.median(memory)
    return [
        Row(
            "scale-out",
            f"failover after SIGKILL, p50 of {kills}",
            f"{statistics.median(times):.2f} s",
            target=f"lease {LEASE:g} s + 2 s",
            ok=statistics.median(times) < LEASE + 2,
        ),
        Row(
            "scale-out",
            f"failover after SIGKILL, max of {kills}",
            f"{max(times):.2f} s",
            target=f"lease {LEASE:g} s + 2 s",
            ok=max(times) < LEASE + 2,
        ),
        Row(
            "scale-out",
            "read 10 events via a non-owner (Redis), p50",
            f"{p50:.2f} ms",
            "in-memory store",
            f"{p50_memory:.2f} ms",
            p50_memory / p50,
        ),
        Row(
            "scale-out",
            "read 10 events via a non-owner (Redis), p99",
            f"{percentile(shared, 99):.2f} ms",
            "in-memory store",
            f"{percentile(memory, 99):.2f} ms",
            percentile(memory, 99) / percentile(shared, 99),
        ),
        Row(
            "scale-out",
            "events/s appended into Redis, one subscription",
            f"{rate:,.0f}",
            target=f">= {TARGET_APPEND:,}",
            ok=rate >= TARGET_APPEND,
        ),
    ]


async def _alone(quick: bool) -> None:
    """`python -m bench.bench_scaleout [--quick]`: this benchmark alone, in its own RESULTS.md
    section (the full and quick runs include it too)."""
    started = time.perf_counter()
    rows = await run(quick)
    text = report.section("scaleout", rows, [NOTE], time.perf_counter() - started)
    print(text)
    report.write(Path(__file__).parent / "RESULTS.md", "scaleout", text)


if __name__ == "__main__":
    import sys

    anyio.run(_alone, "--quick" in sys.argv[1:])
