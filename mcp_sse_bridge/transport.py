"""One HTTP client's connections, spread over several connection pools.

Why: httpcore2's connection pool re-examines every connection it holds each time a request
starts and each time a response closes (`_assign_requests_to_connections`). An event stream
holds its connection for the whole call, so with n calls in flight every call pays O(n), and
a burst of 1,000 calls spent about a fifth of the bridge's CPU in those scans. `ShardedTransport`
sends each request to one of a few ordinary `httpx2.AsyncHTTPTransport` pools (the one with the
most room), so every scan is over a fraction of the connections. The client in front of it
(headers, cookies, redirects, timeouts) is unchanged; the bridge keeps one client.

How the limits hold: `limits.max_connections` is a single count over all the pools (a
semaphore held from sending a request until its response is closed), and each pool is given an
exact share of it and of `max_keepalive_connections`, the shares adding up to the limits. A
request that got past the semaphore therefore always finds a pool with room, so no request
waits in one pool while another could take it, and no more sockets are open than one pool of
`max_connections` would open. Waiting for a slot honours the request's `pool` timeout.

A custom transport turns off httpx2's `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` lookup, so
`environment_proxies` builds the same routes, sharded as well, to pass as the client's `mounts`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable

import anyio
import httpx2
from httpx2._utils import get_environment_proxies  # what AsyncClient(trust_env=True) reads

SHARDS = 32  # 1,000 streams: ~31 per pool; the scans fell from 18% of the CPU to 2% (8 pools: 5%)


class ShardedTransport(httpx2.AsyncBaseTransport):
    """Like `httpx2.AsyncHTTPTransport(limits=..., proxy=...)`, with its pool split in `shards`."""

    def __init__(
        self,
        limits: httpx2.Limits,
        *,
        shards: int = SHARDS,
        ssl_context: ssl.SSLContext | None = None,
        proxy: httpx2.Proxy | str | None = None,
    ) -> None:
        total = limits.max_connections
        if total is None or total < 1 or shards < 1:
            raise ValueError("ShardedTransport needs max_connections >= 1 and shards >= 1")
        count = min(shards, total)
        idle = limits.max_keepalive_connections  # a pool keeps at most max_connections idle
        idle = total if idle is None else min(idle, total)
        ssl_context = ssl_context or httpx2.create_ssl_context()
        self._slots = anyio.Semaphore(total)
        self._shards = [
            _Shard(
                httpx2.AsyncHTTPTransport(
                    verify=ssl_context,
                    proxy=proxy,
                    limits=httpx2.Limits(
                        max_connections=connections,
                        max_keepalive_connections=keep,
                        keepalive_expiry=limits.keepalive_expiry,
                    ),
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
        await self._acquire(request)
        shard = max(self._shards, key=_Shard.room)
        shard.open += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            self._release(shard)
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, lambda: self._release(shard))
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.transport.aclose()

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

    __slots__ = ("capacity", "open", "transport")

    def __init__(self, transport: httpx2.AsyncHTTPTransport, capacity: int) -> None:
        self.transport = transport
        self.capacity = capacity
        self.open = 0

    def room(self) -> int:
        return self.capacity - self.open


class _ReleasingStream(httpx2.AsyncByteStream):
    """A response body that gives its connection slot back when it is closed, once."""

    def __init__(self, stream: httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # no extra generator layer per chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                release, self._release = self._release, None
                release()


def environment_proxies(
    limits: httpx2.Limits, *, ssl_context: ssl.SSLContext | None = None, shards: int = SHARDS
) -> dict[str, httpx2.AsyncBaseTransport | None]:
    """The `mounts` httpx2 would build from the proxy environment variables, sharded.

    None (a `NO_PROXY` host) routes to the client's own transport; as in httpx2, each proxy
    route has a `max_connections` of its own.
    """
    return {
        pattern: None
        if url is None
        else ShardedTransport(limits, shards=shards, ssl_context=ssl_context, proxy=url)
        for pattern, url in get_environment_proxies().items()
    }


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal whole shares that add up to it."""
    share, extra = divmod(total, parts)
    return [share + (index < extra) for index in range(parts)]
