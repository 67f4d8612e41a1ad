"""Loopback upstream SSE servers for the benchmarks, run in a process of their own.

One raw anyio socket server answers three kinds of stream, chosen by the path, so that every
client under test (our bridge, the reference UTCP client) reads byte-identical responses:

    /firehose/<events>/<every>     pre-built chunked body sent as fast as the socket takes it;
                                   events are `tick`, except every <every>-th one is `match`
    /paced/<events>/<interval_ms>  <events> events, the first at once, then one per interval
    /latency/<events>/<interval_us> like paced, each event stamped with `time.monotonic_ns()`
                                   just before the write (CLOCK_MONOTONIC is system-wide on
                                   Linux, so the receiving process can subtract it)

It runs as a subprocess so that serving never competes with the measured client for the GIL:
`python -m bench.upstream [EVENTS EVERY]` builds that firehose body up front (so no measured
run pays for it), prints its port on the first stdout line and serves until killed.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

ROOT = Path(__file__).resolve().parent.parent

CHUNK = 64 * 1024
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """Frame `data` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def firehose_event(seq: int, every: int) -> bytes:
    """One ~150-byte event; the every-th (1-based) is of type `match`."""
    kind = b"match" if (seq + 1) % every == 0 else b"tick"
    return (
        b'event: %s\nid: %d\ndata: {"seq":%d,"symbol":"SYM%03d","price":%d.%02d,'
        b'"volume":%d,"side":"buy","venue":"XNAS","ts":"2025-01-01T00:00:00.000Z"}\n\n'
        % (kind, seq, seq, seq % 500, 100 + seq % 400, seq % 100, 1000 + seq % 9000)
    )


@functools.cache
def firehose_body(events: int, every: int) -> bytes:
    """The whole chunked body, built once per shape so that serving is a single send."""
    raw = b"".join(firehose_event(seq, every) for seq in range(events))
    framed = [chunk(raw[i : i + CHUNK]) for i in range(0, len(raw), CHUNK)]
    return b"".join(framed) + LAST_CHUNK


async def serve_firehose(stream: anyio.abc.ByteStream, events: int, every: int) -> None:
    await stream.send(HEAD + firehose_body(events, every))


async def serve_paced(stream: anyio.abc.ByteStream, events: int, interval_ms: int) -> None:
    await stream.send(HEAD)
    for seq in range(events):
        if seq:
            await anyio.sleep(interval_ms / 1000)
        await stream.send(chunk(b'id: %d\ndata: {"seq":%d}\n\n' % (seq, seq)))
    await stream.send(LAST_CHUNK)


async def serve_latency(stream: anyio.abc.ByteStream, events: int, interval_us: int) -> None:
    await stream.send(HEAD)
    for seq in range(events):
        if seq:
            await anyio.sleep(interval_us / 1e6)
        stamp = time.monotonic_ns()
        await stream.send(chunk(b'id: %d\ndata: {"sent_ns":%d}\n\n' % (seq, stamp)))
    await stream.send(LAST_CHUNK)


ROUTES = {b"firehose": serve_firehose, b"paced": serve_paced, b"latency": serve_latency}


async def handle(stream: anyio.abc.SocketStream) -> None:
    """Answer one request, then close (Connection: close keeps every call on its own socket)."""
    async with stream:
        try:
            head = await BufferedByteReceiveStream(stream).receive_until(b"\r\n\r\n", 65536)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, OSError):
            return
        try:
            _, kind, first, second = head.split(b" ", 2)[1].split(b"?")[0].split(b"/")
            route, numbers = ROUTES[kind], (int(first), int(second))
        except (LookupError, ValueError):  # not one of our paths
            await stream.send(NOT_FOUND)
            return
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            await route(stream, *numbers)  # a client going away is normal at max_events


async def main(prebuild: list[int]) -> None:
    if prebuild:
        firehose_body(*prebuild)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0, backlog=4096)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(port, flush=True)
    await listener.serve(handle)


@contextlib.asynccontextmanager
async def running(*prebuild: int) -> AsyncIterator[str]:
    """Start the server process (optionally pre-building a firehose); yield its base URL."""
    command = [sys.executable, "-m", "bench.upstream", *map(str, prebuild)]
    async with await anyio.open_process(command, cwd=ROOT, stderr=None) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 16)
            port = int(line)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.kill()


if __name__ == "__main__":
    try:
        anyio.run(main, [int(arg) for arg in sys.argv[1:3]])
    except KeyboardInterrupt:
        sys.exit(0)
