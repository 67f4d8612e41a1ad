"""open_chunks against a real loopback server: handshake, redirects, drops and reconnects."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import httpx2
import pytest

from mcp_sse_bridge.errors import (
    AuthError,
    ConnectError,
    HTTPStatusError,
    ProtocolError,
    ServerError,
    UpstreamError,
)
from mcp_sse_bridge.upstream.request import PreparedRequest
from mcp_sse_bridge.upstream.retry import MIN_BACKOFF_MS, backoff
from mcp_sse_bridge.upstream.sse import ServerSentEvent
from mcp_sse_bridge.upstream.stream import StreamOptions, StreamState, open_chunks
from mcp_sse_bridge.upstream.transport import StreamClient, StreamTransport

from .sse_server import Request, Response, serve, sse_lines, wait_disconnect

Handler = Callable[[Request, Response], Awaitable[None]]
FAST = StreamOptions(retry_ms=5, max_retry_ms=50, connect_timeout=2.0)


@pytest.fixture
async def client() -> AsyncIterator[StreamClient]:
    """The bridge's own way to send a stream's request (the direct route, no proxies)."""
    direct = StreamTransport(64)
    async with httpx2.AsyncClient(transport=direct) as http:
        yield StreamClient(http, direct)


def connector(
    url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None
) -> Callable[[str], Awaitable[PreparedRequest]]:
    async def connect(last_event_id: str) -> PreparedRequest:
        method = "GET" if content is None else "POST"
        all_headers = {"Accept": "text/event-stream", **(headers or {})}
        return PreparedRequest(method, url, all_headers, content, has_body=content is not None)

    return connect


async def read_all(
    client: StreamClient,
    url: str,
    *,
    options: StreamOptions = FAST,
    state: StreamState | None = None,
    limit: int = 100,
    **kwargs: object,
) -> list[ServerSentEvent]:
    """Every event until the stream ends (bounded in count and time)."""
    state = state or StreamState()
    refresh = kwargs.pop("refresh_auth", None)
    chunks = open_chunks(client, connector(url, **kwargs), options, state, refresh_auth=refresh)
    out: list[ServerSentEvent] = []
    with anyio.fail_after(5):
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                out.extend(chunk)
                if len(out) >= limit:
                    break
    return out


async def flatten(chunks: AsyncIterator[list[ServerSentEvent]]) -> AsyncIterator[ServerSentEvent]:
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            for event in chunk:
                yield event


def ids(events: list[ServerSentEvent]) -> list[str]:
    return [event.id for event in events]


def scripted(*steps: Handler) -> Handler:
    """Connection n is served by steps[n]; the last step serves every later connection."""
    calls = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal calls
        step = steps[min(calls, len(steps) - 1)]
        calls += 1
        await step(request, response)

    return handler


def events_then(text: str, end: str = "finish") -> Handler:
    async def step(request: Request, response: Response) -> None:
        await response.send(text)
        await (response.finish() if end == "finish" else response.abort())

    return step


def status(code: int, body: str = "", content_type: str = "text/plain", **headers: str) -> Handler:
    async def step(request: Request, response: Response) -> None:
        await response.simple(code, body, content_type, headers or None)

    return step


# -- a healthy stream ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_clean_end_yields_every_event_once_and_does_not_reconnect(client) -> None:
    body = sse_lines({"id": "1", "data": {"n": 1}}, {"event": "tick", "id": "2", "data": "two"})
    async with serve(events_then(body)) as server:
        state = StreamState()
        events = await read_all(client, server.url + "/s", state=state)
    assert events == [
        ServerSentEvent("message", '{"n": 1}', "1"),
        ServerSentEvent("tick", "two", "2"),
    ]
    assert (state.last_event_id, state.reconnects) == ("2", 0)
    [request] = server.requests
    assert request.headers["accept"] == "text/event-stream"
    assert "last-event-id" not in request.headers


@pytest.mark.anyio
async def test_a_read_comes_as_one_list_and_reads_without_events_yield_nothing(client) -> None:
    got_first = anyio.Event()

    async def handler(request: Request, response: Response) -> None:
        await response.send("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 9\n\n")
        await got_first.wait()  # so what follows is a read of its own
        await response.send(": ping\n\nretry: 5\n\nevent: ping\n\n")  # no event in there
        await response.finish()

    async with serve(handler) as server:
        state = StreamState()
        lists: list[list[str]] = []
        ahead: list[str] = []
        chunks = open_chunks(client, connector(server.url), FAST, state)
        with anyio.fail_after(5):
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    lists.append(ids(chunk))
                    ahead.append(state.last_event_id)
                    got_first.set()
    assert lists == [["1", "2"]]
    assert ahead == ["9"]  # while a list is out, the state is already past it (id-only block)


@pytest.mark.anyio
async def test_resume_id_is_sent_as_last_event_id_and_inherited(client) -> None:
    async with serve(events_then("data: no id line\n\n")) as server:
        state = StreamState(last_event_id="41")
        events = await read_all(client, server.url, state=state)
    assert server.requests[0].headers["last-event-id"] == "41"
    assert ids(events) == ["41"]


@pytest.mark.anyio
async def test_a_non_ascii_id_is_sent_back_as_utf8(client) -> None:
    """Ids are any text but CR, LF and NUL; the server must get back the bytes it sent."""
    first = "id: événement-1 \ndata: one\n\n"
    handler = scripted(events_then(first, "abort"), events_then(sse_lines({"data": "two"})))
    async with serve(handler) as server:
        events = await read_all(client, server.url)
    assert [(e.id, e.data) for e in events] == [("événement-1 ", "one"), ("événement-1 ", "two")]
    sent = server.requests[1].headers["last-event-id"]  # the test server reads latin-1
    assert sent.encode("latin-1") == "événement-1".encode()  # h11 sends no trailing blank


@pytest.mark.anyio
async def test_content_type_parameters_are_accepted(client) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.head(content_type="Text/Event-Stream; charset=utf-8")
        await response.send("data: x\n\n")
        await response.finish()

    async with serve(handler) as server:
        assert [e.data for e in await read_all(client, server.url)] == ["x"]


@pytest.mark.anyio
async def test_oversized_events_are_counted_and_skipped(client) -> None:
    body = f"id: 1\ndata: {'x' * 500}\n\nid: 2\ndata: small\n\n"
    options = StreamOptions(max_line_bytes=100, max_event_bytes=100)
    async with serve(events_then(body)) as server:
        state = StreamState()
        events = await read_all(client, server.url, options=options, state=state)
    assert [e.data for e in events] == ["small"]
    assert state.oversized == 1


# -- handshake errors ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "error", "attempts"),
    [
        (401, AuthError, 1),
        (403, AuthError, 1),
        (404, HTTPStatusError, 1),
        (429, HTTPStatusError, 5),
        (500, ServerError, 1),
        (503, ServerError, 5),
    ],
)
async def test_refused_handshake_raises_typed_error(
    client, code: int, error: type, attempts: int
) -> None:
    """Only "come back later" statuses are retried on the first connection, a bounded number
    of times (`first_attempts`); the others are reported at once."""
    async with serve(status(code, "nope: details here")) as server:
        with pytest.raises(error) as caught:
            await read_all(client, server.url + "/feed?token=s3cr3t")
    assert caught.value.status == code
    assert caught.value.body_excerpt == "nope: details here"
    assert f"HTTP {code}" in caught.value.message and "/feed" in caught.value.message
    assert "s3cr3t" not in str(caught.value)  # the query string is never quoted
    assert caught.value.hint
    assert len(server.requests) == attempts
    assert (f"after {attempts} attempts" in str(caught.value)) is (attempts > 1)


@pytest.mark.anyio
async def test_204_means_stop_without_reconnect(client) -> None:
    async with serve(status(204)) as server:
        assert await read_all(client, server.url) == []
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("code", [201, 210, 299])
async def test_a_2xx_other_than_200_is_a_protocol_error_not_retried(client, code: int) -> None:
    """WHATWG: only 200 is an event stream (wpt request-status-error), whatever the body."""

    async def handler(request: Request, response: Response) -> None:
        await response.head(code)
        await response.send("data: not a stream\n\n")
        await response.finish()

    async with serve(handler) as server:
        with pytest.raises(ProtocolError, match=f"HTTP {code}.*status 200 only") as caught:
            await read_all(client, server.url)
    assert caught.value.status == code
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", ["text/html", "application/json", ""])
async def test_wrong_content_type_is_a_protocol_error_not_retried(client, content_type) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(200, "<p>login</p>", content_type)

    async with serve(handler) as server:
        with pytest.raises(ProtocolError) as caught:
            await read_all(client, server.url)
    assert caught.value.status == 200
    assert "text/event-stream" in caught.value.message
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_html_error_page_excerpt_is_sanitised_and_capped(client) -> None:
    page = (
        "<html><head><style>body{color:red}</style><script>alert('x')</script></head>"
        "<body><h1>502&nbsp;Bad\tGateway</h1>\x00\x1b[31m\u202e<p>"
        + "upstream timed out " * 500
        + "</p></body></html>"
    )
    async with serve(status(500, page, "text/html; charset=utf-8")) as server:
        with pytest.raises(ServerError) as caught:
            await read_all(client, server.url)
    excerpt = caught.value.body_excerpt
    assert excerpt.startswith("502 Bad Gateway [31m upstream timed out")
    assert len(excerpt) <= 300 and excerpt.endswith("…")
    assert not any(ch in excerpt for ch in "<>\x00\x1b\t\u202e") and "alert" not in excerpt
    assert "color" not in excerpt and "  " not in excerpt


@pytest.mark.anyio
async def test_huge_error_body_is_read_only_up_to_64_kib(client) -> None:
    sent = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal sent
        await response.head(500, content_type="text/plain")
        for _ in range(4000):  # 250 MiB if the client read it all
            await response.send(b"e" * 65536)
            sent += 1

    async with serve(handler) as server:
        with pytest.raises(ServerError):
            await read_all(client, server.url)
    assert sent < 1000  # the client hung up long before the end (socket buffers hold a few)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("deadline", "most"), [(None, 1.5), (0.4, 0.4)], ids=["one-second", "half-the-time-left"]
)
async def test_a_trickling_error_body_is_read_briefly_and_the_error_still_raised(
    client, deadline: float | None, most: float
) -> None:
    """A refusal whose body never ends: the excerpt read stops after 1 s (not the 2 s connect
    timeout), or at half the caller's remaining time, and the typed error carries what
    arrived, instead of the caller's deadline swallowing it."""

    async def handler(request: Request, response: Response) -> None:
        await response.head(401, content_type="text/plain")
        await response.send("first words")
        await wait_disconnect(response)

    async with serve(handler) as server:
        started = anyio.current_time()
        with pytest.raises(AuthError) as caught, anyio.move_on_after(deadline):
            await read_all(client, server.url)
        took = anyio.current_time() - started
    assert caught.value.body_excerpt == "first words"
    assert took < most


@pytest.mark.anyio
async def test_no_response_headers_within_connect_timeout(client) -> None:
    async with serve(lambda request, response: wait_disconnect(response)) as server:
        with pytest.raises(ConnectError) as caught:
            await read_all(client, server.url, options=StreamOptions(connect_timeout=0.2))
    assert "No response headers" in caught.value.message


@pytest.mark.anyio
async def test_first_connect_failure_raises_connect_error(client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        await read_all(client, f"http://127.0.0.1:{port}/s")
    assert f"127.0.0.1:{port}/s" in caught.value.message


# -- redirects ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_same_origin_redirect_is_followed_with_its_headers(client) -> None:
    async def handler(request: Request, response: Response) -> None:
        if request.path == "/old":
            await response.simple(307, "", headers={"Location": "/new"})
        else:
            await events_then("data: moved\n\n")(request, response)

    async with serve(handler) as server:
        events = await read_all(client, server.url + "/old", headers={"X-Api-Key": "k"})
    assert [e.data for e in events] == ["moved"]
    assert [r.path for r in server.requests] == ["/old", "/new"]
    assert server.requests[1].headers["x-api-key"] == "k"


@pytest.mark.anyio
async def test_redirect_to_another_origin_is_not_followed(client) -> None:
    async with serve(events_then("data: elsewhere\n\n")) as other:
        target = other.url + "/steal"
        async with serve(status(302, "", Location=target)) as server:
            with pytest.raises(HTTPStatusError) as caught:
                await read_all(client, server.url, headers={"Authorization": "Bearer t0ken"})
    assert "another origin" in caught.value.message and caught.value.status == 302
    assert other.requests == []


@pytest.mark.anyio
async def test_redirect_loops_are_bounded(client) -> None:
    async with serve(status(302, "", Location="/again")) as server:
        with pytest.raises(HTTPStatusError) as caught:
            await read_all(client, server.url)
    assert "Too many redirects" in caught.value.message
    assert len(server.requests) == 6


@pytest.mark.anyio
async def test_303_after_post_continues_as_get_without_body(client) -> None:
    async def handler(request: Request, response: Response) -> None:
        if request.method == "POST":
            await response.simple(303, "", headers={"Location": "/job/1/events"})
        else:
            await events_then("data: started\n\n")(request, response)

    async with serve(handler) as server:
        events = await read_all(client, server.url + "/jobs", content=b'{"x":1}')
    assert [e.data for e in events] == ["started"]
    assert [(r.method, r.body) for r in server.requests] == [("POST", b'{"x":1}'), ("GET", b"")]


# -- drops and reconnects -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_drop_between_events_reconnects_with_last_event_id(client) -> None:
    first = sse_lines({"id": "1", "data": "a"}, {"id": "2", "data": "b"})
    handler = scripted(
        events_then(first, "abort"), events_then(sse_lines({"id": "3", "data": "c"}))
    )
    async with serve(handler) as server:
        state = StreamState()
        events = await read_all(client, server.url, state=state)
    assert ids(events) == ["1", "2", "3"]
    assert state.reconnects == 1
    assert server.requests[1].headers["last-event-id"] == "2"


@pytest.mark.anyio
async def test_drop_mid_event_loses_nothing_and_repeats_nothing(client) -> None:
    """The server honours Last-Event-ID by replaying after it, as nchan and sse-channel do."""
    log = [{"id": str(n), "event": "tick", "data": {"n": n}} for n in range(1, 7)]

    async def handler(request: Request, response: Response) -> None:
        after = int(request.headers.get("last-event-id", "0"))
        rest = [event for event in log if int(event["id"]) > after]
        text = sse_lines(*rest[:2])
        if len(rest) > 2:  # cut the third event in half, then drop the connection
            partial = sse_lines(rest[2])
            await response.send(text + partial[: len(partial) // 2])
            await response.abort()
        else:
            await response.send(text)
            await response.finish()

    async with serve(handler) as server:
        state = StreamState()
        events = await read_all(client, server.url, state=state)
    assert ids(events) == ["1", "2", "3", "4", "5", "6"]
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "2", "4"]
    assert state.reconnects == 2


@pytest.mark.anyio
async def test_server_retry_value_is_honoured(client) -> None:
    """With 60 s from the manual, a reconnect within the 5 s test bound proves retry: 5 won."""
    first = "retry: 5\n\n" + sse_lines({"id": "1", "data": "a"})
    handler = scripted(
        events_then(first, "abort"), events_then(sse_lines({"id": "2", "data": "b"}))
    )
    options = StreamOptions(retry_ms=60_000, max_retry_ms=60_000)
    async with serve(handler) as server:
        events = await read_all(client, server.url, options=options)
    assert ids(events) == ["1", "2"]
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_huge_server_retry_is_capped_not_an_overflow(client) -> None:
    """`retry:` saturates at 10**18 ms; the backoff clamps it to the cap before any float math."""
    first = "retry: " + "9" * 400 + "\n" + sse_lines({"id": "1", "data": "a"})
    handler = scripted(events_then(first, "abort"), events_then(sse_lines({"id": "2"})))
    async with serve(handler) as server:
        events = await read_all(client, server.url)  # FAST caps the backoff at 50 ms
    assert ids(events) == ["1"]
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("retry_ms", "failures", "cap_ms", "most"),
    [(10**400, 0, 10**400, 3600), (10**18, 10**6, 30_000, 30), (0, 3, 30_000, 0.8)],
)
def test_backoff_is_bounded_whatever_the_numbers(
    retry_ms: int, failures: int, cap_ms: int, most: float
) -> None:
    assert 0 < backoff(retry_ms, failures, cap_ms) <= most * 1.2


@pytest.mark.parametrize(
    ("retry_ms", "failures", "cap_ms"), [(0, 0, 30_000), (0, 0, 0), (5, 0, 50), (0, 2, 1)]
)
def test_every_reconnect_waits_at_least_the_floor(
    retry_ms: int, failures: int, cap_ms: int
) -> None:
    assert backoff(retry_ms, failures, cap_ms) >= MIN_BACKOFF_MS / 1000


@pytest.mark.anyio
async def test_retry_0_and_a_drop_after_every_event_is_no_busy_loop(client) -> None:
    """`retry: 0` and a drop after each event: reconnects wait the 100 ms floor (not a few
    hundred connections a second), and since every attempt delivered an event the delay does
    not double (no reset would allow about 5 connections in 1.5 s)."""

    async def handler(request: Request, response: Response) -> None:
        n = int(request.headers.get("last-event-id", "0")) + 1
        await response.send(f"retry: 0\nid: {n}\ndata: {n}\n\n")
        await response.abort()

    options = StreamOptions(retry_ms=5, max_retry_ms=10_000, connect_timeout=2.0)
    async with serve(handler) as server:
        got: list[ServerSentEvent] = []
        with anyio.move_on_after(1.5):
            events = flatten(open_chunks(client, connector(server.url), options, StreamState()))
            async with contextlib.aclosing(events):
                async for event in events:
                    got.append(event)
    assert ids(got) == [str(n) for n in range(1, len(got) + 1)]
    assert 7 <= len(server.requests) <= 18, f"{len(server.requests)} connections in 1.5 s"


@pytest.mark.anyio
async def test_failures_during_reconnect_are_retried(client) -> None:
    """A 503, a refused connection and a drop before any event: all retried with Last-Event-ID."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    handler = scripted(
        events_then(sse_lines({"id": "1", "data": "a"}), "abort"),
        status(503, "restarting"),
        events_then("", "abort"),  # connected, then dropped before any event
        events_then(sse_lines({"id": "2", "data": "b"})),
    )
    urls: list[str] = []

    async def connect(last_event_id: str) -> PreparedRequest:
        urls.append(dead if len(urls) == 2 else server.url)
        return PreparedRequest("GET", urls[-1], {}, None, has_body=False)

    async with serve(handler) as server:
        state = StreamState()
        events = flatten(open_chunks(client, connect, FAST, state))
        with anyio.fail_after(5):
            async with contextlib.aclosing(events):
                got = [event async for event in events]
    assert ids(got) == ["1", "2"]
    assert state.reconnects == 4 and urls[2] == dead
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "1", "1", "1"]


@pytest.mark.anyio
async def test_auth_error_during_reconnect_is_raised(client) -> None:
    handler = scripted(events_then(sse_lines({"id": "1", "data": "a"}), "abort"), status(403))
    async with serve(handler) as server:
        got: list[ServerSentEvent] = []
        with pytest.raises(AuthError):
            events = flatten(open_chunks(client, connector(server.url), FAST, StreamState()))
            async with contextlib.aclosing(events):
                async for event in events:
                    got.append(event)
    assert ids(got) == ["1"]
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_reconnect_attempts_are_bounded_by_the_callers_deadline(client) -> None:
    handler = scripted(events_then(sse_lines({"id": "1", "data": "a"}), "abort"), status(503))
    async with serve(handler) as server:
        state = StreamState()
        got: list[ServerSentEvent] = []
        with anyio.move_on_after(0.6) as scope:
            events = flatten(open_chunks(client, connector(server.url), FAST, state))
            async with contextlib.aclosing(events):
                async for event in events:
                    got.append(event)
    assert scope.cancelled_caught
    assert ids(got) == ["1"]
    # Each failed attempt waits about max_retry_ms (50 ms here): a dozen attempts, no busy loop.
    assert 2 <= len(server.requests) <= 20
    # The deadline may cut the last attempt before or after the server saw its request.
    assert len(server.requests) - 1 <= state.reconnects <= len(server.requests)


@pytest.mark.anyio
async def test_dropped_post_is_never_sent_again(client) -> None:
    async with serve(events_then(sse_lines({"id": "1", "data": "a"}), "abort")) as server:
        got: list[ServerSentEvent] = []
        with pytest.raises(UpstreamError) as caught:
            events = flatten(
                open_chunks(client, connector(server.url, content=b"{}"), FAST, StreamState())
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    got.append(event)
    assert ids(got) == ["1"]
    assert "request had a body" in caught.value.message
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_reconnect_false_raises_on_drop(client) -> None:
    options = StreamOptions(reconnect=False)
    async with serve(events_then("data: a\n\n", "abort")) as server:
        with pytest.raises(UpstreamError, match="reconnect: false"):
            await read_all(client, server.url, options=options)
    assert len(server.requests) == 1


# -- auth refresh and cancellation ----------------------------------------------------------------


@pytest.mark.anyio
async def test_401_retries_once_after_refresh_auth(client) -> None:
    token = "old"
    refreshed = 0

    async def refresh() -> bool:
        nonlocal token, refreshed
        token, refreshed = "new", refreshed + 1
        return True

    async def handler(request: Request, response: Response) -> None:
        if request.headers["authorization"] != "Bearer new":
            await response.simple(401, "expired")
        else:
            await events_then("data: ok\n\n")(request, response)

    async def connect(last_event_id: str) -> PreparedRequest:
        return PreparedRequest("GET", server.url, {"Authorization": f"Bearer {token}"}, None, False)

    async with serve(handler) as server:
        events = flatten(open_chunks(client, connect, FAST, StreamState(), refresh_auth=refresh))
        async with contextlib.aclosing(events):
            got = [event.data async for event in events]
    assert got == ["ok"] and refreshed == 1
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_401_is_raised_when_refresh_declines(client) -> None:
    async def refresh() -> bool:
        return False

    async with serve(status(401, "who are you")) as server:
        with pytest.raises(AuthError):
            await read_all(client, server.url, refresh_auth=refresh)
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_cancellation_closes_the_upstream_connection(client) -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.send("id: 1\ndata: first\n\n")
        await wait_disconnect(response)

    async with serve(handler) as server:
        got = anyio.Event()

        async def consume() -> None:
            events = flatten(open_chunks(client, connector(server.url), FAST, StreamState()))
            async with contextlib.aclosing(events):
                async for _event in events:
                    got.set()  # then wait in the stream for an event that never comes

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await got.wait()
            assert server.open_connections == 1
            tg.cancel_scope.cancel()
        await server.wait_for_client_close(timeout=1.0)
        assert server.open_connections == 0
