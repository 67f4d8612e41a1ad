"""What the acceptance tests need around the bridge: TLS and IPv6 upstreams, a closed port, a
forward proxy, compressed bodies, and a look at a bridge process's file descriptors and memory.

All of it is real: the upstreams are `tests.sse_server.serve` servers on a loopback socket
(TLS through anyio's `TLSListener`), the proxy relays bytes between real sockets, and the process
figures come from `/proc`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.abc
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.sse_server import SSEServer, serving


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate from `ca` for `names`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@contextlib.asynccontextmanager
async def plain_http_port() -> AsyncIterator[int]:
    """A loopback port whose server answers the first bytes it gets (a TLS ClientHello, say)
    with a plain-text 400 and hangs up, as HTTP servers do; yields the port."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                await stream.receive()
                await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with serving(listener, answer):
        yield listener.extra(anyio.abc.SocketAttribute.local_port)


def origin(server: SSEServer, scheme: str = "http", host: str | None = None) -> str:
    """`scheme://host:port` of `server`, IPv6 addresses in brackets."""
    name = host or server.host
    return f"{scheme}://{f'[{name}]' if ':' in name else name}:{server.port}"


@dataclass
class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1: absolute-form requests are relayed to their origin,
    CONNECT opens a tunnel. `seen` records each request line's method and target."""

    port: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve_one(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            try:
                head = await reader.receive_until(b"\r\n\r\n", 65536)
            except (anyio.IncompleteRead, anyio.DelimiterNotFound, OSError):
                return
            request_line, _, rest = head.partition(b"\r\n")
            method, target, version = request_line.decode("latin-1").split(" ", 2)
            self.seen.append((method, target))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                forward = b""
            else:
                parts = urlsplit(target)
                try:
                    host, port = parts.hostname or "", str(parts.port or 80)
                except ValueError:  # not a URL a client should send
                    await client.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    return
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                line = f"{method} {path} {version}".encode("latin-1")
                forward = line + b"\r\n" + rest + b"\r\n\r\n" + reader.buffer
            try:
                upstream = await anyio.connect_tcp(host.strip("[]"), int(port))
            except OSError:
                await client.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            async with upstream:
                if method == "CONNECT":
                    await client.send(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    forward = reader.buffer
                if forward:
                    await upstream.send(forward)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe, client, upstream, tg.cancel_scope)
                    tg.start_soon(_pipe, upstream, client, tg.cancel_scope)


async def _pipe(
    source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream, scope: anyio.CancelScope
) -> None:
    """Copy until either side ends, then end the relay both ways (as a proxy drops a tunnel)."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        while True:
            await sink.send(await source.receive(65536))
    scope.cancel()


@contextlib.asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy = ForwardProxy(listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port))
    async with serving(listener, proxy._serve_one):
        yield proxy


class Compressor:
    """A Content-Encoding body written piece by piece, each piece flushed so that it can be
    decoded on arrival (as a compressing SSE server must, or events would wait in its buffer)."""

    def __init__(self, encoding: str) -> None:
        wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[encoding]
        self._zlib = zlib.compressobj(wbits=wbits)

    def piece(self, text: str) -> bytes:
        return self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return self._zlib.flush(zlib.Z_FINISH)


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line contains `marker` (the SDK's stdio
    client does not expose the process it starts)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and marker in command:
            found.append(int(entry.name))
    assert len(found) == 1, f"children matching {marker!r}: {found}"
    return found[0]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockets(pid: int) -> int:
    """Open sockets of `pid` (its fds that are links to `socket:[...]`)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
