"""Network faults through the whole bridge, against upstreams scripted byte by byte.

The upstreams are raw loopback TCP (and TLS) listeners, so every byte and every way a
connection ends (FIN, half-close, reset with SO_LINGER 0, never reading) is the test's choice.
Calls go through `Bridge.call`, and a few through the MCP server over stdio (a real
`python -m mcp_sse_bridge` process and the SDK's client). For every fault: the call ends within
its budget, the result or the typed error says what happened and where, events are neither
lost nor repeated when the upstream honours Last-Event-ID, the client's socket to the upstream
is closed once the call is over (checked in /proc, Linux only), memory stays bounded, and
nothing is logged as an error or printed as a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import socket
import ssl
import struct
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream
from mcp.client.stdio import StdioServerParameters, stdio_client

from mcp_sse_bridge.calls.batch import Batch, OnEvent
from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.errors import BridgeError, ConnectError, UpstreamError
from mcp_sse_bridge.manual import parse_manual
from mcp_sse_bridge.manual.variables import Variables

from .acceptance.results import text_of
from .sse_server import serving

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform != "linux", reason="SO_LINGER resets and /proc are Linux's"),
]

MARGIN = 1.0  # seconds a call may run past its budget on this shared 2-core machine
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"  # the last chunk: a clean end (the upstream would take another request)
GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
PROC_NET = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def numbered(first: int, last: int, data: bytes = b"") -> bytes:
    """Events `first`..`last`, each with its number as id."""
    return b"".join(b'id: %d\ndata: {"n": %d%s}\n\n' % (n, n, data) for n in range(first, last + 1))


# -- scripted upstreams ------------------------------------------------------------------------


class Conn:
    """One accepted connection, as a handler scripts it."""

    def __init__(self, stream: anyio.abc.ByteStream, raw: socket.socket, log: list[bytes]) -> None:
        self.stream = stream
        self.raw = raw
        self.resume_from = 0  # the Last-Event-ID the request carried, as a number
        self._reader = BufferedByteReceiveStream(stream)
        self._log = log
        self._put_back: bytes | None = None

    async def request(self) -> bytes:
        """The next request's head (the one put back, if any)."""
        head, self._put_back = self._put_back, None
        if head is None:
            head = await self._reader.receive_until(b"\r\n\r\n", 1 << 20)
            self._log.append(head)
        self.resume_from = resumes_from(head)
        return head

    def put_back(self, head: bytes) -> None:
        """For a handler that read the request to choose another handler."""
        self._put_back = head

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    def reset(self) -> None:
        """Make the coming close a reset (RST) instead of a FIN."""
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def hold(self) -> None:
        """Read (and drop) whatever comes until the client closes or resets the connection."""
        with contextlib.suppress(*GONE):
            while True:
                await self._reader.receive()


Handler = Callable[[Conn], Awaitable[None]]


def resumes_from(head: bytes) -> int:
    """The Last-Event-ID a request carries, as a number (0 without one)."""
    found = re.search(rb"(?im)^last-event-id: *(\d+)", head)
    return int(found[1]) if found else 0


@dataclass
class Upstream:
    port: int
    scheme: str
    connections: int = 0  # accepted so far
    open: int = 0  # handlers still running
    requests: list[bytes] = field(default_factory=list)
    _idle: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/events"

    async def wait_all_closed(self, timeout: float = 1.0) -> None:
        """Until every connection has ended on the server's side too."""
        with anyio.fail_after(timeout):
            while self.open:
                await self._idle.wait()


@contextlib.asynccontextmanager
async def upstream(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Upstream]:
    """A loopback listener running `handler` for each connection, plain or with TLS."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Upstream(port, "https" if tls else "http")

    async def serve_one(connection: anyio.abc.SocketStream) -> None:
        server.connections += 1
        server.open += 1
        if server._idle.is_set():
            server._idle = anyio.Event()
        raw = connection.extra(anyio.abc.SocketAttribute.raw_socket)
        try:
            async with connection:
                stream: anyio.abc.ByteStream = connection
                if tls is not None:
                    stream = await TLSStream.wrap(
                        connection, server_side=True, ssl_context=tls, standard_compatible=False
                    )
                await handler(Conn(stream, raw, server.requests))
        except (*GONE, anyio.IncompleteRead, anyio.DelimiterNotFound, ssl.SSLError):
            pass  # the client left mid-script, or refused our certificate
        finally:
            server.open -= 1
            if not server.open:
                server._idle.set()

    async with serving(listener, serve_one):
        yield server


# -- the client's side -------------------------------------------------------------------------


def open_sockets(port: int, pid: int | str = "self") -> int:
    """TCP sockets process `pid` holds open to loopback `port` (from /proc, Linux only)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in PROC_NET:
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rpartition(":")[2], 16)
            count += remote_port == port and fields[9] in inodes
    return count


async def assert_sockets_closed(port: int, pid: int | str = "self") -> None:
    """Within a second, no socket to `port` is left open (closing takes a loop iteration)."""
    for _ in range(100):
        if not open_sockets(port, pid):
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"a socket to port {port} is still open 1 s after the call ended")


@pytest.fixture(autouse=True)
def no_logged_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing logged as an error or with a traceback (asyncio reports lost exceptions so)."""
    yield
    bad = [r for r in caplog.records if r.levelno >= 40 or r.exc_info]
    assert not bad, [record.getMessage() for record in bad]


MANUAL_INPUTS = {"type": "object", "properties": {"body": {"type": "string"}}}


def manual_tool(name: str, url: str, **template: Any) -> dict[str, Any]:
    call_template = {"call_template_type": "sse", "url": url, "retry_timeout": 10, **template}
    return {
        "name": name,
        "description": f"Fault {name}.",
        "inputs": MANUAL_INPUTS,
        "tool_call_template": call_template,
    }


def make_bridge(url: str, limits: Limits | None = None, **template: Any) -> Bridge:
    document = {"utcp_version": "1.0.1", "tools": [manual_tool("feed", url, **template)]}
    manual = parse_manual(json.dumps(document), name="faults", source="test", trusted=True)
    return Bridge([manual], variables=Variables({}, {}), limits=limits or Limits())


async def timed_call(
    bridge: Bridge, arguments: dict[str, Any], on_event: OnEvent | None = None
) -> tuple[Batch | BridgeError, float]:
    """One call's outcome (a batch or the typed error, nothing else) and its duration; the
    call may not outlive its max_seconds by more than MARGIN."""
    started = anyio.current_time()
    with anyio.fail_after(arguments["max_seconds"] + MARGIN):
        try:
            outcome: Batch | BridgeError = await bridge.call("feed", arguments, on_event=on_event)
        except BridgeError as exc:
            outcome = exc
    return outcome, anyio.current_time() - started


def ids(batch: Batch) -> list[str]:
    return [event["id"] for event in batch.events]


def first_ids(count: int) -> list[str]:
    return [str(n) for n in range(1, count + 1)]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A TLS upstream's context, its CA trusted by bridges opened from now on (SSL_CERT_FILE
    is what httpcore2's default context reads)."""
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    return server_context(ca)


# -- the scripts -------------------------------------------------------------------------------


async def never_answers(conn: Conn) -> None:
    await conn.request()
    await conn.hold()


async def headers_byte_by_byte_forever(conn: Conn) -> None:
    await conn.request()
    for byte in HEAD:  # 90 bytes, 4.5 s: far beyond every budget below
        await conn.send(bytes([byte]))
        await anyio.sleep(0.05)


async def everything_byte_by_byte(conn: Conn) -> None:
    conn.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one segment per byte
    await conn.request()
    for byte in HEAD + chunk(numbered(1, 2)) + END:
        await conn.send(bytes([byte]))
        await anyio.sleep(0.001)
    await conn.hold()


async def headers_then_silence(conn: Conn) -> None:
    await conn.request()
    await conn.send(HEAD)
    await conn.hold()


async def close_at_once(conn: Conn) -> None:
    pass


async def reset_mid_headers(conn: Conn) -> None:
    await conn.request()
    await conn.send(HEAD[:30])
    conn.reset()


def dropping(how: str, drops: int = 3, last: int = 10) -> Handler:
    """Two events per connection, then a fault; the connection after `drops` of them sends the
    rest up to `last` and ends cleanly. Resumes after the request's Last-Event-ID."""

    connections = 0

    async def handler(conn: Conn) -> None:
        nonlocal connections
        connections += 1
        await conn.request()
        first = conn.resume_from + 1
        await conn.send(HEAD)
        if connections > drops:
            await conn.send(chunk(numbered(first, last)) + END)
            return await conn.hold()
        events = numbered(first, first + 1)
        if how == "reset mid-chunk":  # the chunk promises 40 bytes more than come
            await conn.send(b"%x\r\n%s" % (len(events) + 40, events))
        elif how == "reset mid-event":  # the third event's id and half its data, no blank line
            await conn.send(chunk(events + b'id: %d\ndata: {"n":' % (first + 2)))
        else:  # a complete chunk and event, then FIN: no last chunk, so a cut-short body
            await conn.send(chunk(events))
            await conn.stream.send_eof()
            return await conn.hold()
        await wait_until_received(conn)
        conn.reset()

    return handler


async def wait_until_received(conn: Conn) -> None:
    """Until the client's kernel has acknowledged all we sent, so that the reset cannot
    overtake our data (a reset discards what the peer has not yet received)."""
    for _ in range(1000):
        if not _unacknowledged(conn.raw):
            return
        await anyio.sleep(0.001)


def _unacknowledged(sock: socket.socket) -> int:
    siocoutq = 0x5411  # Linux ioctl: bytes in the send queue not yet acknowledged
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), siocoutq, b"\0\0\0\0"))[0]


async def garbage(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http\r\n\r\n")
    await conn.hold()


async def http10_until_close(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
    await conn.send(numbered(1, 3))  # no length, no chunks: the close ends the body


@dataclass
class Case:
    handler: Handler
    arguments: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    template: dict[str, Any] = field(default_factory=dict)
    error: type[BridgeError] | None = None
    says: str = ""  # a regex the error must match, "{url}" for the upstream's URL
    stop_reason: str = "closed"
    events: int = 0  # the batch holds events 1..n, in order, once each
    reconnects: int = 0
    lasts: float = 0.0  # the call takes at least this long (a time bound ended it)


CASES = {
    "accepts and never answers (connect timeout)": Case(
        never_answers,
        limits=Limits(connect_timeout=0.3),
        error=ConnectError,
        says=r"No response headers from GET {url} within 0\.3 s\. Check that the server is up",
        lasts=0.3,
    ),
    "accepts and never answers (max_seconds)": Case(
        never_answers,
        {"max_seconds": 0.3},
        error=ConnectError,
        says=r"No response from the upstream \(GET {url}\) within 0\.3 s \(max_seconds\).*"
        r"never established",
        lasts=0.3,
    ),
    "headers byte by byte, slower than the connect timeout": Case(
        headers_byte_by_byte_forever,
        limits=Limits(connect_timeout=0.3),
        error=ConnectError,
        says=r"No response headers from GET {url} within 0\.3 s",
        lasts=0.3,
    ),
    "the whole stream byte by byte": Case(everything_byte_by_byte, events=2),
    "headers then nothing (max_seconds)": Case(
        headers_then_silence, {"max_seconds": 0.3}, stop_reason="max_seconds", lasts=0.3
    ),
    "headers then nothing (idle)": Case(
        headers_then_silence, limits=Limits(idle_seconds=0.3), stop_reason="idle", lasts=0.3
    ),
    "closes right after accept": Case(
        close_at_once,
        error=ConnectError,
        says=r"Cannot connect to GET {url}: Server disconnected without sending a response",
    ),
    "resets mid-headers": Case(
        reset_mid_headers,
        error=ConnectError,
        says=r"Cannot connect to GET {url}: .*Connection reset by peer",
    ),
    "resets mid-chunk": Case(dropping("reset mid-chunk"), events=10, reconnects=3),
    "resets mid-event": Case(dropping("reset mid-event"), events=10, reconnects=3),
    "half-closes after a complete event": Case(dropping("half-close"), events=10, reconnects=3),
    "resets mid-chunk, reconnect off": Case(
        dropping("reset mid-chunk"),
        template={"reconnect": False},
        stop_reason="error",
        events=2,
    ),
    "garbage instead of HTTP": Case(
        garbage,
        error=ConnectError,
        says=r"Cannot connect to GET {url}: illegal status line: 'SSH-2\.0-OpenSSH_9\.6'\. "
        r"The server did not answer with HTTP/1\.1",
    ),
    "HTTP/1.0 without length, ended by close": Case(http10_until_close, events=3),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_fault_ends_the_call_in_time_with_a_clear_outcome(case: Case) -> None:
    arguments = {"max_events": 100, "max_seconds": 3, **case.arguments}
    async with upstream(case.handler) as server:
        async with make_bridge(server.url, case.limits, **case.template) as bridge:
            outcome, took = await timed_call(bridge, arguments)
        await assert_sockets_closed(server.port)
        await server.wait_all_closed()
    assert case.lasts <= took < case.lasts + MARGIN
    if case.error is not None:
        assert isinstance(outcome, case.error), outcome
        assert re.search(case.says.format(url=re.escape(server.url)), str(outcome)), outcome
        assert outcome.hint, "an error says what to do"
        return
    assert isinstance(outcome, Batch), outcome
    assert (outcome.stop_reason, outcome.reconnects) == (case.stop_reason, case.reconnects)
    assert ids(outcome) == first_ids(case.events)  # none lost, none twice
    assert [resumes_from(head) for head in server.requests][1:] == [2, 4, 6][: case.reconnects]
    if case.stop_reason == "error":
        assert outcome.error and "dropped the connection mid-stream" in outcome.error


async def test_a_server_that_never_reads_a_large_body_does_not_keep_the_socket() -> None:
    """A POST body (8 MB, via body_field) the upstream never reads: the call ends at its connect
    timeout, and the socket is closed at once rather than left open until the kernel could
    flush our buffered rest of the body (which, here, is never)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel accepts, nobody reads
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/events"
        async with make_bridge(url, Limits(connect_timeout=0.3), body_field="body") as bridge:
            outcome, took = await timed_call(bridge, {"body": "x" * (8 << 20), "max_seconds": 3})
            assert isinstance(outcome, ConnectError), outcome
            assert f"No response headers from POST {url} within 0.3 s" in str(outcome)
            await assert_sockets_closed(port)  # while the bridge is still open
    assert took < 0.3 + MARGIN


async def test_a_certificate_nobody_trusts_is_a_clear_connect_error(ca: trustme.CA) -> None:
    async with upstream(never_answers, tls=server_context(ca)) as server:
        async with make_bridge(server.url) as bridge:
            outcome, took = await timed_call(bridge, {"max_seconds": 3})
        await assert_sockets_closed(server.port)
        await server.wait_all_closed()
    assert isinstance(outcome, ConnectError), outcome
    assert f"Cannot connect to GET {server.url}: [SSL: CERTIFICATE_VERIFY_FAILED]" in str(outcome)
    assert "point SSL_CERT_FILE at a PEM bundle that includes that CA" in str(outcome)
    assert took < MARGIN


async def test_https_to_a_plain_http_server_is_a_clear_connect_error() -> None:
    async def plain_http(conn: Conn) -> None:
        await conn.stream.receive()  # a TLS ClientHello: no HTTP request line
        await conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await conn.hold()

    async with upstream(plain_http) as server:
        https = server.url.replace("http:", "https:")
        async with make_bridge(https) as bridge:
            outcome, _ = await timed_call(bridge, {"max_seconds": 3})
        await assert_sockets_closed(server.port)
    assert isinstance(outcome, ConnectError), outcome
    assert f"Cannot connect to GET {https}: [SSL: WRONG_VERSION_NUMBER]" in str(outcome)


@pytest.mark.parametrize("how", ["reset mid-chunk", "reset mid-event"])
async def test_tls_drops_resume_without_loss(
    how: str, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same resets below TLS (no close_notify): the stream resumes after the last event."""
    tls = trusted(ca, tmp_path, monkeypatch)
    async with upstream(dropping(how), tls) as server:
        async with make_bridge(server.url) as bridge:
            outcome, took = await timed_call(bridge, {"max_events": 100, "max_seconds": 3})
        await assert_sockets_closed(server.port)
    assert isinstance(outcome, Batch), outcome
    assert (outcome.stop_reason, outcome.reconnects) == ("closed", 3)
    assert ids(outcome) == first_ids(10)
    assert took < MARGIN


# -- volume, keep-alive, cancellation, load ----------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_flood_is_held_back_while_progress_is_slow(
    scheme: str, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream pushes 1 KB events as fast as it can (up to 32 MB) while each event's
    progress report takes 2 ms: what the bridge buffers stays bounded (the socket stops being
    read), no event is lost, and the call ends at its max_seconds."""
    tls = trusted(ca, tmp_path, monkeypatch) if scheme == "https" else None
    padding = b', "pad": "' + b"x" * 1000 + b'"'
    sent = 0

    async def flood(conn: Conn) -> None:
        nonlocal sent
        await conn.request()
        await conn.send(HEAD)
        for first in range(1, 32_000, 64):
            block = chunk(numbered(first, first + 63, padding))
            await conn.send(block)
            sent += len(block)
        await conn.send(END)
        await conn.hold()

    async def slow_progress(event: dict[str, Any], count: int) -> None:
        await anyio.sleep(0.002)

    async with upstream(flood, tls) as server:
        bridge = make_bridge(server.url, Limits(max_bytes=None))
        async with bridge:
            tracemalloc.start()
            try:
                arguments = {"max_events": 1000, "max_seconds": 0.5}
                outcome, took = await timed_call(bridge, arguments, on_event=slow_progress)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            await assert_sockets_closed(server.port)
        await server.wait_all_closed()
    assert isinstance(outcome, Batch), outcome
    assert outcome.stop_reason == "max_seconds" and took < 0.5 + MARGIN
    assert 10 < outcome.count < 1000
    assert ids(outcome) == first_ids(outcome.count)
    assert sent > 2 * outcome.count * len(padding)  # the upstream ran far ahead of the reader
    mib = 2**20
    print(
        f"\n{scheme} flood: {sent / mib:.1f} MiB sent, {outcome.count} read, {peak / mib:.1f} MiB"
    )
    assert peak < 4 * mib, f"{peak / mib:.1f} MiB traced at the peak"


async def test_a_clean_end_closes_the_connection_though_the_upstream_would_keep_it() -> None:
    """Two calls in a row to an upstream that would answer both on one connection: the first
    stream ends cleanly, and its connection is closed with the call all the same (the upstream
    sees a FIN, not a reset, and no socket is left); the second call opens its own."""
    answered: list[int] = []  # per connection, once the bridge closed it

    async def keep_alive(conn: Conn) -> None:
        count = 0
        with contextlib.suppress(anyio.IncompleteRead):  # the bridge's FIN
            while True:
                await conn.request()
                await conn.send(HEAD + chunk(numbered(1, 2)) + END)
                count += 1
        answered.append(count)

    async with upstream(keep_alive) as server, make_bridge(server.url) as bridge:
        for calls in (1, 2):
            outcome, _ = await timed_call(bridge, {"max_seconds": 3})
            assert isinstance(outcome, Batch) and ids(outcome) == ["1", "2"], outcome
            await server.wait_all_closed()
            await assert_sockets_closed(server.port)
            assert answered == [1] * calls
    assert server.connections == 2


@pytest.mark.parametrize("phase", ["waiting for headers", "mid-body", "TLS handshake"])
async def test_a_cancelled_call_closes_its_socket_at_once(phase: str, ca: trustme.CA) -> None:
    """The caller gives up (an MCP client's cancellation): the upstream sees the connection
    close within a second, and the bridge keeps no socket."""
    asked, got_event = anyio.Event(), anyio.Event()

    async def handler(conn: Conn) -> None:
        await conn.request()
        if phase == "mid-body":
            await conn.send(HEAD + chunk(numbered(1, 1)))
        asked.set()
        await conn.hold()

    async def on_event(event: dict[str, Any], count: int) -> None:
        got_event.set()

    async def call(bridge: Bridge) -> None:
        await bridge.call("feed", {"max_seconds": 5}, on_event=on_event)

    if phase == "TLS handshake":  # a listener whose kernel accepts, and nobody answers TLS
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            async with make_bridge(f"https://127.0.0.1:{port}/events") as bridge:
                with anyio.move_on_after(0.3):
                    await bridge.call("feed", {"max_seconds": 5})
                await assert_sockets_closed(port)
        return
    async with upstream(handler) as server, make_bridge(server.url) as bridge:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, bridge)
            with anyio.fail_after(2):
                await (got_event if phase == "mid-body" else asked).wait()
            tg.cancel_scope.cancel()
        await server.wait_all_closed(timeout=1.0)
        await assert_sockets_closed(server.port)


COMMENTS = chunk((b": " + b"f" * 1022 + b"\n") * 1024)  # 1 MiB
FAULTS = [
    "events",
    "reset mid-chunk",
    "reset mid-event",
    "half-close",
    "reset mid-headers",
    "never answers",
    "headers then nothing",
    "close at once",
    "garbage",
    "http/1.0",
    "slow headers",
    "flood",
]


async def test_300_concurrent_calls_with_random_faults_end_in_time() -> None:
    """Every connection (first or reconnect) meets a fault drawn at random; every call ends
    within its max_seconds with a batch or a typed error, batches hold consecutive events from
    the first (the upstream honours Last-Event-ID), and no socket is left once it is over."""
    rng = random.Random(300)
    seen = dict.fromkeys(FAULTS, 0)

    async def handler(conn: Conn) -> None:
        fault = rng.choice(FAULTS)
        seen[fault] += 1
        if fault == "close at once":
            return
        await conn.request()
        first = conn.resume_from + 1
        if fault == "garbage":
            await conn.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        if fault in ("never answers", "garbage"):
            return await conn.hold()
        if fault == "reset mid-headers":
            await conn.send(HEAD[:30])
            return conn.reset()
        if fault == "slow headers":
            for byte in HEAD:
                await conn.send(bytes([byte]))
                await anyio.sleep(0.005)
        elif fault == "http/1.0":
            await conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            return await conn.send(numbered(first, first + 2))
        else:
            await conn.send(HEAD)
        if fault == "headers then nothing":
            return await conn.hold()
        events = numbered(first, first + 1)
        if fault == "reset mid-chunk":
            await conn.send(b"%x\r\n%s" % (len(events) + 40, events))
        elif fault == "reset mid-event":
            await conn.send(chunk(events + b"id: %d\ndata: {" % (first + 2)))
        elif fault == "half-close":
            await conn.send(chunk(events))
            await conn.stream.send_eof()
            return await conn.hold()
        elif fault == "flood":  # a megabyte of comments as fast as it goes, then the events
            await conn.send(COMMENTS + chunk(events) + END)
            return await conn.hold()
        else:
            await conn.send(chunk(events) + END)
            return await conn.hold()
        await wait_until_received(conn)
        conn.reset()

    outcomes: list[tuple[Batch | BridgeError, float]] = []
    async with upstream(handler) as server:
        bridge = make_bridge(server.url, Limits(connect_timeout=0.8))

        async def one() -> None:
            outcomes.append(await timed_call(bridge, {"max_events": 5, "max_seconds": 1.0}))

        with anyio.fail_after(15):
            async with bridge, anyio.create_task_group() as tg:
                for _ in range(300):
                    tg.start_soon(one)
            await assert_sockets_closed(server.port)
            await server.wait_all_closed(timeout=2.0)
    assert len(outcomes) == 300
    assert all(seen.values()), seen
    batches = [outcome for outcome, _ in outcomes if isinstance(outcome, Batch)]
    errors = [outcome for outcome, _ in outcomes if isinstance(outcome, BridgeError)]
    assert len(batches) + len(errors) == 300 and batches and errors
    for batch in batches:
        assert ids(batch) == first_ids(batch.count), ids(batch)
    for error in errors:
        assert isinstance(error, UpstreamError) and error.hint, error
    slowest = max(took for _, took in outcomes)
    kinds = sorted({type(error).__name__ for error in errors})
    print(f"\n300 calls: {len(batches)} batches, {len(errors)} {kinds}, slowest {slowest:.2f} s")
    assert slowest < 1.0 + MARGIN


# -- the MCP server over stdio -----------------------------------------------------------------


def bridge_children() -> list[int]:
    """Processes this test process started (the stdio bridge)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == os.getpid():
                    children.append(int(entry.name))
    return children


async def test_faults_through_the_mcp_server_over_stdio(tmp_path: Path, ca: trustme.CA) -> None:
    """A host's session with a bridge process: each fault is one line of error text (or the
    whole batch after drops), a call the host gives up on closes its upstream, a body the
    upstream never reads does not keep the socket, and the process's stderr holds no traceback."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts, nobody reads
    gave_up = anyio.Event()

    async def hold_then_note(conn: Conn) -> None:
        await headers_then_silence(conn)
        gave_up.set()

    routes: dict[bytes, Handler] = {
        b"/reset": reset_mid_headers,
        b"/garbage": garbage,
        b"/drops": dropping("reset mid-event"),
        b"/hold": hold_then_note,
    }

    async def route(conn: Conn) -> None:
        head = await conn.request()
        conn.put_back(head)
        await routes[head.split(b" ")[1]](conn)

    with silent:
        silent_port = silent.getsockname()[1]
        async with upstream(route) as plain, upstream(never_answers, server_context(ca)) as tls:
            base = f"http://127.0.0.1:{plain.port}"
            tools = [
                manual_tool("reset", f"{base}/reset"),
                manual_tool("garbage", f"{base}/garbage"),
                manual_tool("drops", f"{base}/drops"),
                manual_tool("hold", f"{base}/hold"),
                manual_tool("tls", tls.url),
                manual_tool("post", f"http://127.0.0.1:{silent_port}/events", body_field="body"),
            ]
            manual = tmp_path / "faults.json"
            manual.write_text(json.dumps({"utcp_version": "1.0.1", "tools": tools}))
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "mcp_sse_bridge", "--manual", str(manual)]
            )
            stderr_path = tmp_path / "stderr.txt"
            with stderr_path.open("w") as stderr, anyio.fail_after(15):
                async with mcp.Client(stdio_client(params, errlog=stderr), mode="legacy") as host:
                    expected = {
                        "reset": "Connection reset by peer",
                        "garbage": "illegal status line",
                        "tls": "CERTIFICATE_VERIFY_FAILED",
                    }
                    for name, says in expected.items():
                        result = await host.call_tool(name, {"max_seconds": 3})
                        text = text_of(result)
                        assert result.is_error and says in text and "\n" not in text, text

                    (pid,) = bridge_children()
                    with pytest.raises(mcp.MCPError, match=r"(?i)timed out"):
                        await host.call_tool("hold", {"max_seconds": 30}, read_timeout_seconds=0.5)
                    with anyio.fail_after(1):
                        await gave_up.wait()
                    await assert_sockets_closed(plain.port, pid)

                    # Its last connection ends cleanly, and is closed with the call all the same.
                    result = await host.call_tool("drops", {"max_events": 20})
                    assert not result.is_error, text_of(result)
                    batch = result.structured_content or {}
                    assert [e["id"] for e in batch["events"]] == first_ids(10)
                    assert batch["reconnects"] == 3
                    await assert_sockets_closed(plain.port, pid)

                    arguments = {"body": "x" * (8 << 20), "max_seconds": 0.5}
                    result = await host.call_tool("post", arguments)
                    assert result.is_error and "within 0.5 s (max_seconds)" in text_of(result)
                    await assert_sockets_closed(silent_port, pid)

    logged = stderr_path.read_text()
    assert not re.search("Traceback|Exception|Error", logged), logged
