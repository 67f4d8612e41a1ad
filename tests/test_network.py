"""AsyncioBackend against real loopback servers: TLS, flow control, resets, timeouts, closing.

The servers are raw anyio socket servers started by each test, so every byte on the wire (and
how the connection ends) is the test's choice. Where a test must know what the client's socket
has seen, it waits on the stream's protocol (`_protocol`), never on a clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel
import httpcore2
import httpx2
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from mcp_sse_bridge.upstream.network import HIGH_WATER, AsyncioBackend, AsyncioStream
from mcp_sse_bridge.upstream.transport import StreamTransport

from .acceptance.network import closed_port
from .sse_server import serving

pytestmark = pytest.mark.anyio

SOCKET_READ = 256 * 1024  # the most an asyncio socket transport reads at once (its max_size)

Handler = Callable[[anyio.abc.ByteStream], Awaitable[None]]


@dataclass
class Server:
    port: int
    connections: int = 0  # accepted so far

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/events"


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[Server]:
    """Run `handler(connection)` for each connection to a loopback port, then close it."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = Server(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def serve_one(connection: anyio.abc.SocketStream) -> None:
        server.connections += 1
        async with connection:
            await handler(connection)

    async with serving(listener, serve_one):
        yield server


@contextlib.asynccontextmanager
async def tls_server(cert: trustme.LeafCert, handler: Handler) -> AsyncIterator[Server]:
    """`tcp_server` speaking TLS with `cert`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def handshake_first(connection: anyio.abc.ByteStream) -> None:
        try:
            tls = await TLSStream.wrap(
                connection, server_side=True, ssl_context=context, standard_compatible=False
            )
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream):
            return  # the client refused the certificate
        await handler(tls)

    async with tcp_server(handshake_first) as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def connect(server: Server) -> AsyncioStream:
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=2)
    assert isinstance(stream, AsyncioStream)
    return stream


async def read_exactly(stream: httpcore2.AsyncNetworkStream, size: int) -> bytes:
    received = b""
    with anyio.fail_after(2):
        while len(received) < size and (data := await stream.read(size - len(received))):
            received += data
    return received


async def wait_for_news(stream: AsyncioStream) -> None:
    """Wait until the client's socket has data or has ended, as httpcore2's check would see."""
    with anyio.fail_after(2):
        while not stream.get_extra_info("is_readable"):
            await stream._protocol.readable()


async def read_to_end(connection: anyio.abc.ByteStream) -> bytes:
    """What the client sends until it closes cleanly (a reset raises)."""
    received = b""
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            received += await connection.receive()
    return received


async def echo(connection: anyio.abc.ByteStream) -> None:
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            await connection.send(await connection.receive())


async def event_stream(connection: anyio.abc.ByteStream) -> None:
    """Answer one request with three events, chunked, then wait for the client to leave."""
    await BufferedByteReceiveStream(connection).receive_until(b"\r\n\r\n", 65536)
    await connection.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for number in range(3):
        event = b"id: %d\ndata: event %d\n\n" % (number, number)
        await connection.send(b"%x\r\n%s\r\n" % (len(event), event))
    await connection.send(b"0\r\n\r\n")
    with contextlib.suppress(anyio.BrokenResourceError):
        await read_to_end(connection)


def stream_client(ssl_context: ssl.SSLContext | None = None) -> httpx2.AsyncClient:
    transport = StreamTransport(4, ssl_context=ssl_context)
    return httpx2.AsyncClient(transport=transport, timeout=5.0)


# TLS


async def test_an_https_event_stream_through_the_stream_transport(ca: trustme.CA) -> None:
    async with (
        tls_server(ca.issue_cert("127.0.0.1"), event_stream) as server,
        stream_client(trusting(ca)) as http,
        http.stream("GET", server.url("https")) as response,
    ):
        lines = [line async for line in response.aiter_lines()]
        network_stream = response.extensions["network_stream"]
        assert isinstance(network_stream, AsyncioStream)
        assert isinstance(network_stream.get_extra_info("ssl_object"), ssl.SSLObject)
    assert response.status_code == 200
    assert lines == [line for n in range(3) for line in (f"id: {n}", f"data: event {n}", "")]


async def test_a_certificate_for_another_host_is_a_connect_error(ca: trustme.CA) -> None:
    transport = StreamTransport(2, ssl_context=trusting(ca))
    async with (
        tls_server(ca.issue_cert("other.example"), event_stream) as server,
        httpx2.AsyncClient(transport=transport) as http,
    ):
        with anyio.fail_after(5), pytest.raises(httpx2.ConnectError, match="certificate verify"):
            await http.get(server.url("https"))
        assert transport.open_responses == 0
        assert server.connections == 1


async def test_start_tls_gives_an_ssl_object_and_carries_bytes(ca: trustme.CA) -> None:
    async with tls_server(ca.issue_cert("127.0.0.1"), echo) as server:
        plain = await connect(server)
        assert plain.get_extra_info("ssl_object") is None
        stream = await plain.start_tls(trusting(ca), server_hostname="127.0.0.1", timeout=2)
        ssl_object = stream.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        assert ssl_object.server_hostname == "127.0.0.1"
        await stream.write(b"over tls")
        assert await read_exactly(stream, 8) == b"over tls"
        await stream.aclose()


async def test_a_server_that_never_answers_the_handshake_is_a_connect_timeout(
    ca: trustme.CA,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel accepts, nobody answers
        port = listener.getsockname()[1]
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
        assert isinstance(stream, AsyncioStream)
        with anyio.fail_after(2), pytest.raises(httpcore2.ConnectTimeout, match=r"0\.2 s"):
            await stream.start_tls(trusting(ca), server_hostname="127.0.0.1", timeout=0.2)
        assert stream._protocol.transport is not None
        assert stream._protocol.transport.is_closing()


# Flow control and how a connection ends


async def test_a_fast_server_is_held_back_while_the_reader_is_slow() -> None:
    payload = os.urandom(8 * 1024 * 1024)

    async def flood(connection: anyio.abc.ByteStream) -> None:
        await connection.send(payload)
        await read_to_end(connection)  # closing now could drop what its transport still holds

    async with tcp_server(flood) as server:
        stream = await connect(server)
        protocol = stream._protocol
        transport = protocol.transport
        assert transport is not None
        digest, received, peak = hashlib.sha256(), 0, 0
        reading = [transport.is_reading()]
        with anyio.fail_after(5):
            for _ in range(100_000):  # 16 KiB a step, one loop iteration between steps
                await anyio.lowlevel.checkpoint()
                peak = max(peak, protocol.size)  # only a read makes it smaller
                reading.append(transport.is_reading())
                data = await stream.read(16 * 1024)
                reading.append(transport.is_reading())
                digest.update(data)
                received += len(data)
                if received == len(payload):
                    break
        await stream.aclose()
    assert received == len(payload)
    assert digest.digest() == hashlib.sha256(payload).digest()
    assert peak <= HIGH_WATER + SOCKET_READ  # one socket read past the mark at most
    changes = [now for before, now in itertools.pairwise(reading) if before != now]
    assert changes[:2] == [False, True]  # paused, then resumed


async def test_bytes_received_before_a_reset_are_read_before_the_error() -> None:
    payload = os.urandom(100_000)  # below HIGH_WATER: the client's socket is never paused
    reset_now = anyio.Event()

    async def send_then_reset(connection: anyio.abc.ByteStream) -> None:
        await connection.send(payload)
        await reset_now.wait()
        linger = struct.pack("ii", 1, 0)  # close with RST
        connection.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, linger
        )

    async with tcp_server(send_then_reset) as server:
        stream = await connect(server)
        protocol = stream._protocol
        with anyio.fail_after(2):
            while protocol.size < len(payload):
                await protocol.readable()
            reset_now.set()
            while not protocol.ended:
                await protocol.readable()
        assert isinstance(protocol.error, ConnectionResetError)  # all arrived, then the reset
        received = b""
        with pytest.raises(httpcore2.ReadError):
            for _ in range(100):
                data = await stream.read(8192)
                assert data, "a reset must not read as a clean end"
                received += data
        assert received == payload
        with pytest.raises(httpcore2.ReadError):
            await stream.read(8192)
        await stream.aclose()


async def test_a_clean_end_reads_as_empty_bytes_every_time() -> None:
    async def say_bye(connection: anyio.abc.ByteStream) -> None:
        await connection.send(b"bye")
        await connection.send_eof()  # the helper closes it next

    async with tcp_server(say_bye) as server:
        stream = await connect(server)
        assert await read_exactly(stream, 3) == b"bye"
        with anyio.fail_after(2):
            assert await stream.read(1024) == b""
        assert await stream.read(1024) == b""
        assert stream._protocol.error is None
        await stream.aclose()


# Connecting, timeouts, cancellation


async def test_a_refused_connection_is_a_connect_error() -> None:
    with anyio.fail_after(2), pytest.raises(httpcore2.ConnectError):
        await AsyncioBackend().connect_tcp("127.0.0.1", closed_port(), timeout=2)


async def test_a_host_name_is_resolved() -> None:
    async with tcp_server(echo) as server:
        stream = await AsyncioBackend().connect_tcp("localhost", server.port, timeout=2)
        await stream.write(b"ping")
        assert await read_exactly(stream, 4) == b"ping"
        assert stream.get_extra_info("server_addr")[1] == server.port
        await stream.aclose()


async def test_a_read_timeout_on_a_silent_server() -> None:
    async with tcp_server(read_to_end) as server:
        stream = await connect(server)
        started = anyio.current_time()
        with pytest.raises(httpcore2.ReadTimeout, match=r"0\.2 s"):
            await stream.read(1024, timeout=0.2)
        assert 0.19 <= anyio.current_time() - started < 1.5
        await stream.aclose()


async def test_a_read_without_timeout_is_cancelled_by_a_cancel_scope() -> None:
    send_late = anyio.Event()
    ended = anyio.Event()

    async def late(connection: anyio.abc.ByteStream) -> None:
        await send_late.wait()
        await connection.send(b"late")
        await read_to_end(connection)
        ended.set()

    async with tcp_server(late) as server:
        stream = await connect(server)
        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream.read, 1024)
                await anyio.lowlevel.checkpoint()
                assert stream._protocol._waiter is not None  # the read is waiting for data
                tg.cancel_scope.cancel()
            send_late.set()
            assert await stream.read(1024) == b"late"  # the cancelled read left no trace
            await stream.aclose()
            await ended.wait()


# Writing and closing


async def test_writing_after_the_server_closed_is_a_write_error() -> None:
    closed = anyio.Event()

    async def close_at_once(connection: anyio.abc.ByteStream) -> None:
        await connection.aclose()
        closed.set()

    async with tcp_server(close_at_once) as server:
        stream = await connect(server)
        with anyio.fail_after(2):
            await closed.wait()
            with pytest.raises(httpcore2.WriteError):
                for _ in range(100):
                    await stream.write(b"x" * 1024)
                    await anyio.lowlevel.checkpoint()
        await stream.aclose()


async def test_a_write_to_a_server_that_does_not_read_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel accepts, nobody reads
        port = listener.getsockname()[1]
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
        with anyio.fail_after(5), pytest.raises(httpcore2.WriteTimeout, match=r"0\.2 s"):
            for _ in range(1000):  # the socket buffers take a few MB, then writing waits
                await stream.write(b"x" * 65536, timeout=0.2)
        await stream.aclose()


async def test_closing_is_an_end_of_stream_for_the_server() -> None:
    received: list[bytes] = []
    ended = anyio.Event()

    async def until_the_end(connection: anyio.abc.ByteStream) -> None:
        received.append(await read_to_end(connection))
        ended.set()

    async with tcp_server(until_the_end) as server:
        stream = await connect(server)
        await stream.write(b"last words")
        await stream.aclose()
        with anyio.fail_after(1):
            await ended.wait()
    assert received == [b"last words"]


async def test_closing_a_tls_stream_does_not_wait_for_the_server_close_notify(
    ca: trustme.CA,
) -> None:
    """A TLS server that neither reads nor writes sees the socket close at once, not after
    asyncio's 30 s close_notify timeout."""
    closed = anyio.Event()

    async def silent_until_closed(connection: anyio.abc.ByteStream) -> None:
        assert isinstance(connection, TLSStream)
        raw = connection.transport_stream  # below TLS: sees the TCP end whatever TLS says
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                await raw.receive()
        closed.set()

    async with tls_server(ca.issue_cert("127.0.0.1"), silent_until_closed) as server:
        plain = await connect(server)
        stream = await plain.start_tls(trusting(ca), server_hostname="127.0.0.1", timeout=2)
        await stream.aclose()
        with anyio.fail_after(1):
            await closed.wait()


# Idle connections and keep-alive


async def test_an_idle_connection_is_readable_once_the_server_closed_it() -> None:
    close_now = anyio.Event()

    async def close_when_told(connection: anyio.abc.ByteStream) -> None:
        await close_now.wait()

    async with tcp_server(close_when_told) as server:
        stream = await connect(server)
        assert stream.get_extra_info("is_readable") is False
        close_now.set()
        await wait_for_news(stream)
        assert await stream.read(1024) == b""
        await stream.aclose()


async def test_a_close_the_event_loop_has_not_read_yet_makes_the_connection_readable() -> None:
    """httpcore2 asks before reusing an idle connection; a FIN still in the kernel counts."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", listener.getsockname()[1])
        assert isinstance(stream, AsyncioStream)
        server_side, _ = listener.accept()  # already queued by the kernel: does not block
        assert stream.get_extra_info("is_readable") is False
        server_side.close()  # on loopback the FIN reaches the client's socket at once
        # No await in between: the event loop has not seen the FIN, the socket has.
        assert not stream._protocol.ended
        assert stream.get_extra_info("is_readable") is True
        await stream.aclose()


def answer_ok(served: anyio.abc.ObjectSendStream[int]) -> Handler:
    """A keep-alive HTTP/1.1 server: it answers every request on a connection until the client
    closes it, then sends how many it answered (a reset fails the test)."""

    async def handler(connection: anyio.abc.ByteStream) -> None:
        reader = BufferedByteReceiveStream(connection)
        answered = 0
        with contextlib.suppress(anyio.IncompleteRead):  # the client's EOF
            while True:
                await reader.receive_until(b"\r\n\r\n", 65536)
                await connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                answered += 1
        await served.send(answered)

    return handler


async def test_each_request_has_its_own_connection_closed_after_its_response() -> None:
    """The server would answer more on the same connection; StreamTransport closes it with the
    response all the same, and the next request opens another."""
    sending, served = anyio.create_memory_object_stream[int](4)
    async with sending, served, tcp_server(answer_ok(sending)) as server, stream_client() as http:
        for _ in range(2):
            response = await http.get(server.url())
            assert response.text == "ok"
            with anyio.fail_after(1):
                assert await served.receive() == 1  # closed by the client, after one answer
    assert server.connections == 2
