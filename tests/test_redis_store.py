"""The Redis Streams store keeps the store contract: numbering, exact drops, cursors, fencing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis

from mcp_sse_bridge.subscriptions.redis_store import RedisStore
from mcp_sse_bridge.subscriptions.store import LeaseLost, StoredEvent, SubscriptionRecord

from .redis_server import redis_server, require_redis_server

pytestmark = pytest.mark.anyio
require_redis_server()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def store(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    client = Redis.from_url(redis_url)
    prefix = f"test:{request.node.name}:"
    yield RedisStore(client, prefix=prefix, max_bytes=1 << 20, lease_ms=2000)
    await client.aclose()


def record(sub_id: str = "sub_0a", key: str = "k", buffer_events: int = 3) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=sub_id,
        key=key,
        tool="t",
        arguments={"a": 1},
        event_types=None,
        match=None,
        buffer_events=buffer_events,
        pinned=False,
        created_at=1.0,
        last_read_at=1.0,
    )


def event(n: int) -> StoredEvent:
    return StoredEvent("tick", str(n), {"n": n}, "2026-12-07T00:00:00.000Z", 10)


async def test_appends_are_numbered_and_overflow_is_dropped_exactly(store: RedisStore) -> None:
    await store.create(record())
    assert await store.claim("sub_0a")
    assert await store.append("sub_0a", [event(i) for i in range(1, 6)]) == 5
    page = await store.read("sub_0a", 0, 10)
    assert [e.seq for e in page.events] == [3, 4, 5]
    assert page.dropped == 2 and not page.has_more
    assert page.events[0].data == {"n": 3}
    described = await store.describe("sub_0a")
    assert (described.last_seq, described.buffered, described.dropped) == (5, 3, 2)
    page = await store.read("sub_0a", 3, 1)
    assert [e.seq for e in page.events] == [4] and page.has_more and page.dropped == 0


async def test_create_with_the_same_key_returns_the_first(store: RedisStore) -> None:
    first = await store.create(record("sub_01"))
    second = await store.create(record("sub_02"))
    assert second.id == first.id == "sub_01"
    assert await store.count() == 1
    await store.delete("sub_01")
    assert await store.count() == 0 and await store.find("k") is None


async def test_concurrent_creates_on_two_clients_never_pass_the_limit_and_joins_need_no_room(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """The limit is checked inside the create script: subscribes racing on several replicas
    (here two clients of the same prefix) cannot both see room for one more."""
    prefix = f"test:{request.node.name}:"
    clients = [Redis.from_url(redis_url) for _ in range(2)]
    stores = [RedisStore(c, prefix=prefix, max_bytes=1 << 20, lease_ms=2000) for c in clients]
    made: list[SubscriptionRecord | None] = []

    async def create(n: int) -> None:
        made.append(await stores[n % 2].create(record(f"sub_{n:02}", key=f"k{n}"), limit=3))

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(create, n)
    created = [r for r in made if r is not None]
    assert len(created) == 3 and await stores[0].count() == 3
    joined = await stores[1].create(record("sub_99", key=created[0].key), limit=3)
    assert joined is not None and joined.id == created[0].id  # full, yet a join gets in
    assert await stores[0].create(record("sub_98", key="new"), limit=3) is None
    for client in clients:
        await client.aclose()


async def test_an_append_without_the_lease_is_fenced(store: RedisStore) -> None:
    await store.create(record())
    with pytest.raises(LeaseLost):
        await store.append("sub_0a", [event(1)])
    assert await store.claim("sub_0a")
    other = RedisStore(store._redis, prefix=store.prefix, max_bytes=1 << 20, lease_ms=2000)
    assert not await other.claim("sub_0a")


async def test_a_waiting_reader_wakes_on_an_append(store: RedisStore) -> None:
    await store.create(record())
    await store.claim("sub_0a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.listen, lambda _id: None)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as inner:

                async def later() -> None:
                    await anyio.sleep(0.2)
                    await store.append("sub_0a", [event(1)])

                inner.start_soon(later)
                assert await store.wait_for_new("sub_0a", 0, 4)
        tg.cancel_scope.cancel()


def sized(n: int, size: int) -> StoredEvent:
    return StoredEvent("tick", str(n), {"n": n}, "2026-12-07T00:00:00.000Z", size)


async def exact(store: RedisStore, sub_id: str) -> tuple[int, int, int]:
    """(bytes, buffered, dropped) as the record says, checked against what is buffered."""
    described = await store.describe(sub_id)
    page = await store.read(sub_id, 0, 100)
    assert described.bytes == sum(e.size for e in page.events)
    assert described.buffered == len(page.events)
    assert described.dropped == described.last_seq - len(page.events) == page.dropped
    return described.bytes, described.buffered, described.dropped


async def test_bytes_and_drops_stay_exact_through_trims_of_any_size(store: RedisStore) -> None:
    await store.create(record(buffer_events=5))
    assert await store.claim("sub_0a")
    n = 0
    for chunk in (1, 3, 7, 2, 5, 11, 1, 4):
        await store.append("sub_0a", [sized(n + i, 3 + (n + i) % 7) for i in range(chunk)])
        n += chunk
        await exact(store, "sub_0a")
    total = int(await store._redis.get(store._key("bytes")))
    assert total == (await store.describe("sub_0a")).bytes


async def test_the_deployment_byte_limit_drops_the_oldest_exactly(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    store = RedisStore(client, prefix="test:cap:", max_bytes=50, lease_ms=2000)
    try:
        await store.create(record(buffer_events=100))
        assert await store.claim("sub_0a")
        await store.append("sub_0a", [sized(i, 10) for i in range(4)])
        await store.append("sub_0a", [sized(i, 10) for i in range(4, 7)])
        assert await exact(store, "sub_0a") == (50, 5, 2)
        assert [e.seq for e in (await store.read("sub_0a", 0, 10)).events] == [3, 4, 5, 6, 7]
    finally:
        await store.delete("sub_0a")
        await client.aclose()


async def test_entries_written_without_running_totals_are_still_counted_when_trimmed(
    store: RedisStore,
) -> None:
    """A buffer written before entries carried `c` (the running total) is trimmed exactly."""
    await store.create(record(buffer_events=3))
    assert await store.claim("sub_0a")
    events, sub = store._key("events", "sub_0a"), store._key("sub", "sub_0a")
    for seq, size in ((1, 4), (2, 6), (3, 8)):  # as the earlier script wrote them
        await store._redis.xadd(
            events, {"s": size, "e": b'["tick","x",1,"t",false]'}, id=f"0-{seq}"
        )
    await store._redis.hset(sub, mapping={"last_seq": 3, "bytes": 18, "buffered": 3})
    await store._redis.incrby(store._key("bytes"), 18)
    await store.append("sub_0a", [sized(4, 5), sized(5, 7)])
    assert await exact(store, "sub_0a") == (8 + 5 + 7, 3, 2)
