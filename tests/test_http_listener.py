"""The HTTP transport's listening socket: connections it accepts have Nagle's algorithm off.

uvicorn serves on the socket `_listen` makes, and asyncio sets TCP_NODELAY only on accepted
sockets whose protocol is IPPROTO_TCP; a socket made with protocol 0 left Nagle on, and every
response written as headers then body waited for the client's delayed ACK (about 40 ms).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from mcp_sse_bridge.cli.commands import _listen
from mcp_sse_bridge.cli.terminal import UsageError


def accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted by an asyncio server on `sock`, as uvicorn's."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=sock)
        async with server:
            host, port = sock.getsockname()[:2]
            _, writer = await asyncio.open_connection(host, port)
            value = await asyncio.wait_for(accepted, 5)
            writer.close()
        return value

    return asyncio.run(main())


def test_connections_accepted_on_the_http_listener_have_nagle_off() -> None:
    assert accepted_nodelay(_listen("127.0.0.1", 0)) != 0


def test_the_same_on_ipv6_loopback() -> None:
    try:
        sock = _listen("::1", 0)
    except UsageError as err:
        pytest.skip(f"no IPv6 loopback: {err}")
    assert sock.family == socket.AF_INET6
    assert accepted_nodelay(sock) != 0
