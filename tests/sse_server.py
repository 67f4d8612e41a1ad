"""A real, scriptable HTTP/1.1 server on 127.0.0.1 for the tests (no mocked HTTP).

Each test gives an async handler `handler(request, response)`. The response is sent with
chunked transfer encoding so that a clean end (`await response.finish()`) and an abrupt drop
(`await response.abort()`, the socket closed mid-body) are distinguishable, as on the wire.
`response.raw(...)` writes arbitrary bytes for malformed-response tests.

The server records every request and counts open connections, so tests can assert what the
bridge sent and that a cancelled call really closed its upstream connection.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import anyio.from_thread
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = 0.0  # when it had arrived, on the server loop's clock (anyio.current_time)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


class Response:
    """What a handler writes to; `sent_head` guards against a double status line."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        self.sent_head = False

    async def head(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        content_type: str | None = "text/event-stream",
        chunked: bool = True,
    ) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        all_headers = {"Cache-Control": "no-cache", "Connection": "close"}
        if content_type:
            all_headers["Content-Type"] = content_type
        if chunked:
            all_headers["Transfer-Encoding"] = "chunked"
        all_headers.update(headers or {})
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        await self._stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.sent_head = True

    async def send(self, data: bytes | str) -> None:
        """Send one chunk of the body (chunked framing)."""
        if isinstance(data, str):
            data = data.encode()
        if not self.sent_head:
            await self.head()
        if data:
            await self._stream.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def finish(self) -> None:
        """End the body cleanly (terminating zero-length chunk)."""
        if not self.sent_head:
            await self.head()
        await self._stream.send(b"0\r\n\r\n")

    async def abort(self) -> None:
        """Drop the connection mid-body: no terminating chunk."""
        await self._stream.aclose()

    async def raw(self, data: bytes) -> None:
        await self._stream.send(data)

    async def simple(
        self,
        status: int,
        body: bytes | str = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete non-streaming response with Content-Length."""
        if isinstance(body, str):
            body = body.encode()
        merged = {"Content-Length": str(len(body)), **(headers or {})}
        await self.head(status, merged, content_type=content_type, chunked=False)
        await self._stream.send(body)


Handler = Callable[[Request, Response], Awaitable[None]]


@dataclass
class SSEServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    open_connections: int = 0
    closed_connections: int = 0
    connection_closed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve_one(self, stream: anyio.abc.SocketStream) -> None:
        self.open_connections += 1
        try:
            async with stream:
                reader = BufferedByteReceiveStream(stream)
                try:
                    head = await reader.receive_until(b"\r\n\r\n", 65536)
                except (
                    anyio.IncompleteRead,
                    anyio.DelimiterNotFound,
                    OSError,
                    anyio.BrokenResourceError,
                ):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.receive_exactly(int(headers["content-length"]))
                request = Request(method, target, headers, body, anyio.current_time())
                self.requests.append(request)
                response = Response(stream)
                with contextlib.suppress(
                    anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
                ):
                    await self.handler(request, response)
                    # Hold the connection open until the client hangs up, unless closed.
        finally:
            self.open_connections -= 1
            self.closed_connections += 1
            self.connection_closed.set()
            self.connection_closed = anyio.Event()

    async def wait_for_client_close(self, timeout: float = 5.0) -> None:
        """Wait until some connection closes (e.g. after a cancelled call)."""
        with anyio.fail_after(timeout):
            while self.open_connections:
                await self.connection_closed.wait()


async def wait_disconnect(response: Response) -> None:
    """Block a handler until the client goes away (reads until EOF)."""
    with contextlib.suppress(Exception):
        while await response._stream.receive(65536):
            pass


@contextlib.asynccontextmanager
async def serving(
    listener: anyio.abc.Listener[Any], handler: Callable[[Any], Any]
) -> AsyncIterator[None]:
    """Serve `listener` (one task per connection) for the duration of the block, then stop."""
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler, tg)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def serve(
    handler: Handler, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[SSEServer]:
    """Run an SSEServer on an ephemeral loopback port (::1 too) for the duration of the block,
    over TLS with `tls`."""
    tcp = await anyio.create_tcp_listener(local_host=host, local_port=0)
    server = SSEServer(handler, host=host)
    server.port = tcp.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[Any] = tcp
    if tls is not None:  # not standard_compatible: the bridge may drop TLS without close_notify
        listener = TLSListener(tcp, tls, standard_compatible=False, handshake_timeout=5)
    async with serving(listener, server._serve_one):
        yield server


@contextlib.contextmanager
def serve_in_thread(handler: Handler) -> Iterator[SSEServer]:
    """The same server in a background event loop, for sync tests driving subprocesses."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(handler)) as server,
    ):
        yield server


def sse_lines(*events: dict[str, Any]) -> str:
    """Format events as an event stream: each dict may hold event, id, data, retry."""
    out = []
    for ev in events:
        if "event" in ev:
            out.append(f"event: {ev['event']}\n")
        if "id" in ev:
            out.append(f"id: {ev['id']}\n")
        if "retry" in ev:
            out.append(f"retry: {ev['retry']}\n")
        data = ev.get("data")
        if data is not None:
            text = data if isinstance(data, str) else json.dumps(data)
            out += [f"data: {line}\n" for line in text.split("\n")]
        out.append("\n")
    return "".join(out)
