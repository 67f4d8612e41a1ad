"""The shared HTTP client's direct route: httpcore2 pools on asyncio protocols, sharded.

Why: httpcore2's connection pool re-examines every connection it holds each time a request
starts and each time a response closes (`_assign_requests_to_connections`). An event stream
holds its connection for the whole call, so with n calls in flight every call pays O(n), and
a burst of 1,000 calls spent about a fifth of the bridge's CPU in those scans. `ShardedTransport`
sends each request to one of a few `httpcore2.AsyncConnectionPool`s (the one with the most room),
so every scan is over a fraction of the connections. Its pools talk to the network through
`network.AsyncioBackend`, which reads without a cancel scope per read. It does what
`httpx2.AsyncHTTPTransport` does around a pool (the request and response conversion, httpcore2's
errors as httpx2's), so the client in front of it (headers, redirects, timeouts) is unchanged.

How the limits hold: `limits.max_connections` is a single count over all the pools (a
semaphore held from sending a request until its response is closed), and each pool is given an
exact share of it and of `max_keepalive_connections`, the shares adding up to the limits. A
request that got past the semaphore therefore always finds a pool with room, so no request
waits in one pool while another could take it, and no more sockets are open than one pool of
`max_connections` would open. Waiting for a slot honours the request's `pool` timeout.

A custom transport turns off httpx2's `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` lookup, so
`environment_proxies` builds the same routes as httpx2 would (its own transport per proxy), to
pass as the client's `mounts`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable

import anyio
import httpcore2
import httpx2
from httpx2._utils import get_environment_proxies  # what AsyncClient(trust_env=True) reads

from .network import AsyncioBackend

SHARDS = 32  # 1,000 streams: ~31 per pool; the scans fell from 18% of the CPU to 2% (8 pools: 5%)

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


class ShardedTransport(httpx2.AsyncBaseTransport):
    """Like `httpx2.AsyncHTTPTransport(limits=...)`, with its pool split in `shards`."""

    def __init__(
        self,
        limits: httpx2.Limits,
        *,
        shards: int = SHARDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        total = limits.max_connections
        if total is None or total < 1 or shards < 1:
            raise ValueError("ShardedTransport needs max_connections >= 1 and shards >= 1")
        count = min(shards, total)
        idle = limits.max_keepalive_connections  # a pool keeps at most max_connections idle
        idle = total if idle is None else min(idle, total)
        ssl_context = ssl_context or httpx2.create_ssl_context()
        backend = AsyncioBackend()
        self._slots = anyio.Semaphore(total)
        self._shards = [
            _Shard(
                httpcore2.AsyncConnectionPool(
                    ssl_context=ssl_context,
                    max_connections=connections,
                    max_keepalive_connections=keep,
                    keepalive_expiry=limits.keepalive_expiry,
                    network_backend=backend,
                ),
                capacity=connections,
            )
            for connections, keep in zip(_split(total, count), _split(idle, count), strict=True)
        ]

    @property
    def open_responses(self) -> list[int]:
        """Responses not yet closed, per pool (for tests and debugging)."""
        return [shard.open for shard in self._shards]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        await self._acquire(request)
        shard = max(self._shards, key=_Shard.room)
        shard.open += 1
        url = request.url
        try:
            response = await shard.pool.handle_async_request(
                httpcore2.Request(
                    method=request.method,
                    url=httpcore2.URL(
                        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                    ),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )
        except BaseException as exc:  # cancelled too: the slot must come back
            self._release(shard)
            if error := _httpx2_error(exc, request):
                raise error from exc
            raise
        body = _Body(response.stream, request, lambda: self._release(shard))
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=body,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.pool.aclose()

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
                f"All {len(self._shards)} pools are full (max_connections reached).",
                request=request,
            ) from None

    def _release(self, shard: _Shard) -> None:
        shard.open -= 1
        self._slots.release()


class _Shard:
    """One pool and the responses it has open."""

    __slots__ = ("capacity", "open", "pool")

    def __init__(self, pool: httpcore2.AsyncConnectionPool, capacity: int) -> None:
        self.pool = pool
        self.capacity = capacity
        self.open = 0

    def room(self) -> int:
        return self.capacity - self.open


class _Body(httpx2.AsyncByteStream):
    """A response body with httpx2's errors, that gives its connection slot back when closed.

    It is its own iterator (no generator layer per chunk), and closing it twice releases once.
    """

    def __init__(
        self,
        stream: httpcore2.AsyncByteStream,
        request: httpx2.Request,
        release: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._request = request
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
            if self._release is not None:
                release, self._release = self._release, None
                release()


def _httpx2_error(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError | None:
    """The httpx2 error for httpcore2's `exc` (the most specific one), or None for others."""
    for cls in type(exc).__mro__:
        if mapped := _ERRORS.get(cls):
            return mapped(str(exc), request=request)
    return None


def environment_proxies(
    limits: httpx2.Limits, *, ssl_context: ssl.SSLContext | None = None
) -> dict[str, httpx2.AsyncBaseTransport | None]:
    """The `mounts` httpx2 would build from the proxy environment variables.

    None (a `NO_PROXY` host) routes to the client's own transport; as in httpx2, each proxy
    route is an `httpx2.AsyncHTTPTransport` with a `max_connections` of its own.
    """
    verify = ssl_context or httpx2.create_ssl_context()
    return {
        pattern: None
        if url is None
        else httpx2.AsyncHTTPTransport(verify=verify, limits=limits, proxy=url)
        for pattern, url in get_environment_proxies().items()
    }


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal whole shares that add up to it."""
    share, extra = divmod(total, parts)
    return [share + (index < extra) for index in range(parts)]
