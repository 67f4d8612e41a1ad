"""StreamTransport against real loopback servers: a connection per request, the limit, release."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import httpcore2
import httpx2
import pytest

from mcp_sse_bridge.upstream.transport import StreamTransport, environment_proxies

from .acceptance.network import closed_port
from .sse_server import Request, Response, SSEServer, serve, wait_disconnect

pytestmark = pytest.mark.anyio


class Hold:
    """A handler that sends the stream's head and keeps it open until the client leaves,
    recording how many streams were open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0

    async def __call__(self, request: Request, response: Response) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await response.head()
            await wait_disconnect(response)
        finally:
            self.open -= 1


async def how_the_client_ends(response: Response) -> str:
    """Read until the client ends the connection: "eof" for a close, "reset" for a reset."""
    try:
        while True:
            await response._stream.receive()
    except anyio.EndOfStream:
        return "eof"
    except (anyio.BrokenResourceError, OSError):
        return "reset"


@contextlib.asynccontextmanager
async def client(
    max_connections: int, **timeouts: float
) -> AsyncIterator[tuple[httpx2.AsyncClient, StreamTransport]]:
    transport = StreamTransport(max_connections)
    timeout = httpx2.Timeout(5.0, **timeouts)
    async with httpx2.AsyncClient(transport=transport, timeout=timeout) as opened:
        yield opened, transport


async def open_streams(
    http: httpx2.AsyncClient, server: SSEServer, n: int
) -> list[httpx2.Response]:
    return [await http.send(http.build_request("GET", server.url), stream=True) for _ in range(n)]


# A connection per request


async def test_each_request_has_its_own_connection_closed_with_its_response() -> None:
    """The server would keep the connection for another request; the client still closes it
    (a clean EOF, not a reset) as soon as the response is closed, read or not."""
    sending, endings = anyio.create_memory_object_stream[str](4)

    async def keep_alive(request: Request, response: Response) -> None:
        await response.simple(200, "ok", headers={"Connection": "keep-alive"})
        await sending.send(await how_the_client_ends(response))

    async with sending, endings, serve(keep_alive) as server, client(4) as (http, transport):
        first = await http.get(server.url)  # read to the end, then closed
        with anyio.fail_after(1):
            assert await endings.receive() == "eof"
        async with http.stream("GET", server.url) as second:  # closed unread
            assert transport.open_responses == 1
        with anyio.fail_after(1):
            assert await endings.receive() == "eof"
        assert transport.open_responses == 0
    assert first.text == "ok"
    assert len(server.requests) == 2
    assert first.extensions["network_stream"] is not second.extensions["network_stream"]


async def test_an_unsupported_scheme_is_an_httpx2_error() -> None:
    async with client(1, pool=0.1) as (http, transport):
        with pytest.raises(httpx2.UnsupportedProtocol, match="'ftp': only http and https"):
            await http.get("ftp://127.0.0.1/file")
        assert transport.open_responses == 0
        with pytest.raises(httpx2.UnsupportedProtocol):  # it took no slot: no PoolTimeout
            await http.get("ftp://127.0.0.1/file")


def test_at_least_one_connection_is_required() -> None:
    with pytest.raises(ValueError, match="max_connections >= 1"):
        StreamTransport(0)


# The limit and giving slots back


async def test_max_connections_holds() -> None:
    hold = Hold()
    async with serve(hold) as server, client(3, pool=0.2) as (http, transport):
        responses = await open_streams(http, server, 3)
        assert transport.open_responses == 3
        with pytest.raises(
            httpx2.PoolTimeout, match=r"All 3 connections are in use \(max_connections\)"
        ):
            await http.get(server.url)
        await responses[0].aclose()
        responses.append(await http.send(http.build_request("GET", server.url), stream=True))
        assert transport.open_responses == 3
        for response in responses[1:]:
            await response.aclose()
        assert transport.open_responses == 0
    assert hold.most == 3
    assert len(server.requests) == 4  # the refused request never reached the server


async def test_a_waiting_request_takes_the_first_slot_freed() -> None:
    async with serve(Hold()) as server, client(2) as (http, transport):
        first, second = await open_streams(http, server, 2)
        sent: list[httpx2.Response] = []

        async def third() -> None:
            sent.append(await http.send(http.build_request("GET", server.url), stream=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(third)
            await anyio.wait_all_tasks_blocked()
            assert not sent  # waiting for a slot
            await second.aclose()
        assert transport.open_responses == 2
        for response in (first, *sent):
            await response.aclose()
        assert transport.open_responses == 0


async def test_a_failed_connection_gives_its_slot_back_and_its_socket_up() -> None:
    """Refused, or answered with something that is not HTTP: either way the one slot is free
    again, and the server that did answer sees the client close its socket."""
    sending, endings = anyio.create_memory_object_stream[str](1)

    async def route(request: Request, response: Response) -> None:
        if request.path == "/garbage":
            await response.raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            await sending.send(await how_the_client_ends(response))
        else:
            await response.head()
            await wait_disconnect(response)

    async with sending, endings, serve(route) as server, client(1) as (http, transport):
        with pytest.raises(httpx2.ConnectError):
            await http.get(f"http://127.0.0.1:{closed_port()}/")
        assert transport.open_responses == 0
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get(f"{server.url}/garbage")
        assert transport.open_responses == 0
        with anyio.fail_after(1):
            assert await endings.receive() == "eof"
        async with http.stream("GET", server.url) as response:
            assert response.status_code == 200


async def test_a_cancelled_request_gives_its_slot_back_and_closes_its_socket() -> None:
    arrivals: list[anyio.Event] = []

    async def never_answers(request: Request, response: Response) -> None:
        arrivals[-1].set()
        await wait_disconnect(response)

    async def cancel_once_sent(http: httpx2.AsyncClient, url: str) -> None:
        arrivals.append(anyio.Event())
        async with anyio.create_task_group() as tg:
            tg.start_soon(http.get, url)
            with anyio.fail_after(2):
                await arrivals[-1].wait()
            tg.cancel_scope.cancel()

    async with serve(never_answers) as server, client(1) as (http, transport):
        await cancel_once_sent(http, server.url)
        assert transport.open_responses == 0
        await server.wait_for_client_close(timeout=1.0)
        await cancel_once_sent(http, server.url)  # the one slot is free again: it is sent
        assert transport.open_responses == 0
        await server.wait_for_client_close(timeout=1.0)
    assert len(server.requests) == 2


async def test_closing_a_body_twice_releases_its_slot_once() -> None:
    async with serve(Hold()) as server, client(2, pool=0.1) as (http, transport):
        response = await transport.handle_async_request(http.build_request("GET", server.url))
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        await response.stream.aclose()
        await response.stream.aclose()
        assert transport.open_responses == 0
        responses = await open_streams(http, server, 2)
        with pytest.raises(httpx2.PoolTimeout):  # a second release would have let it through
            await http.get(server.url)
        for opened in responses:
            await opened.aclose()
        assert transport.open_responses == 0


# Errors and proxies


async def test_a_dropped_body_is_an_httpx2_error() -> None:
    """httpcore2's error is raised as httpx2's, carrying the request, and the slot comes back."""

    async def drop(request: Request, response: Response) -> None:
        await response.send("data: 1\n\n")
        await response.abort()

    async with serve(drop) as server, client(2) as (http, transport):
        async with http.stream("GET", server.url) as response:
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)) as caught:
                async for _ in response.aiter_bytes():
                    pass
        assert transport.open_responses == 0
    assert isinstance(caught.value.__cause__, httpcore2.NetworkError | httpcore2.ProtocolError)
    assert not isinstance(caught.value, httpcore2.NetworkError | httpcore2.ProtocolError)
    assert caught.value.request is response.request


async def test_a_silent_upstream_is_an_httpx2_read_timeout() -> None:
    async def silent(request: Request, response: Response) -> None:
        await response.head()
        await wait_disconnect(response)

    async with serve(silent) as server, client(2, read=0.1) as (http, transport):
        async with http.stream("GET", server.url) as response:
            with pytest.raises(httpx2.ReadTimeout):
                await response.aread()
        assert transport.open_responses == 0


async def test_proxy_environment_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A custom transport turns off httpx2's own lookup; `environment_proxies` restores it."""

    async def forward_proxy(request: Request, response: Response) -> None:
        await response.simple(200, request.target)

    async with serve(forward_proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "internal.example")
        mounts = environment_proxies(httpx2.Limits(max_connections=4))
        assert mounts["all://*internal.example"] is None  # the client's own transport
        async with httpx2.AsyncClient(transport=StreamTransport(4), mounts=mounts) as http:
            response = await http.get("http://upstream.example:8123/stream?x=1")
    assert response.text == "http://upstream.example:8123/stream?x=1"  # absolute form: proxied
