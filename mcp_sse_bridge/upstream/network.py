"""An httpcore2 network backend on asyncio's own transports and protocols.

Why: httpcore2's default backend reads through anyio socket streams, which wrap every read in a
cancel scope (even without a timeout), stop and restart the socket's reader around every read
(two `epoll_ctl` calls), and connect through a happy-eyeballs task group even to a single
address. An event stream is many small reads over a long life, so with 1,000 streams open that
was about a fifth of the bridge's CPU. Here the socket's protocol keeps what arrives in a buffer:
a read takes from it at once, waits only when it is empty, and sets a timer only when httpcore2
asks for a timeout.

- Flow control: reading from the socket pauses while more than `HIGH_WATER` bytes wait in the
  buffer and resumes once the reader has taken it below `LOW_WATER`, so a fast upstream can
  never fill memory faster than the parser drains it.
- Nothing is lost: the bytes that arrived before a reset are all read before the error is.
- Errors are httpcore2's (`ConnectError`, `ReadError`, `WriteError`, the timeouts), so the
  layers above see what the default backend would raise.
- Outside asyncio (trio through anyio) every call goes to httpcore2's own `AnyIOBackend`.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore2

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended delay between address families


class _SocketProtocol(asyncio.Protocol):
    """What one connection has received and not yet been read, and how it ended."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.offset = 0  # bytes of chunks[0] already read
        self.size = 0  # bytes not yet read
        self.ended = False  # EOF or connection lost: nothing more will arrive
        self.error: Exception | None = None  # why the connection was lost, if not cleanly
        self.paused = False
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close the transport: an HTTP client has nothing left to say after EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def readable(self) -> None:
        """Wait until there is data or the connection has ended."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drained(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark again."""
        if self._drained is not None:
            await asyncio.shield(self._drained)

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of what has arrived, in order; b"" once a clean end is reached."""
        if not self.chunks:
            if self.error is not None:
                raise httpcore2.ReadError(str(self.error) or type(self.error).__name__)
            return b""
        first, start = self.chunks[0], self.offset
        whole = start == 0 and len(first) <= max_bytes  # the common case: no copy
        data = first if whole else first[start : start + max_bytes]
        if start + len(data) < len(first):
            self.offset = start + len(data)
        else:
            self.chunks.popleft()
            self.offset = 0
        self.size -= len(data)
        if self.paused and self.size < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class AsyncioStream(httpcore2.AsyncNetworkStream):
    """One connection, plain or TLS, as httpcore2 reads and writes it."""

    def __init__(self, protocol: _SocketProtocol) -> None:
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.ended:
            if timeout is None:
                await protocol.readable()
            else:
                try:
                    with anyio.fail_after(timeout):
                        await protocol.readable()
                except TimeoutError:
                    raise httpcore2.ReadTimeout(f"No data within {timeout:g} s.") from None
        return protocol.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        transport = protocol.transport
        if protocol.ended or transport is None or transport.is_closing():
            reason = protocol.error or "the connection is closed"
            raise httpcore2.WriteError(str(reason))
        transport.write(buffer)
        if protocol.writing_paused:  # the kernel takes no more for now: wait, within the timeout
            try:
                with anyio.fail_after(timeout):
                    await protocol.drained()
            except TimeoutError:
                raise httpcore2.WriteTimeout(f"Could not write within {timeout:g} s.") from None
        if protocol.error is not None:
            raise httpcore2.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        transport = self._protocol.transport
        if transport is None:
            return
        if transport.get_extra_info("ssl_object") is None and not transport.get_write_buffer_size():
            transport.close()  # FIN at once: nothing of ours waits to be sent
        else:  # TLS: no close_notify exchange, which may wait 30 s (as httpcore2's backend);
            transport.abort()  # unsent bytes: a server that never reads them kept the socket

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        protocol = self._protocol
        assert protocol.transport is not None
        loop = asyncio.get_running_loop()
        try:
            with anyio.fail_after(timeout):
                transport = await loop.start_tls(
                    protocol.transport, protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            await self.aclose()
            raise httpcore2.ConnectTimeout(f"No TLS handshake within {timeout:g} s.") from None
        except (OSError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            await self.aclose()
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection was closed during the handshake
            raise httpcore2.ConnectError("The connection closed during the TLS handshake.")
        protocol.transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        protocol, transport = self._protocol, self._protocol.transport
        if transport is None:
            return True if info == "is_readable" else None
        if info == "is_readable":  # an idle connection with news is one the server closed
            return bool(protocol.chunks) or protocol.ended or _has_news(transport)
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        if name in ("ssl_object", "sockname", "peername", "socket"):
            return transport.get_extra_info(name)
        return None


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    """Connections as asyncio protocols under asyncio; httpcore2's own backend elsewhere."""

    def __init__(self) -> None:
        self._fallback = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another event loop (trio)
            return await self._fallback.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        try:
            with anyio.fail_after(timeout):
                transport, protocol = await loop.create_connection(
                    _SocketProtocol,
                    host,
                    port,
                    local_addr=None if local_address is None else (local_address, 0),
                    happy_eyeballs_delay=None if _is_address(host) else HAPPY_EYEBALLS_DELAY,
                )
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"No connection within {timeout:g} s.") from None
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(protocol)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _has_news(transport: asyncio.Transport) -> bool:
    """Whether the socket has something the event loop has not read yet (a FIN, say)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):  # select() cannot watch descriptors above 1023
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock.fileno()], [], [], 0)
    return bool(readable)


def _is_address(host: str) -> bool:
    """An IP literal connects to one address: no happy-eyeballs tasks are needed.
    (`inet_pton` is a twentieth of the cost of `ipaddress.ip_address`, once per connection.)"""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        return True
    return False
