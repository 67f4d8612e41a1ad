"""The shared HTTP client's direct route: one httpcore2 connection per request.

Why no pool: an event stream holds its connection for the whole call and is closed by the
bridge mid-body far more often than it ends cleanly, so a kept-alive connection is rarely there
to reuse; meanwhile httpcore2's pool re-examines every connection it holds each time a request
starts and each time a response closes (O(open streams) each), and its bookkeeping cost about as
much per call as the connection itself. `StreamTransport` opens an `httpcore2.AsyncHTTPConnection`
for each request and closes it with the response. It does what `httpx2.AsyncHTTPTransport` does
around its pool (request and response conversion, httpcore2's errors raised as httpx2's), so the
client in front of it (headers, timeouts) is unchanged. Connections reach the network through
`network.AsyncioBackend`, which reads without a cancel scope per read.

`max_connections` is a semaphore held from sending a request until its response is closed;
waiting for a slot honours the request's `pool` timeout. The SSL context is shared.

A custom transport turns off httpx2's `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` lookup, so
`environment_proxies` builds the same routes as httpx2 would (its own transport per proxy), to
pass as the client's `mounts`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Callable

import anyio
import httpcore2
import httpx2
from httpx2._utils import get_environment_proxies  # what AsyncClient(trust_env=True) reads

from ..errors import BridgeError
from ..urls import display_url
from .auth import basic_header
from .network import AsyncioBackend

# httpcore2's errors and the httpx2 errors `httpx2.AsyncHTTPTransport` turns them into.
_ERRORS: dict[type[Exception], type[httpx2.TransportError]] = {
    getattr(httpcore2, name): getattr(httpx2, name)
    for name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "ProxyError",
        "UnsupportedProtocol",
        "RemoteProtocolError",
        "LocalProtocolError",
        "ProtocolError",
    )
}


class StreamTransport(httpx2.AsyncBaseTransport):
    """Like `httpx2.AsyncHTTPTransport(limits=...)`, with a new connection for every request."""

    def __init__(self, max_connections: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if max_connections < 1:
            raise ValueError("StreamTransport needs max_connections >= 1")
        self.max_connections = max_connections
        self._slots = anyio.Semaphore(max_connections)
        self._ssl_context = ssl_context or httpx2.create_ssl_context()
        self._backend = AsyncioBackend()
        self.open_responses = 0  # sent and not yet closed (for tests and debugging)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(
                f"Unsupported URL scheme {url.scheme!r}: only http and https.", request=request
            )
        target = httpcore2.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        await self._acquire(request)
        self.open_responses += 1
        connection = httpcore2.AsyncHTTPConnection(
            target.origin, ssl_context=self._ssl_context, network_backend=self._backend
        )
        try:
            response = await connection.handle_async_request(
                httpcore2.Request(
                    method=request.method,
                    url=target,
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )
        except BaseException as exc:  # cancelled too: the socket and the slot must go
            await connection.aclose()  # shielded inside httpcore2
            self._release()
            if error := _httpx2_error(exc, request):
                raise error from exc
            raise
        body = _Body(response.stream, request, connection, self._release)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=body,
            extensions=response.extensions,
        )

    async def _acquire(self, request: httpx2.Request) -> None:
        """Take a connection slot, waiting at most the request's pool timeout."""
        try:
            self._slots.acquire_nowait()  # no checkpoint and no cancel scope while slots are free
            return
        except anyio.WouldBlock:
            pass
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            with anyio.fail_after(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx2.PoolTimeout(
                f"All {self.max_connections} connections are in use (max_connections).",
                request=request,
            ) from None

    def _release(self) -> None:
        self.open_responses -= 1
        self._slots.release()


class _Body(httpx2.AsyncByteStream):
    """A response body with httpx2's errors, that closes its connection and gives the slot back
    when it is closed. It is its own iterator (no generator layer per chunk), and closing it
    twice releases once."""

    def __init__(
        self,
        stream: httpcore2.AsyncByteStream,
        request: httpx2.Request,
        connection: httpcore2.AsyncHTTPConnection,
        release: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._request = request
        self._connection = connection
        self._chunks: AsyncIterator[bytes] | None = None
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = aiter(self._stream)
        try:
            return await anext(self._chunks)
        except Exception as exc:
            if error := _httpx2_error(exc, self._request):
                raise error from exc
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except Exception as exc:
            if error := _httpx2_error(exc, self._request):
                raise error from exc
            raise
        finally:
            await self._connection.aclose()
            if self._release is not None:
                release, self._release = self._release, None
                release()


def _httpx2_error(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError | None:
    """The httpx2 error for httpcore2's `exc` (the most specific one), or None for others."""
    for cls in type(exc).__mro__:
        if mapped := _ERRORS.get(cls):
            return mapped(str(exc), request=request)
    return None


class StreamClient:
    """Sends event-stream requests: the stream path's lean stand-in for `httpx2.AsyncClient`.

    The client's layers for auth flows, redirects, cookies and event hooks do nothing for an
    event stream (stream.py follows redirects itself and the bridge keeps no cookies; the one
    thing the auth layer does, sending a URL's `user:password@` as Basic auth, is done by
    `build_request`),
    yet they were a tenth of a call's CPU. Requests get the client's default headers and no
    timeouts (the caller bounds the handshake) and go straight to the direct transport, unless
    the environment sets proxies (no `direct` transport given): then `client.send` routes them
    as httpx2 does.
    """

    def __init__(
        self, client: httpx2.AsyncClient, direct: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        """`direct` is the client's own transport when no proxy route exists, else None."""
        self._client = client
        self._direct = direct

    def build_request(
        self,
        method: str,
        url: str | httpx2.URL,
        *,
        headers: dict[str, str | bytes],
        content: bytes | None = None,
    ) -> httpx2.Request:
        merged = self._client.headers.copy()
        merged.update(headers)
        request = httpx2.Request(method, url, headers=merged, content=content)
        if request.url.userinfo:  # what the client's auth layer does with `https://user:pw@...`
            request.headers["Authorization"] = basic_header(
                request.url.username, request.url.password
            )
        return request

    async def send(self, request: httpx2.Request) -> httpx2.Response:
        """The response with its head read and its body not (close it when done)."""
        if self._direct is None:
            return await self._client.send(request, stream=True)
        response = await self._direct.handle_async_request(request)
        response.request = request
        return response


def environment_proxies(
    limits: httpx2.Limits, *, ssl_context: ssl.SSLContext | None = None
) -> dict[str, httpx2.AsyncBaseTransport | None]:
    """The `mounts` httpx2 would build from the proxy environment variables.

    None (a `NO_PROXY` host) routes to the client's own transport; as in httpx2, each proxy
    route is an `httpx2.AsyncHTTPTransport` with a `max_connections` of its own. A proxy httpx2
    cannot use (a SOCKS proxy without `socksio`, an unknown scheme) gets a route that fails each
    request saying why: httpx2 would raise at start-up, and going around the proxy the user set
    is not ours to decide.
    """
    verify = ssl_context or httpx2.create_ssl_context()
    routes: dict[str, httpx2.AsyncBaseTransport | None] = {}
    for pattern, url in get_environment_proxies().items():
        if url is None:
            routes[pattern] = None
            continue
        try:
            routes[pattern] = httpx2.AsyncHTTPTransport(verify=verify, limits=limits, proxy=url)
        except (ImportError, ValueError, httpx2.InvalidURL) as exc:
            routes[pattern] = _UnusableProxy(pattern, url, exc)
    return routes


def proxy_credentials() -> list[str]:
    """What the environment's proxies authenticate with: each password, and the Basic token
    httpx2 sends as `Proxy-Authorization`. They are secrets to redact like any other, since a
    proxy's error page may echo them."""
    found: list[str] = []
    for url in get_environment_proxies().values():
        try:
            parsed = httpx2.URL(url or "")
        except httpx2.InvalidURL:
            continue
        if parsed.password:
            token = basic_header(parsed.username, parsed.password).removeprefix("Basic ")
            found += [parsed.password, token]
    return found


class _UnusableProxy(httpx2.AsyncBaseTransport):
    """The route of a proxy from the environment that httpx2 cannot use: each request fails."""

    def __init__(self, pattern: str, url: str, exc: Exception) -> None:
        variable = f"{pattern.partition(':')[0].upper()}_PROXY"
        why = (
            "SOCKS proxies need the socksio package (pip install socksio)"
            if isinstance(exc, ImportError)
            else "only http://, https:// and socks5:// proxies are supported"
        )
        self.reason = f"the proxy {display_url(url)!r} from {variable} cannot be used: {why}"

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ProxyError(self.reason, request=request)


def ssl_context() -> ssl.SSLContext:
    """httpx2's default context, which trusts only SSL_CERT_FILE when it is set. Made with the
    bridge, so that a file that cannot be loaded stops `serve` and `call` with one line naming
    it, rather than with a traceback from inside httpx2 once the server runs."""
    try:
        return httpx2.create_ssl_context()
    except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
        path = os.environ.get("SSL_CERT_FILE")
        where = f"SSL_CERT_FILE ({path})" if path else "the system"
        raise BridgeError(
            f"Cannot load the CA certificates of {where}: {exc}.",
            hint="Point SSL_CERT_FILE at a PEM file of CA certificates, or unset it to trust "
            "the system's.",
        ) from None
