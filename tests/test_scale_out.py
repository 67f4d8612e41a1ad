"""Several bridge replicas (separate processes, streamable HTTP) sharing subscriptions through a
real Redis: any replica answers for any subscription, one upstream connection per feed, a dead
owner's feed moves to another replica with nothing appended twice, and Redis trouble is clear.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated
from redis.asyncio import Redis

from tests.acceptance.bridges import CLI
from tests.feeds import SECRET, Heard, Ticker, ids
from tests.redis_server import free_port, redis_server, require_redis_server
from tests.replicas import (
    LEASE,
    Replaying,
    call,
    deployment,
    feeding,
    replica,
    replicas,
    structured,
    write_manual,
)

pytestmark = pytest.mark.anyio


require_redis_server()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def store(redis_url: str, request: pytest.FixtureRequest) -> str:
    """The shared Redis, as a `--store` URL; each test keeps to its own key prefix."""
    return redis_url


def prefixed(request: pytest.FixtureRequest) -> tuple[str, str]:
    return "--store-prefix", f"t-{request.node.name}:"


async def read_until(url: str, sub: str, count: int, mode: str = "auto") -> list[dict]:
    """Read `sub` on the replica at `url` (waiting for news) until `count` events came."""
    events: list[dict] = []
    with anyio.fail_after(20):
        async with mcp.Client(url, mode=mode) as client:
            while len(events) < count:
                result = structured(
                    await client.call_tool(
                        "read_subscription",
                        {"subscription": sub, "max_events": 1000, "wait_seconds": 2},
                    )
                )
                events += result["events"]
    return events


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_subscription_made_on_one_replica_is_read_listed_and_ended_on_another(
    tmp_path: Path, store: str, mode: str, request: pytest.FixtureRequest
) -> None:
    ticker = Ticker(0.02)
    async with deployment(ticker, tmp_path, store, 2, "--store-prefix", f"t-{mode}-cross:") as (
        upstream,
        (a, b),
    ):
        sub = await call(a.url, "subscribe", mode, tool="ticks", arguments={})
        sub_id = sub["subscription"]
        first = await read_until(b.url, sub_id, 5, mode)
        more = await read_until(a.url, sub_id, 5, mode)  # continues where b's read ended
        got = ids(first + more)
        assert got == list(range(got[0], got[0] + len(got)))  # in order, none twice
        listed = (await call(b.url, "list_subscriptions", mode))["subscriptions"]
        assert [item["subscription"] for item in listed] == [sub_id]
        assert SECRET not in repr(listed)
        assert upstream.open_connections == 1
        ended = await call(b.url, "unsubscribe", mode, subscription=sub_id)
        assert ended["state"] == "ended"
        with anyio.fail_after(1.5):  # the owner (a) closes its upstream connection
            while upstream.open_connections:
                await upstream.connection_closed.wait()
        async with mcp.Client(a.url, mode=mode) as client:
            result = await client.call_tool("read_subscription", {"subscription": sub_id})
        assert result.is_error and "No subscription" in result.content[0].text


async def test_a_killed_owners_feed_moves_to_another_replica_with_nothing_lost_or_repeated(
    tmp_path: Path, store: str
) -> None:
    feed = Replaying(0.02)
    async with feeding(feed) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        prefix = ("--store-prefix", "t-takeover:")
        async with (
            replica(manual, store, *prefix) as a,
            replicas(manual, store, 2, *prefix) as (b, c),
        ):
            sub_id = (await call(a.url, "subscribe", tool="ticks", arguments={}))["subscription"]
            events = await read_until(b.url, sub_id, 20)
            a.kill()  # SIGKILL: no lease released, the feed's connection just dies
            killed = datetime.datetime.now(datetime.UTC)
            events += await read_until(c.url, sub_id, len(events) + 80)
            listed = (await call(b.url, "list_subscriptions"))["subscriptions"]
    got = ids(events)
    assert got == list(range(got[0], got[0] + len(got)))  # every id once, in order
    arrived = [datetime.datetime.fromisoformat(event["received_at"]) for event in events]
    failover = min(at for at in arrived if at > killed) - killed
    assert failover.total_seconds() < float(LEASE) + 2  # within the lease and 2 s
    assert listed[0]["state"] == "live"
    assert upstream.requests[-1].headers.get("last-event-id")  # the new owner resumed


async def test_a_feed_that_does_not_replay_marks_the_gap_a_takeover_leaves(
    tmp_path: Path, store: str
) -> None:
    ticker = Ticker(0.02)
    async with deployment(ticker, tmp_path, store, 2, "--store-prefix", "t-gap:") as (
        upstream,
        (a, b),
    ):
        sub_id = (await call(a.url, "subscribe", tool="ticks", arguments={}))["subscription"]
        events = await read_until(b.url, sub_id, 10)
        a.kill()
        events += await read_until(b.url, sub_id, len(events) + 30)
        assert upstream.open_connections == 1  # b's own, once a's died
    got = ids(events)
    assert got == sorted(set(got))  # nothing twice, in order
    (gap,) = [i for i, event in enumerate(events) if event.get("gap")]
    assert got[gap] > got[gap - 1] + 1  # ticks were sent while no replica was connected
    assert got[:gap] == list(range(got[0], got[gap - 1] + 1))


async def test_subscribing_on_two_replicas_at_once_shares_one_upstream_connection(
    tmp_path: Path, store: str
) -> None:
    ticker = Ticker(0.05)
    async with deployment(ticker, tmp_path, store, 2, "--store-prefix", "t-shared:") as (
        upstream,
        (a, b),
    ):
        answers: list[dict] = []

        async def subscribe(url: str) -> None:
            answers.append(await call(url, "subscribe", tool="ticks", arguments={}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(subscribe, a.url)
            tg.start_soon(subscribe, b.url)
        assert answers[0]["subscription"] == answers[1]["subscription"]
        assert sorted(answer["joined"] for answer in answers) == [False, True]
        assert upstream.open_connections == 1
        assert len((await call(a.url, "list_subscriptions"))["subscriptions"]) == 1


async def subscribe_at_once(clients: list[mcp.Client], tool: str) -> list[Any]:
    """`subscribe` to `tool` on every client at the same moment; the results."""
    answers: list[Any] = []

    async def subscribe(client: mcp.Client) -> None:
        answers.append(await client.call_tool("subscribe", {"tool": tool, "arguments": {}}))

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(subscribe, client)
    return answers


async def test_many_subscribes_at_once_on_one_replica_join_one_subscription(
    tmp_path: Path, store: str
) -> None:
    """Concurrent subscribes with the same key on one replica take turns: each store round trip
    (find, count, create) is a suspension point, and two of them passing the "is one already
    connecting?" check together once failed the later one with an internal error."""
    ticker = Ticker(0.05)
    bursts: list[tuple[list[Any], int]] = []  # each burst's answers, upstream connections then
    async with (
        deployment(ticker, tmp_path, store, 1, "--store-prefix", "t-burst:") as (upstream, (a,)),
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [await stack.enter_async_context(mcp.Client(a.url)) for _ in range(12)]
        for _ in range(3):  # connected first, so that the calls arrive together; three times
            answers = await subscribe_at_once(clients, "ticks")
            bursts.append((answers, upstream.open_connections))
            for sub_id in {x.structured_content["subscription"] for x in answers if not x.is_error}:
                await call(a.url, "unsubscribe", subscription=sub_id)
            with anyio.fail_after(5):
                while upstream.open_connections:
                    await upstream.connection_closed.wait()
    for answers, connections in bursts:
        assert [answer.content[0].text for answer in answers if answer.is_error] == []
        results = [answer.structured_content for answer in answers]
        assert len({result["subscription"] for result in results}) == 1
        assert sorted(result["joined"] for result in results) == [False] + [True] * 11
        assert connections == 1


async def test_healthz_names_the_replica_its_store_and_its_feeds_without_auth_or_secrets(
    tmp_path: Path, store: str
) -> None:
    ticker = Ticker(0.05)
    async with feeding(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        prefix = ("--store-prefix", "t-health:")
        token = ("--auth-token", "tok-123456789")
        async with (
            replica(manual, store, *prefix) as a,
            replica(manual, store, *prefix, *token) as b,
        ):
            await call(a.url, "subscribe", tool="ticks", arguments={})
            async with httpx2.AsyncClient() as http:
                health = [await http.get(url.replace("/mcp", "/healthz")) for url in (a.url, b.url)]
                refused = await http.post(b.url, json={})
    assert refused.status_code == 401  # b's MCP endpoint wants its token; /healthz did not
    assert [response.status_code for response in health] == [200, 200]
    reports = [response.json() for response in health]
    assert [report["subscriptions_owned"] for report in reports] == [1, 0]
    assert all(report["store"] == "shared" and report["store_reachable"] for report in reports)
    assert reports[0]["replica"] != reports[1]["replica"]
    assert SECRET not in health[0].text + health[1].text


async def test_nothing_secret_reaches_redis(tmp_path: Path, redis_url: str) -> None:
    """The API key the manual injects and the Redis password itself, nowhere in any key."""
    password = "redis-pass-0123456789"
    with redis_server(tmp_path / "locked", password=password) as locked:
        url = locked.replace(f":{password}@", "@").replace("redis://@", "redis://")
        ticker = Ticker(0.02)
        async with feeding(ticker) as upstream:
            manual = write_manual(tmp_path, upstream.url)
            env = {"MCP_SSE_BRIDGE_REDIS_PASSWORD": password}
            async with replica(manual, url, env=env) as a:
                sub_id = (await call(a.url, "subscribe", tool="ticks", arguments={}))[
                    "subscription"
                ]
                await read_until(a.url, sub_id, 5)
                async with Redis.from_url(url, password=password) as redis:
                    dump = [key async for key in redis.scan_iter()]
                    for key in list(dump):
                        kind = (await redis.type(key)).decode()
                        if kind == "hash":
                            dump.append(repr(await redis.hgetall(key)))
                        elif kind == "stream":
                            dump.append(repr(await redis.xrange(key)))
                        elif kind == "string":
                            dump.append(repr(await redis.get(key)))
    text = repr(dump)
    assert "ticks" in text and sub_id in text  # the dump is real
    assert SECRET not in text and password not in text


async def test_redis_away_is_one_clear_line_at_start_and_an_error_naming_it_later(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    ticker = Ticker(0.02)
    async with feeding(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        refused = await anyio.run_process(
            [*CLI, "--manual", str(manual), "--store", url], check=False
        )
        assert refused.returncode == 2
        (line,) = refused.stderr.decode().strip().splitlines()
        assert f"--store {url}: The subscription store (Redis) failed: " in line
        assert "The bridge needs the store to start" in line
        with contextlib.ExitStack() as redis:
            redis.enter_context(redis_server(tmp_path / "r1", port=port))
            async with replica(manual, url) as a, mcp.Client(a.url) as client:
                subscribe = {"tool": "ticks", "arguments": {}}
                structured(await client.call_tool("subscribe", subscribe))
                redis.close()  # Redis goes away under a running replica
                failed = await client.call_tool("list_subscriptions", {})
                assert failed.is_error and "Redis" in failed.content[0].text
                failed = await client.call_tool("subscribe", subscribe)
                assert failed.is_error and "Redis" in failed.content[0].text
                batch = structured(await client.call_tool("ticks", {"max_events": 2}))
                assert batch["count"] == 2  # plain calls do not need the store
                redis.enter_context(redis_server(tmp_path / "r2", port=port))
                again = structured(await client.call_tool("subscribe", subscribe))
                assert again["state"] == "live" and not again["joined"]  # a new, empty Redis


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_events_appended_by_one_replica_notify_resource_listeners_on_another(
    tmp_path: Path, store: str, mode: str
) -> None:
    """Handshake era: resources/subscribe (stateful HTTP, the session lives on b); 2026-07-28:
    subscriptions/listen. The feed runs on a; b hears of its events through Redis."""
    ticker = Ticker(0.05)
    async with deployment(ticker, tmp_path, store, 2, "--store-prefix", f"t-notify-{mode}:") as (
        _upstream,
        (a, b),
    ):
        sub_id = (await call(a.url, "subscribe", tool="ticks", arguments={}))["subscription"]
        uri = f"sse://subscriptions/{sub_id}"
        heard = Heard()
        async with mcp.Client(b.url, mode=mode, message_handler=heard) as client:
            if mode == "legacy":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.subscribe_resource(uri)
                await heard.until(lambda: uri in [got for _, got in heard.updated])
            else:
                async with client.listen(resource_subscriptions=[uri]) as listening:
                    with anyio.fail_after(5):
                        event = await anext(aiter(listening))
                assert event == ResourceUpdated(uri=uri)
            async with httpx2.AsyncClient() as http:
                owned = (await http.get(b.url.replace("/mcp", "/healthz"))).json()
        assert owned["subscriptions_owned"] == 0  # b only heard of it


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_stateless_replica_answers_calls_and_subscription_reads(
    tmp_path: Path, store: str, mode: str
) -> None:
    ticker = Ticker(0.02)
    async with deployment(
        ticker, tmp_path, store, 2, "--store-prefix", f"t-stateless-{mode}:", "--stateless"
    ) as (_upstream, (a, b)):
        batch = await call(a.url, "ticks", mode, max_events=2)
        assert batch["count"] == 2
        sub_id = (await call(a.url, "subscribe", mode, tool="ticks", arguments={}))["subscription"]
        events = await read_until(b.url, sub_id, 5, mode)
    assert len(ids(events)) >= 5


async def test_a_stale_owner_is_fenced_once_another_replica_took_its_feed(
    tmp_path: Path, store: str
) -> None:
    """SIGSTOP the owner past its lease (as a long pause or a partition would), let another
    replica take over, SIGCONT it: its next append is refused, so the buffer never holds an
    event twice or out of order, and it closes its stale upstream connection."""
    feed = Replaying(0.02)
    async with deployment(feed, tmp_path, store, 2, "--store-prefix", "t-fenced:") as (
        upstream,
        (a, b),
    ):
        sub_id = (await call(a.url, "subscribe", tool="ticks", arguments={}))["subscription"]
        events = await read_until(b.url, sub_id, 10)
        a.process.send_signal(signal.SIGSTOP)
        try:  # nothing is appended until b takes over; then b's events come
            events += await read_until(b.url, sub_id, len(events) + 20)
            assert upstream.open_connections == 2  # a's stale one, and b's
        finally:
            a.process.send_signal(signal.SIGCONT)
        with anyio.fail_after(10):  # a wakes, is fenced, and lets its connection go
            while upstream.open_connections > 1:
                await upstream.connection_closed.wait()
        events += await read_until(b.url, sub_id, len(events) + 20)
    got = ids(events)
    assert got == list(range(got[0], got[0] + len(got)))


async def test_the_subscription_limit_holds_across_replicas(tmp_path: Path, store: str) -> None:
    ticker = Ticker(0.05)
    async with deployment(
        ticker, tmp_path, store, 2, "--store-prefix", "t-limit:", "--max-subscriptions", "1"
    ) as (_upstream, (a, b)):
        await call(a.url, "subscribe", tool="ticks", arguments={"symbol": "A"})
        async with mcp.Client(b.url) as client:
            second = {"tool": "ticks", "arguments": {"symbol": "B"}}
            refused = await client.call_tool("subscribe", second)
    assert refused.is_error and "--max-subscriptions" in refused.content[0].text
