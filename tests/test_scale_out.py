"""Several bridge replicas (separate processes, streamable HTTP) sharing subscriptions through a
real Redis: any replica answers for any subscription, one upstream connection per feed, a dead
owner's feed moves to another replica with nothing appended twice, and Redis trouble is clear.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx2
import mcp
import pytest

from tests.feeds import SECRET, Ticker, ids
from tests.redis_server import redis_server
from tests.replicas import Replaying, call, replica, replicas, structured, write_manual
from tests.sse_server import SSEServer, serve

pytestmark = pytest.mark.anyio


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


@contextlib.asynccontextmanager
async def feeding(feed: Ticker | Replaying) -> AsyncIterator[SSEServer]:
    async with serve(feed.handler) as upstream, anyio.create_task_group() as tg:
        await tg.start(feed.clock)
        yield upstream
        tg.cancel_scope.cancel()


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
    async with feeding(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        prefix = ("--store-prefix", f"t-{mode}-cross:")
        async with replica(manual, store, *prefix) as a, replica(manual, store, *prefix) as b:
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
            events += await read_until(c.url, sub_id, len(events) + 80)
            listed = (await call(b.url, "list_subscriptions"))["subscriptions"]
    got = ids(events)
    assert got == list(range(got[0], got[0] + len(got)))  # every id once, in order
    assert listed[0]["state"] == "live"
    assert upstream.requests[-1].headers.get("last-event-id")  # the new owner resumed


async def test_a_feed_that_does_not_replay_marks_the_gap_a_takeover_leaves(
    tmp_path: Path, store: str
) -> None:
    ticker = Ticker(0.02)
    async with feeding(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        prefix = ("--store-prefix", "t-gap:")
        async with replica(manual, store, *prefix) as a, replica(manual, store, *prefix) as b:
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
    async with feeding(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        prefix = ("--store-prefix", "t-shared:")
        async with replicas(manual, store, 2, *prefix) as (a, b):
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
