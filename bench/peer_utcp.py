"""The reference peer: PyPI `utcp` + `utcp-http`, driven exactly as a UTCP client drives it.

`SseCommunicationProtocol.call_tool_streaming(caller, name, args, SseCallTemplate)` yields the
JSON-decoded data of every event the template's `event_type` keeps. It runs in its own process
(fresh interpreter, own memory watermark), prints one JSON object on stdout and exits:

    python -m bench.peer_utcp firehose URL EVENTS MATCHES
    python -m bench.peer_utcp concurrency URL CALLS EVENTS
    python -m bench.peer_utcp latency URL EVENTS
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from utcp_http.sse_call_template import SseCallTemplate
from utcp_http.sse_communication_protocol import SseCommunicationProtocol

from bench.measure import peak_rss_kib, percentile, rss_kib


async def take(url: str, count: int, event_type: str | None = None) -> list[Any]:
    """One tool call that stops after `count` events, closing the stream like a consumer would."""
    template = SseCallTemplate(name="bench", url=url, event_type=event_type, reconnect=False)
    protocol = SseCommunicationProtocol()
    events: list[Any] = []
    stream = protocol.call_tool_streaming(None, "bench", {}, template)
    async with contextlib.aclosing(stream):
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def firehose(url: str, events: int, matches: int) -> dict[str, Any]:
    await take(url.rsplit("/", 2)[0] + "/100/10", 10, "match")  # warm-up: imports, first connect
    start = time.perf_counter()
    got = await take(url, matches, "match")
    elapsed = time.perf_counter() - start
    return {"elapsed_s": elapsed, "events_per_s": events / elapsed, "matched": len(got)}


async def concurrency(url: str, calls: int, events: int) -> dict[str, Any]:
    await take(url.rsplit("/", 2)[0] + "/1/0", 1)
    baseline = rss_kib()
    completed = 0

    async def one() -> None:
        nonlocal completed
        if len(await take(url, events)) == events:
            completed += 1

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(one)
    elapsed = time.perf_counter() - start
    return {
        "elapsed_s": elapsed,
        "completed": completed,
        "rss_baseline_kib": baseline,
        "rss_peak_kib": peak_rss_kib(),
    }


async def latency(url: str, events: int) -> dict[str, Any]:
    await take(url.rsplit("/", 2)[0] + "/5/0", 5)
    template = SseCallTemplate(name="bench", url=url, reconnect=False)
    stream = SseCommunicationProtocol().call_tool_streaming(None, "bench", {}, template)
    delays_ms: list[float] = []
    async with contextlib.aclosing(stream):
        async for event in stream:
            delays_ms.append((time.monotonic_ns() - event["sent_ns"]) / 1e6)
            if len(delays_ms) == events:
                break
    return {
        "count": len(delays_ms),
        "p50_ms": percentile(delays_ms, 50),
        "p99_ms": percentile(delays_ms, 99),
    }


MODES = {"firehose": firehose, "concurrency": concurrency, "latency": latency}


async def measure(mode: str, url: str, *numbers: int, timeout: float = 120) -> dict[str, Any]:
    """Run one measurement in a fresh peer process; its last stdout line is the result."""
    command = [sys.executable, "-m", "bench.peer_utcp", mode, url, *map(str, numbers)]
    root = Path(__file__).resolve().parent.parent
    with anyio.fail_after(timeout):
        done = await anyio.run_process(command, cwd=root, check=False)
    if done.returncode:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"utcp peer ({mode}) exited {done.returncode}: {reason}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str]) -> None:
    logging.getLogger("utcp_http").setLevel(logging.ERROR)  # the package logs at INFO by default
    mode, url, *numbers = argv
    result = anyio.run(MODES[mode], url, *(int(n) for n in numbers))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
