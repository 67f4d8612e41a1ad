"""Connect to an upstream event stream, check the handshake, and reconnect after drops.

`open_chunks` turns a request factory into one logical stream of events across connections, so
the batch collector sees events only. It yields the events parsed from each network chunk as one
list: a firehose delivers hundreds of events per chunk, and handing them over one at a time
through async generators cost a quarter of a filtered call. Decisions worth knowing:

- Handshake: only a 200 with Content-Type `text/event-stream` is a stream, as EventSource has
  it. A non-2xx status raises a typed error carrying the status and a short sanitised excerpt of
  the body; 204 means "stop" (the stream ends, no reconnect); another 2xx, or a 200 with another
  Content-Type, raises `ProtocolError` and is never retried.
- `Last-Event-ID` is sent as UTF-8 bytes: an id is any text but CR, LF and NUL, accents
  included, and the server must get back exactly what it sent.
- Redirects are followed by hand, at most `MAX_REDIRECTS`, and only within the same origin
  (scheme, host and port): the request may carry credentials in headers or the query string,
  which must never reach another server. Every target is re-checked with `check_url`.
- Failures follow `retry.RetryPolicy`. On the first connection only a status that says "come
  back later" (408, 429, 502, 503, 504) is retried, at most `first_attempts` times, and only
  while the wait (at least `Retry-After`) fits before the caller's deadline (its cancel scope's):
  a wrong URL, bad credentials or a server that is down are reported, not retried in silence
  until the deadline. Once a stream has been established, a drop, a connect error, a 5xx, a 408
  or a 429 is retried with backoff until the caller's cancel scope ends the call. A 401 can be
  retried once at once on any attempt when `refresh_auth` says new credentials are ready (an
  expired OAuth2 token).
- Running out of time is the caller's business (its cancel scope), but `state.connecting` tells
  it whether the first handshake was still under way: an upstream that never answered is an
  error, not an empty batch that looks like a quiet stream.
- Every reconnect waits at least `retry.MIN_BACKOFF_MS`, whatever `retry:` says, so a server sending
  `retry: 0` and dropping after each event gets at most about ten connections a second. The
  delay doubles per consecutive attempt that delivered no event, and resets after one that did.
- A refused handshake's body is read for a short, shielded while (`refusal.EXCERPT_READ_SECONDS`, at
  most half the time left): a body that trickles must not eat the call's budget and turn the
  refusal into an empty batch; the typed error comes with whatever arrived.
- A request with a body is never re-sent after a drop (a POST may not be idempotent).
- A subscription's feed has no deadline: with `reconnect_after_end` a clean end of the body is
  reconnected like a drop (as EventSource does), `max_failures` ends the retries, and
  `state.watch` hears each connection open and close (its live/reconnecting state).
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx2

from ..errors import AuthError, ConnectError, HTTPStatusError, ProtocolError, UpstreamError
from ..urls import check_url
from .refusal import display_request as _where
from .refusal import refusal
from .request import PreparedRequest
from .retry import FIRST_BACKOFF_MS, RetryPolicy
from .sse import EventStreamParser, ServerSentEvent
from .transport import StreamClient

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5

_REDIRECTS = (301, 302, 303, 307, 308)
_BYTES_REPR = re.compile(r"bytearray\(b'([^']*)'\)|\bb'([^']*)'")  # h11 quotes bytes as reprs

Connect = Callable[[str], Awaitable[PreparedRequest]]
RefreshAuth = Callable[[], Awaitable[bool]]
LineHook = Callable[[list[str]], None]  # sees the complete lines of each chunk (the probe)


class StreamObserver(Protocol):
    """Sees what a call never keeps: each handshake's response and every line of the body."""

    def response(self, response: httpx2.Response) -> None:
        """An event stream was established (status, headers; the body is not read yet)."""

    def lines(self, lines: list[str]) -> None:
        """The complete lines of one chunk, comments and data-less blocks included."""


@dataclass
class StreamOptions:
    reconnect: bool = True
    retry_ms: int = 30000  # until the server sends retry:
    max_retry_ms: int = 30000  # cap for backoff
    connect_timeout: float = 10.0  # until the response headers
    first_attempts: int = 5  # of the first connection, while the upstream refuses
    max_line_bytes: int = 1 << 20
    max_event_bytes: int = 1 << 20
    allow_insecure_http: bool = False  # for redirect targets, as for the first URL
    reconnect_after_end: bool = False  # a feed: a clean end of the body is reconnected too
    max_failures: int | None = None  # consecutive failed reconnects before giving up (None: never)

    def parser(self, last_event_id: str, observe: LineHook | None = None) -> EventStreamParser:
        """The parser for one logical stream; it outlives each connection."""
        return EventStreamParser(
            max_line_bytes=self.max_line_bytes,
            max_event_bytes=self.max_event_bytes,
            last_event_id=last_event_id,
            observe=observe,
        )

    def policies(self) -> tuple[RetryPolicy, RetryPolicy]:
        """The retry rules before a stream is established (bounded) and after (the deadline).

        Before, the backoff starts at `FIRST_BACKOFF_MS` at most: the manual's `retry_timeout`
        (30 s by default) is a reconnect delay, and would not fit in a call's `max_seconds`.
        """
        base = min(self.retry_ms, FIRST_BACKOFF_MS)
        first = RetryPolicy(base, self.max_retry_ms, self.first_attempts)
        return first, RetryPolicy(self.retry_ms, self.max_retry_ms, self.max_failures)


@dataclass
class StreamState:
    """Shared with the batch collector: where to resume, and what happened on the way."""

    last_event_id: str = ""
    reconnects: int = 0
    oversized: int = 0
    connecting: bool = False  # True from the start of `open_chunks` to its first handshake
    where: str = ""  # method and URL of the latest attempt, for messages (no query, no userinfo)
    refused: str = ""  # the latest refusal of the first connection, when it is being retried
    connected: bool = False  # a response body is being read right now
    watch: Callable[[], None] | None = None  # told when `connected` changes (a feed's state)


async def open_chunks(
    client: StreamClient,
    connect: Connect,
    options: StreamOptions,
    state: StreamState,
    *,
    refresh_auth: RefreshAuth | None = None,
    observer: StreamObserver | None = None,
) -> AsyncIterator[list[ServerSentEvent]]:
    """Yield the upstream's events, one list per chunk read, reconnecting after drops.

    `connect(last_event_id)` builds the authenticated request for each attempt; `Last-Event-ID`
    is added here when `state.last_event_id` is not empty. While a list is out,
    `state.last_event_id` is already the stream's last event ID after it (what a reconnect
    sends), so a consumer that stops inside a list keeps its own cursor. A chunk that completes
    no event yields an empty list if it moved the last event ID (an id-only block), else nothing.
    The iterator ends on a clean end of the body or a 204, and raises the typed `UpstreamError`
    subclasses; the caller's cancel scope bounds it, and the response is closed however it ends.
    `state.connecting` is True until the first handshake is done. An `observer` sees each
    established response and every line read (see `StreamObserver`).
    """
    parser = options.parser(state.last_event_id, None if observer is None else observer.lines)
    attempts = _Attempts(*options.policies())
    state.connecting = True
    while True:
        request, response = await _connection(
            client, connect, options, state, refresh_auth, attempts, parser
        )
        state.connecting = False
        if response is None:
            return
        if observer is not None:
            observer.response(response)
        _set_connected(state, True)
        delivered = False
        try:
            async for chunk in response.aiter_bytes():
                if (events := _feed(parser, state, chunk)) is not None:
                    delivered = delivered or bool(events)
                    yield events
            if not (options.reconnect_after_end and options.reconnect and not request.has_body):
                return
        except (httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
            if not options.reconnect or request.has_body:
                raise _dropped(request) from exc
        except httpx2.DecodingError as exc:
            raise _undecodable(state.where, exc) from exc
        finally:
            _set_connected(state, False)
            parser.close()
            await _close(response)
        attempts.failures = 0 if delivered else attempts.failures + 1
        await anyio.sleep(attempts.again.pause(attempts.failures, parser.retry))
        state.reconnects += 1


@dataclass
class _Attempts:
    """The retry bookkeeping of one logical stream, across its connections."""

    first: RetryPolicy  # before a stream is established
    again: RetryPolicy  # after
    failures: int = 0  # consecutive attempts that delivered no event
    has_body: bool = False  # the latest request's (a body is never re-sent after a drop)


async def _connection(
    client: StreamClient,
    connect: Connect,
    options: StreamOptions,
    state: StreamState,
    refresh_auth: RefreshAuth | None,
    attempts: _Attempts,
    parser: EventStreamParser,
) -> tuple[PreparedRequest, httpx2.Response | None]:
    """The next established connection (no response: a 204), after the retries the policies
    allow; raises the last refusal when they allow no more."""
    while True:
        try:
            request = await connect(state.last_event_id)
            attempts.has_body = request.has_body
            return await _establish(client, request, connect, options, state, refresh_auth)
        except UpstreamError as exc:
            attempts.failures += 1
            policy = attempts.first if state.connecting else attempts.again
            await _wait_to_retry(policy, exc, attempts.failures, attempts.has_body, parser, state)


def _feed(
    parser: EventStreamParser, state: StreamState, chunk: bytes
) -> list[ServerSentEvent] | None:
    """The events `chunk` completes; None when it completed none and left the id as it was."""
    before, last_id = parser.oversized, state.last_event_id
    events = parser.feed(chunk)
    state.oversized += parser.oversized - before
    state.last_event_id = parser.last_event_id
    return events if events or parser.last_event_id != last_id else None


async def _wait_to_retry(
    policy: RetryPolicy,
    error: UpstreamError,
    failures: int,
    has_body: bool,
    parser: EventStreamParser,
    state: StreamState,
) -> None:
    """Wait before the next attempt, or raise `error` (amended) when there must be none.

    Before a stream is established the wait must fit in the caller's deadline (its cancel
    scope's), or the call ends at once; after, the scope ends a call mid-wait, and the batch
    collected so far is its result.
    """
    deadline: float | None = anyio.current_effective_deadline()
    if not state.connecting or deadline == math.inf:
        deadline = None
    delay = policy.wait(
        error,
        failures=failures,
        established=not state.connecting,
        has_body=has_body,
        server_retry_ms=parser.retry,
        deadline=deadline,
    )
    if state.connecting:
        state.refused = str(error)
        logger.info(
            "upstream %s refused (%s); retrying in %.2f s", state.where, error.status, delay
        )
    await anyio.sleep(delay)
    state.reconnects += 1


def _set_connected(state: StreamState, connected: bool) -> None:
    state.connected = connected
    if state.watch is not None:
        state.watch()


async def _establish(
    client: StreamClient,
    request: PreparedRequest,
    connect: Connect,
    options: StreamOptions,
    state: StreamState,
    refresh_auth: RefreshAuth | None,
) -> tuple[PreparedRequest, httpx2.Response | None]:
    """One attempt: the request and its open event-stream response (None after a 204)."""
    state.where = _where(request.method, request.url)
    try:
        return request, await _handshake(client, request, options, state.last_event_id)
    except AuthError as exc:
        if exc.status != 401 or refresh_auth is None or not await refresh_auth():
            raise
    request = await connect(state.last_event_id)
    return request, await _handshake(client, request, options, state.last_event_id)


async def _handshake(
    client: StreamClient, prepared: PreparedRequest, options: StreamOptions, last_id: str
) -> httpx2.Response | None:
    """Send the request, following same-origin redirects; raise for anything but a stream."""
    headers: dict[str, str | bytes] = {
        name: value for name, value in prepared.headers.items() if name.lower() != "last-event-id"
    }
    if last_id:  # h11 refuses surrounding blanks; HTTP does not count them as part of a value
        headers["Last-Event-ID"] = last_id.strip(" \t").encode()
    method, url, content = prepared.method, prepared.url, prepared.content
    for _ in range(MAX_REDIRECTS + 1):
        try:
            request = client.build_request(method, url, headers=headers, content=content)
        except httpx2.InvalidURL as exc:
            raise ConnectError(
                f"Invalid upstream URL: {exc}.", hint="Fix the tool's url in the manual."
            ) from exc
        response = await _send(client, request, options.connect_timeout)
        status = response.status_code
        if status == 200 and _is_event_stream(response):
            return response
        try:
            if status == 204:
                return None
            if not (status in _REDIRECTS and "location" in response.headers):
                raise await refusal(response)
            url = str(_redirect_target(response, options))
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, content = "GET", None  # as browsers do: the body is not re-sent
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        finally:
            await _close(response)
    raise HTTPStatusError(
        f"Too many redirects (more than {MAX_REDIRECTS}) from {_where(method, prepared.url)}.",
        status=status,
        hint="Put the final URL of the event stream into the manual.",
    )


async def _send(client: StreamClient, request: httpx2.Request, timeout: float) -> httpx2.Response:
    """Send and wait for the response headers, at most `timeout` seconds in all (the one
    deadline of the handshake: the requests carry no httpx2 timeouts; the body's silence is the
    batch's idle bound)."""
    where = _where(request.method, request.url)
    try:
        with anyio.fail_after(timeout):
            response = await client.send(request)
    except (TimeoutError, httpx2.TimeoutException) as exc:
        raise ConnectError(
            f"No response headers from {where} within {timeout:g} s.",
            hint="Check that the server is up and the URL is its event stream.",
        ) from exc
    except httpx2.TransportError as exc:
        reason = _BYTES_REPR.sub(_unrepr, str(exc)).rstrip(".") or type(exc).__name__
        if _caused_by(exc, ssl.SSLCertVerificationError):
            hint = (
                "The server's TLS certificate was refused. If it comes from a private CA, point "
                "SSL_CERT_FILE at a PEM bundle that includes that CA (the variable replaces the "
                "system's CAs); check that the URL's host is the name the certificate is for."
            )
        elif _caused_by(exc, ssl.SSLError):  # e.g. WRONG_VERSION_NUMBER: plain HTTP answered
            hint = "The TLS handshake failed; check that the server speaks https on that port."
        elif isinstance(exc, httpx2.ProxyError):
            hint = "Check the proxy settings: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY."
        elif isinstance(exc, httpx2.ProtocolError):
            hint = "The server did not answer with HTTP/1.1; check the URL's scheme and port."
        else:
            hint = "Check the host and port in the tool's URL, and that the server is running."
        raise ConnectError(f"Cannot connect to {where}: {reason}.", hint=hint) from exc
    logger.info("upstream %s: HTTP %d", where, response.status_code)
    return response


def _unrepr(match: re.Match[str]) -> str:
    """`bytearray(b'HTTP/9')` or `b'HTTP/9'` as `'HTTP/9'`."""
    return f"'{match[1] if match[1] is not None else match[2]}'"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is in `exc`'s chain of causes (bounded: chains can loop)."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return False
        if isinstance(cause, kind):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _redirect_target(response: httpx2.Response, options: StreamOptions) -> httpx2.URL:
    """Where a redirect points, if we may follow it there."""
    request, status = response.request, response.status_code
    where = f"{_where(request.method, request.url)} (HTTP {status})"
    try:
        target = request.url.join(response.headers["location"])
    except httpx2.InvalidURL as exc:
        raise HTTPStatusError(
            f"{where} redirects to an invalid URL: {exc}.",
            status=status,
            hint="Put the stream's final URL into the manual.",
        ) from exc
    if target.scheme not in ("http", "https") or target.origin != request.url.origin:
        raise HTTPStatusError(
            f"{where} redirects to another origin ({target.scheme}://{target.netloc.decode()}); "
            "not followed, because the request may carry credentials.",
            status=status,
            hint="Put the URL the server redirects to into the manual, if you trust that server.",
        )
    check_url(str(target), allow_insecure_http=options.allow_insecure_http)
    return target


def _undecodable(where: str, exc: httpx2.DecodingError) -> ProtocolError:
    return ProtocolError(
        f"The event stream from {where} could not be decoded: {exc}.",
        hint="The server's Content-Encoding is broken; report it to the API's owner.",
    )


def _dropped(request: PreparedRequest) -> UpstreamError:
    why = "the request had a body" if request.has_body else "the manual sets reconnect: false"
    return UpstreamError(
        f"The upstream dropped the connection mid-stream ({_where(request.method, request.url)});"
        f" not reconnecting because {why}.",
        hint="Call the tool again to continue; pass last_event_id to resume where it stopped.",
    )


def _is_event_stream(response: httpx2.Response) -> bool:
    media_type = response.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "text/event-stream"


async def _close(response: httpx2.Response) -> None:
    """Close even when the caller is being cancelled, so the upstream sees us go at once."""
    with anyio.CancelScope(shield=True):
        await response.aclose()
