"""Reading subscriptions: nothing lost between reads, gaps and overflow reported, cursors.

Real loopback upstreams (`tests.feeds.Ticker` ignores Last-Event-ID, as most live feeds do)
and the bridge through `mcp.Client`, in both protocol eras where the MCP side matters.
"""

from __future__ import annotations

import anyio
import pytest

from tests.feeds import (
    MODES,
    SECRET,
    Ticker,
    client_for,
    ids,
    listed,
    read,
    subscribe,
    text_of,
    ticking,
)
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio

GAPS = (0.15, 0.7, 0.3, 0.9, 0.05, 0.6, 0.4, 0.8, 0.2, 0.9)  # ten reads over 5 s


async def read_all(client, sub: str, gaps=GAPS) -> list[dict]:
    """Read after each gap, then stop nothing: the caller drains what is still buffered."""
    events: list[dict] = []
    for gap in gaps:
        await anyio.sleep(gap)  # the irregular gaps between reads are what is under test
        result = await read(client, sub, max_events=1000)
        assert not result["has_more"] and result["dropped"] == 0
        events += result["events"]
    return events


async def drain(client, sub: str) -> list[dict]:
    """What is still buffered or in flight once the upstream stopped ticking."""
    events: list[dict] = []
    for _ in range(20):
        result = await read(client, sub, max_events=1000, wait_seconds=0.3)
        if not result["events"]:
            return events
        events += result["events"]
    raise AssertionError("the subscription kept delivering after the upstream stopped")


@pytest.mark.parametrize("mode", MODES)
async def test_every_event_of_a_non_replaying_feed_is_read_exactly_once_in_order(mode):
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream, client_for(upstream, mode) as client:
        sub = (await subscribe(client))["subscription"]
        events = await read_all(client, sub)
        ticker.period = 3600  # the clock stops: what was sent is all there is
        events += await drain(client, sub)
    got = ids(events)
    assert len(got) > 150
    assert got == ticker.sent  # each id exactly once, in order
    assert got == list(range(got[0], got[-1] + 1))  # every id from the first to the last
    assert not any(event.get("gap") for event in events)
    assert all(
        event["received_at"].endswith("Z") and len(event["received_at"]) == 24 for event in events
    )


async def test_after_drops_only_ids_sent_while_disconnected_are_missing_each_gap_marked():
    ticker = Ticker(0.02, drop_every=40)
    async with ticking(ticker) as upstream, client_for(upstream, "auto") as client:
        sub = (await subscribe(client))["subscription"]
        events = await read_all(client, sub)
        ticker.period = 3600
        events += await drain(client, sub)
        final = await read(client, sub)
    got = ids(events)
    assert got == ticker.sent  # nothing the upstream wrote is lost or repeated
    missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
    assert missing  # the ids ticked while no connection was open
    gaps = [i for i, event in enumerate(events) if event.get("gap")]
    assert len(gaps) >= 4 and final["reconnects"] >= len(gaps)
    for i in gaps:  # each gap sits exactly where ids are missing
        assert got[i] > got[i - 1] + 1
    assert all(got[i] == got[i - 1] + 1 for i in range(1, len(got)) if i not in gaps)


async def test_overflow_is_counted_in_dropped_and_reported_once():
    async def burst(request: Request, response: Response) -> None:
        await response.head()
        await response.send("".join(sse_lines({"id": str(i), "data": str(i)}) for i in range(20)))
        await wait_disconnect(response)

    async with serve(burst) as upstream, client_for(upstream, "legacy") as client:
        sub = (await subscribe(client, buffer_events=5))["subscription"]
        with anyio.fail_after(5):
            while (await listed(client))[0]["dropped"] < 15:
                await anyio.sleep(0.01)
        first = await read(client, sub, max_events=100)
        again = await read(client, sub, wait_seconds=0.05)
    assert ids(first["events"]) == [15, 16, 17, 18, 19]
    assert first["dropped"] == 15 and first["truncated"] is True
    assert "--subscription-buffer-limit" in first["hint"]
    assert again["dropped"] == 0 and again["truncated"] is False and again["events"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_two_readers_keep_their_own_cursors_on_one_subscription(mode):
    ticker = Ticker(0.01)
    async with ticking(ticker) as upstream, client_for(upstream, mode) as client:
        first = await subscribe(client, arguments={"symbol": "A"})
        second = await subscribe(client, arguments={"symbol": "A"})
        assert second["subscription"] == first["subscription"] and second["joined"] is True
        sub = first["subscription"]
        a, b = [], []
        cursor_a, cursor_b = first["cursor"], second["cursor"]
        for _ in range(4):
            result = await read(client, sub, cursor=cursor_a, max_events=1000, wait_seconds=1)
            a += result["events"]
            cursor_a = result["cursor"]
            await anyio.sleep(0.05)
            result = await read(client, sub, cursor=cursor_b, max_events=1000, wait_seconds=1)
            b += result["events"]
            cursor_b = result["cursor"]
    got_a, got_b = ids(a), ids(b)
    assert got_a == list(range(got_a[0], got_a[-1] + 1))
    assert got_b == list(range(got_b[0], got_b[-1] + 1))
    assert got_b[0] >= got_a[0] and set(got_a) & set(got_b)  # both read the shared events


async def test_a_read_without_a_cursor_continues_where_the_previous_read_ended():
    ticker = Ticker(0.01)
    async with ticking(ticker) as upstream, client_for(upstream, "legacy") as client:
        sub = (await subscribe(client))["subscription"]
        await anyio.sleep(0.2)
        first = await read(client, sub, max_events=3)
        second = await read(client, sub, max_events=3)
    assert first["has_more"] is True and first["stop_reason"] == "max_events"
    assert ids(first["events"]) + ids(second["events"]) == list(
        range(ids(first["events"])[0], ids(first["events"])[0] + 6)
    )


async def test_wait_seconds_answers_as_soon_as_the_first_new_event_arrives():
    ticker = Ticker(0.3)
    async with ticking(ticker) as upstream, client_for(upstream, "auto") as client:
        sub = (await subscribe(client))["subscription"]
        await read(client, sub, wait_seconds=2)  # now caught up
        start = anyio.current_time()
        result = await read(client, sub, wait_seconds=10)
        took = anyio.current_time() - start
        empty = await read(client, sub)
    assert result["count"] >= 1 and took < 2
    assert empty["count"] == 0 and empty["stop_reason"] == "caught_up" and empty["elapsed_s"] < 0.1


async def test_a_cursor_from_another_subscription_or_none_of_ours_is_refused_clearly():
    ticker = Ticker(0.05)
    async with ticking(ticker) as upstream, client_for(upstream, "legacy") as client:
        one = await subscribe(client, arguments={"symbol": "A"})
        two = await subscribe(client, arguments={"symbol": "B"})
        wrong = await client.call_tool(
            "read_subscription", {"subscription": two["subscription"], "cursor": one["cursor"]}
        )
        garbage = await client.call_tool(
            "read_subscription", {"subscription": one["subscription"], "cursor": "\x1b[31mx"}
        )
        unknown = await client.call_tool("read_subscription", {"subscription": "sub_00"})
    assert wrong.is_error and one["subscription"] in text_of(wrong)
    assert (
        garbage.is_error and "not a cursor" in text_of(garbage) and "\x1b" not in text_of(garbage)
    )
    assert unknown.is_error and "list_subscriptions" in text_of(unknown)


async def test_a_feed_that_ends_for_good_keeps_its_buffer_and_reason_readable():
    async def once(request: Request, response: Response) -> None:
        await response.head()
        await response.send(sse_lines({"id": "1", "data": "last words"}))
        await response.finish()

    async with serve(once) as upstream, client_for(upstream, "legacy", reconnect=False) as client:
        sub = (await subscribe(client))["subscription"]
        with anyio.fail_after(5):
            while (await listed(client))[0]["state"] != "ended":
                await anyio.sleep(0.01)
        result = await read(client, sub)
    assert [event["data"] for event in result["events"]] == ["last words"]
    assert result["state"] == "ended" and "reconnect: false" in result["reason"]
    assert result["stop_reason"] == "closed"
    assert len(upstream.requests) == 1


async def test_a_clean_end_of_a_reconnecting_feed_is_reconnected_with_last_event_id():
    async def parts(request: Request, response: Response) -> None:
        after = int(request.headers.get("last-event-id", "0"))
        await response.head()
        await response.send("retry: 100\n\n")
        await response.send(sse_lines({"id": str(after + 1), "data": "x"}))
        await response.finish()

    async with serve(parts) as upstream, client_for(upstream, "auto") as client:
        sub = (await subscribe(client))["subscription"]
        events: list[dict] = []
        with anyio.fail_after(10):
            while len(events) < 3:
                events += (await read(client, sub, wait_seconds=2))["events"]
    assert ids(events)[:3] == [1, 2, 3]
    assert [r.headers.get("last-event-id") for r in upstream.requests[:3]] == [None, "1", "2"]


async def test_secrets_the_upstream_echoes_never_reach_the_buffer_the_list_or_the_resource():
    async def echo(request: Request, response: Response) -> None:
        key = request.headers["x-api-key"]
        await response.head()
        await response.send(sse_lines({"event": key, "id": key, "data": {"token": key, key: 1}}))
        await wait_disconnect(response)

    async with serve(echo) as upstream, client_for(upstream, "legacy") as client:
        sub = (await subscribe(client, arguments={"symbol": SECRET}))["subscription"]
        result = await read(client, sub, wait_seconds=2)
        everything = [
            text_of(await client.call_tool("list_subscriptions", {})),
            str(result),
            (await client.read_resource(f"sse://subscriptions/{sub}")).contents[0].text,
        ]
    assert result["count"] == 1 and result["events"][0]["data"] == {"token": "***", "***": 1}
    for text in everything:
        assert SECRET not in text


async def test_parallel_reads_from_the_default_position_never_get_the_same_event():
    ticker = Ticker(0.01)
    async with ticking(ticker) as upstream, client_for(upstream, "auto") as client:
        sub = (await subscribe(client))["subscription"]
        got: list[list[int]] = []

        async def reader() -> None:
            for _ in range(5):
                result = await read(client, sub, max_events=7, wait_seconds=0.5)
                got.append(ids(result["events"]))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(reader)
    every = [n for batch in got for n in batch]
    assert len(every) >= 10
    assert sorted(every) == sorted(set(every))  # no event went to two readers
