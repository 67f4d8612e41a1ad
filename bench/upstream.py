"""Loopback upstream SSE servers for the benchmarks, run in a process of their own.

One raw socket server answers three kinds of stream, chosen by the path, so that every client
under test (our bridge, the reference UTCP client) reads byte-identical responses:

    /firehose/<events>/<every>     pre-built chunked body sent as fast as the socket takes it;
                                   events are `tick`, except every <every>-th one is `match`
    /paced/<events>/<interval_ms>  <events> events, the first at once, then one per interval
    /prices/<events>/<symbols>     pre-built chunked body of `price` events over <symbols>
                                   symbols in turn, sent as fast as the socket takes it
    /latency/<events>/<interval_us> like paced, each event stamped with `time.monotonic_ns()`
                                   just before the write (CLOCK_MONOTONIC is system-wide on
                                   Linux, so the receiving process can subtract it)

It runs as a subprocess so that serving never competes with the measured client for the GIL:
`python -m bench.upstream [EVENTS EVERY]` builds that firehose body up front (so no measured
run pays for it), prints its port on the first stdout line and serves until killed. Each
connection is a plain asyncio protocol and each paced event a timer, not a task with sleeps:
on a 2-core machine the upstream's own CPU competes with the client under test, so it is kept
small (a third of what an anyio task per connection took for 1,000 paced streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Callable
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


def price_event(seq: int, symbols: int) -> bytes:
    """One ~150-byte `price` event of a feed over `symbols` symbols."""
    return (
        b'event: price\nid: %d\ndata: {"seq":%d,"symbol":"SYM%02d","price":%d.%02d,'
        b'"volume":%d,"side":"buy","venue":"XNAS","ts":"2025-01-01T00:00:00.000Z"}\n\n'
        % (seq, seq, seq % symbols, 100 + seq % 400, seq % 100, 1000 + seq % 9000)
    )


@functools.cache
def prices_body(events: int, symbols: int) -> bytes:
    raw = b"".join(price_event(seq, symbols) for seq in range(events))
    framed = [chunk(raw[i : i + CHUNK]) for i in range(0, len(raw), CHUNK)]
    return b"".join(framed) + LAST_CHUNK


class Connection(asyncio.Protocol):
    """One request, answered by the route its path names, then the connection is closed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head: bytes | None = b""  # None once the request's head is complete
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.head is None:  # already answering: the client has nothing more to say
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            if len(self.head) > 65536:
                self.close()
            return
        head, self.head = self.head, None
        try:
            _, kind, first, second = head.split(b" ", 2)[1].split(b"?")[0].split(b"/")
            route, numbers = ROUTES[kind], (int(first), int(second))
        except (LookupError, ValueError):  # not one of our paths
            self.write(NOT_FOUND)
            self.close()
            return
        route(self, *numbers)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:  # a client going away is normal at max_events
            self.timer.cancel()
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def every(self, seconds: float, count: int, event: Callable[[int], bytes]) -> None:
        """The stream's head, then `event(seq)` for seq in range(count), the first at once and
        then one per period, then the end of the body."""
        loop = asyncio.get_running_loop()
        start = loop.time()

        def send(seq: int) -> None:
            if seq < count:
                self.write(chunk(event(seq)))
            if seq + 1 < count:
                self.timer = loop.call_at(start + (seq + 1) * seconds, send, seq + 1)
            else:
                self.write(LAST_CHUNK)
                self.close()

        self.write(HEAD)
        send(0)


def serve_firehose(connection: Connection, events: int, every: int) -> None:
    connection.write(HEAD + firehose_body(events, every))
    connection.close()  # after the body: asyncio sends what is buffered first


def serve_prices(connection: Connection, events: int, symbols: int) -> None:
    connection.write(HEAD + prices_body(events, symbols))
    connection.close()


def serve_paced(connection: Connection, events: int, interval_ms: int) -> None:
    connection.every(interval_ms / 1000, events, paced_event)


def serve_latency(connection: Connection, events: int, interval_us: int) -> None:
    connection.every(interval_us / 1e6, events, stamped_event)


def paced_event(seq: int) -> bytes:
    return b'id: %d\ndata: {"seq":%d}\n\n' % (seq, seq)


def stamped_event(seq: int) -> bytes:
    """Stamped just before the write, so the receiver measures the path from here."""
    return b'id: %d\ndata: {"sent_ns":%d}\n\n' % (seq, time.monotonic_ns())


ROUTES: dict[bytes, Callable[[Connection, int, int], None]] = {
    b"firehose": serve_firehose,
    b"prices": serve_prices,
    b"paced": serve_paced,
    b"latency": serve_latency,
}


async def main(prebuild: list[int]) -> None:
    if prebuild:
        firehose_body(*prebuild)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


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
        asyncio.run(main([int(arg) for arg in sys.argv[1:3]]))
    except KeyboardInterrupt:
        sys.exit(0)
