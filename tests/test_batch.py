"""Filters, bounds and the batch shape.

The collector's input is any async iterator of events, so most tests feed it a scripted one
(no HTTP involved); the end-to-end path over real sockets is covered in test_calls_end_to_end.py.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sse_bridge.calls.batch import Accepted, Batch, collect
from mcp_sse_bridge.calls.events import event_to_dict
from mcp_sse_bridge.calls.filters import Bounds, EventFilter
from mcp_sse_bridge.errors import ConnectError, ServerError
from mcp_sse_bridge.upstream.sse import ServerSentEvent
from mcp_sse_bridge.upstream.stream import StreamState


def ev(data: Any = "", event: str = "message", id: str = "") -> ServerSentEvent:
    return ServerSentEvent(event, data if isinstance(data, str) else json.dumps(data), id)


def numbered(n: int, event: str = "message", **data: Any) -> ServerSentEvent:
    return ev({"n": n, **data}, event, str(n))


async def feed(
    state: StreamState,
    events: list[ServerSentEvent],
    then: str | Exception = "close",
    *,
    per_chunk: int = 1,
) -> AsyncIterator[list[ServerSentEvent]]:
    """Yield like open_chunks (lists; state.last_event_id is ahead), then end, hang or fail."""
    for start in range(0, len(events), per_chunk):
        chunk = events[start : start + per_chunk]
        await anyio.lowlevel.checkpoint()  # like a socket read
        state.last_event_id = chunk[-1].id
        yield chunk
    if then == "hang":  # a quiet upstream that never sends again
        await anyio.sleep_forever()
    if isinstance(then, Exception):
        raise then


async def run(
    events: list[ServerSentEvent],
    then: str | Exception = "close",
    *,
    filter: EventFilter | None = None,
    state: StreamState | None = None,
    per_chunk: int = 1,
    **bounds: Any,
) -> Batch:
    state = state or StreamState()
    source = feed(state, events, then, per_chunk=per_chunk)
    with anyio.fail_after(5):
        async with contextlib.aclosing(source):
            return await collect(
                source, state, filter=filter or EventFilter(), bounds=Bounds(**bounds)
            )


def data(batch: Batch) -> list[Any]:
    return [item["data"] for item in batch.events]


# -- event_to_dict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"price": 1.5}', {"price": 1.5}),
        ("42", 42),
        ("[1, 2]", [1, 2]),
        ("null", None),
        ("[DONE]", "[DONE]"),
        ("hello world", "hello world"),
        ("", ""),
        ("NaN", "NaN"),
        ('{"x": Infinity}', '{"x": Infinity}'),
        ("line one\nline two", "line one\nline two"),
        ("[" * 100_000, "[" * 100_000),
        ("1e400", "1e400"),
        ('{"a": -1e999, "b": 1}', '{"a": -1e999, "b": 1}'),
        ("[1e308, 1e-400]", [1e308, 0.0]),
        ("-Infinity", "-Infinity"),
        ("[" * 64 + "]" * 64, json.loads("[" * 64 + "]" * 64)),
        ("[" * 65 + "]" * 65, "[" * 65 + "]" * 65),
        ('{"a": ' * 65 + "1" + "}" * 65, '{"a": ' * 65 + "1" + "}" * 65),
        ('"' + "[" * 100 + '"', "[" * 100),
        (json.dumps([[[1]]] * 100), [[[1]]] * 100),
    ],
)
def test_event_to_dict_decodes_strict_json_only(text: str, expected: Any) -> None:
    """Only what a result can carry as JSON is decoded: no Infinity, at most 64 levels deep
    (the MCP SDK cannot serialise ~250); the rest stays text, losing nothing."""
    item = event_to_dict(ServerSentEvent("tick", text, "7"))
    assert item == {"event": "tick", "id": "7", "data": expected}
    json.dumps(item, allow_nan=False)  # always sendable as JSON


def test_event_to_dict_always_has_an_id() -> None:
    assert event_to_dict(ServerSentEvent("message", "x", "")) == {
        "event": "message",
        "id": "",
        "data": "x",
    }


# -- EventFilter ---------------------------------------------------------------------------------


def test_filter_by_event_type() -> None:
    only = EventFilter(event_types=frozenset({"trade", "quote"}))
    assert only.accepts(ev("x", "trade"))
    assert not only.accepts(ev("x", "message"))
    assert EventFilter().accepts(ev("x", "anything"))


@pytest.mark.parametrize(
    ("match", "accepted"),
    [
        ({"symbol": "AAPL"}, True),
        ({"symbol": "MSFT"}, False),
        ({"quote.venue": "X"}, True),
        ({"quote.venue": "Y"}, False),
        ({"symbol": "AAPL", "quote.venue": "X"}, True),
        ({"symbol": "AAPL", "quote.venue": "Y"}, False),
        ({"quote.bid": 10}, True),  # 10 == 10.0
        ({"active": True}, True),
        ({"active": 1}, False),  # True is not 1 in JSON
        ({"count": True}, False),
        ({"trades.1.size": 5}, True),
        ({"trades.9.size": 5}, False),
        ({"quote.venue.deeper": "X"}, False),
        ({"missing": None}, False),
        ({"nothing": None, "symbol": "AAPL"}, False),
        ({"tags": ["a", "b"]}, True),
        ({}, True),
    ],
)
def test_filter_match_uses_dotted_paths(match: dict[str, Any], accepted: bool) -> None:
    event = ev(
        {
            "symbol": "AAPL",
            "quote": {"venue": "X", "bid": 10.0},
            "active": True,
            "count": 1,
            "trades": [{"size": 1}, {"size": 5}],
            "tags": ["a", "b"],
        }
    )
    assert EventFilter(match=match).accepts(event) is accepted


def test_filter_match_never_accepts_data_that_is_not_json() -> None:
    assert not EventFilter(match={"symbol": "AAPL"}).accepts(ev("symbol=AAPL"))
    assert not EventFilter(match={"0": "x"}).accepts(ev("[not json"))


def test_filter_checks_the_type_before_decoding() -> None:
    both = EventFilter(event_types=frozenset({"trade"}), match={"symbol": "AAPL"})
    assert both.accepts(ev({"symbol": "AAPL"}, "trade"))
    assert not both.accepts(ev({"symbol": "AAPL"}, "quote"))


# -- bounds and stop reasons ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_events_stops_and_the_cursor_is_the_last_event_returned() -> None:
    batch = await run([numbered(n) for n in range(1, 10)], max_events=3)
    assert batch.stop_reason == "max_events"
    assert (batch.count, batch.last_event_id) == (3, "3")
    assert data(batch) == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.anyio
async def test_clean_end_is_closed() -> None:
    batch = await run([numbered(1), numbered(2)], max_events=10)
    assert (batch.stop_reason, batch.count, batch.last_event_id) == ("closed", 2, "2")


@pytest.mark.anyio
async def test_filtered_events_are_counted_and_advance_the_cursor() -> None:
    events = [numbered(1, "trade"), numbered(2, "quote"), numbered(3, "quote")]
    batch = await run(events, filter=EventFilter(event_types=frozenset({"trade"})))
    assert data(batch) == [{"n": 1}]
    assert batch.skipped == {"filtered": 2, "oversized": 0}
    assert batch.last_event_id == "3"  # a resume must not replay what was filtered


@pytest.mark.anyio
async def test_until_event_is_included_and_ends_the_batch_even_if_filtered() -> None:
    events = [numbered(1, "delta"), numbered(2, "ping"), numbered(3, "stop"), numbered(4, "delta")]
    only = EventFilter(event_types=frozenset({"delta"}))
    batch = await run(events, filter=only, until_event="stop")
    assert batch.stop_reason == "until_event"
    assert [item["event"] for item in batch.events] == ["delta", "stop"]
    assert batch.last_event_id == "3"


@pytest.mark.anyio
async def test_max_bytes_leaves_out_the_event_that_would_exceed_it() -> None:
    events = [ev("a" * 40, id="1"), ev("é" * 20, id="2"), ev("c" * 30, id="3")]
    batch = await run(events, max_bytes=100)  # 40 + 40 (é is 2 bytes) fits; + 30 does not
    assert batch.stop_reason == "max_bytes"
    assert [item["id"] for item in batch.events] == ["1", "2"]
    assert batch.last_event_id == "2"  # the resume starts with event 3


@pytest.mark.anyio
async def test_max_bytes_counts_the_event_type_and_id_too() -> None:
    """The budget is for the model's context, which the type and id fill as well as the data."""
    events = [ev("a", "t" * 30, "i" * 30), ev("b", "t" * 30, "2"), ev("c", "t" * 30, "3")]
    batch = await run(events, max_bytes=100)  # 61 + 32 fits; + 32 does not
    assert (batch.stop_reason, [item["data"] for item in batch.events]) == ("max_bytes", ["a", "b"])


@pytest.mark.anyio
async def test_an_id_over_max_bytes_never_becomes_the_cursor() -> None:
    """Huge ids on skipped or filtered events would fill the budget through `last_event_id`
    alone: the cursor stays at the last id that fits (a resume replays them, to skip again)."""
    huge = [ev("x", "E" * 5000, "I" * 5000 + str(n)) for n in range(3)]
    skipped = await run(huge, max_bytes=1000, state=StreamState(last_event_id="0"))
    assert (skipped.count, skipped.skipped["oversized"], skipped.last_event_id) == (0, 3, "0")
    only = EventFilter(frozenset({"message"}))
    filtered = await run([numbered(1), *huge], max_bytes=1000, filter=only)
    assert (filtered.count, filtered.skipped["filtered"], filtered.last_event_id) == (1, 3, "1")
    assert len(json.dumps(filtered.to_dict())) < 1000


@pytest.mark.anyio
async def test_an_event_alone_over_max_bytes_is_skipped_as_oversized() -> None:
    events = [ev("x" * 500, id="1"), ev("small", id="2")]
    batch = await run(events, max_bytes=100)
    assert data(batch) == ["small"]
    assert batch.skipped == {"filtered": 0, "oversized": 1}
    assert batch.stop_reason == "closed"


@pytest.mark.anyio
async def test_parser_oversized_count_is_reported() -> None:
    state = StreamState(oversized=2)
    batch = await run([numbered(1)], state=state)
    assert batch.skipped == {"filtered": 0, "oversized": 2}


@pytest.mark.anyio
async def test_idle_stops_when_nothing_at_all_arrives() -> None:
    batch = await run([numbered(1)], "hang", idle_seconds=0.2, max_seconds=10)
    assert (batch.stop_reason, batch.count) == ("idle", 1)
    assert 0.15 <= batch.elapsed_s < 2


@pytest.mark.anyio
async def test_filtered_events_keep_an_idle_stream_alive() -> None:
    """idle counts every event from upstream, accepted or not."""
    state = StreamState()
    send, receive = anyio.create_memory_object_stream[ServerSentEvent](10)

    async def upstream() -> AsyncIterator[list[ServerSentEvent]]:
        async for event in receive:
            state.last_event_id = event.id
            yield [event]

    only = EventFilter(event_types=frozenset({"wanted"}))
    bounds = Bounds(idle_seconds=0.5, max_seconds=10)
    source = upstream()
    async with anyio.create_task_group() as tg, contextlib.aclosing(source), send:

        async def pings() -> None:
            for n in range(6):  # 6 pings 0.1 s apart: never 0.5 s of silence
                await send.send(numbered(n, "ping"))
                await anyio.sleep(0.1)

        tg.start_soon(pings)
        batch = await collect(source, state, filter=only, bounds=bounds)
    assert batch.stop_reason == "idle"
    assert batch.skipped["filtered"] == 6
    assert batch.elapsed_s >= 0.95  # the last ping, then 0.5 s of silence


@pytest.mark.anyio
async def test_a_slow_consumer_is_not_mistaken_for_an_idle_upstream() -> None:
    async def slow(item: dict[str, Any], count: int) -> None:
        await anyio.sleep(0.3)  # longer than idle_seconds, while events wait in the stream

    state = StreamState()
    source = feed(state, [numbered(1), numbered(2)])
    bounds = Bounds(idle_seconds=0.15, max_seconds=10)
    async with contextlib.aclosing(source):
        batch = await collect(source, state, filter=EventFilter(), bounds=bounds, on_event=slow)
    assert (batch.stop_reason, batch.count) == ("closed", 2)


@pytest.mark.anyio
async def test_max_seconds_returns_a_partial_batch() -> None:
    batch = await run([numbered(1)], "hang", max_seconds=0.2)
    assert (batch.stop_reason, batch.count, batch.last_event_id) == ("max_seconds", 1, "1")
    assert 0.15 <= batch.elapsed_s < 2


@pytest.mark.anyio
async def test_max_seconds_also_bounds_a_slow_consumer() -> None:
    state = StreamState()
    source = feed(state, [numbered(1), numbered(2)], "hang")

    async def stuck(item: dict[str, Any], count: int) -> None:
        await anyio.Event().wait()  # never set: a progress sink that blocks

    with anyio.fail_after(5):
        async with contextlib.aclosing(source):
            batch = await collect(
                source, state, filter=EventFilter(), bounds=Bounds(max_seconds=0.2), on_event=stuck
            )
    assert (batch.stop_reason, batch.count) == ("max_seconds", 1)


async def still_connecting(state: StreamState) -> AsyncIterator[list[ServerSentEvent]]:
    """An upstream whose first handshake never completes, flagged as open_chunks does."""
    state.connecting = True
    await anyio.sleep_forever()
    yield []


@pytest.mark.anyio
@pytest.mark.parametrize("consumer", ["collect", "Accepted"])
@pytest.mark.parametrize(
    ("bounds", "says"),
    [
        (Bounds(max_seconds=0.2), "0.2 s (max_seconds)"),
        (Bounds(idle_seconds=0.2, max_seconds=10), "0.2 s (idle)"),
    ],
    ids=["max_seconds", "idle"],
)
async def test_time_running_out_before_the_first_connection_is_a_connect_error(
    consumer: str, bounds: Bounds, says: str
) -> None:
    """Not an empty batch that looks like a quiet stream (a connected one: see above)."""
    state = StreamState()
    source = still_connecting(state)
    run_ = Accepted(source, state, filter=EventFilter(), bounds=bounds)
    with anyio.fail_after(5):
        async with contextlib.aclosing(source):
            with pytest.raises(ConnectError, match=re.escape(f"within {says}")):
                if consumer == "collect":
                    await run_.collect()
                else:
                    assert [item async for item in run_] == []


@pytest.mark.anyio
async def test_on_event_gets_each_accepted_event_and_its_count() -> None:
    seen: list[tuple[Any, int]] = []

    async def on_event(item: dict[str, Any], count: int) -> None:
        seen.append((item["data"], count))

    state = StreamState()
    source = feed(state, [numbered(1), numbered(2, "skip"), numbered(3)])
    only = EventFilter(event_types=frozenset({"message"}))
    batch = await collect(source, state, filter=only, bounds=Bounds(), on_event=on_event)
    assert seen == [({"n": 1}, 1), ({"n": 3}, 2)]
    assert batch.count == 2


# -- many events per chunk -----------------------------------------------------------------------


def mixed(n: int) -> list[ServerSentEvent]:
    """Events 1..n: every third is a "trade", the others "quote"."""
    return [numbered(i, "trade" if i % 3 == 0 else "quote") for i in range(1, n + 1)]


@pytest.mark.anyio
async def test_max_events_inside_a_chunk_takes_no_more_and_counts_exactly() -> None:
    only = EventFilter(event_types=frozenset({"trade"}))
    batch = await run(mixed(30), filter=only, max_events=2, per_chunk=30)
    assert [item["id"] for item in batch.events] == ["3", "6"]
    assert (batch.stop_reason, batch.last_event_id) == ("max_events", "6")
    assert batch.skipped["filtered"] == 4  # 1, 2, 4, 5: not the unread 7..30


@pytest.mark.anyio
async def test_until_event_inside_a_chunk_ends_there() -> None:
    only = EventFilter(event_types=frozenset({"trade"}))
    batch = await run(mixed(30), filter=only, until_event="quote", per_chunk=30)
    assert [item["id"] for item in batch.events] == ["1"]
    assert (batch.stop_reason, batch.last_event_id, batch.skipped["filtered"]) == (
        "until_event",
        "1",
        0,
    )


@pytest.mark.anyio
async def test_max_bytes_inside_a_chunk_resumes_after_the_filtered_event_before_it() -> None:
    events = [ev("a" * 60, "trade", "1"), ev("b", "quote", "2"), ev("c" * 60, "trade", "3")]
    only = EventFilter(event_types=frozenset({"trade"}))
    batch = await run(events + mixed(5), filter=only, max_bytes=100, per_chunk=8)
    assert [item["id"] for item in batch.events] == ["1"]
    assert (batch.stop_reason, batch.last_event_id) == ("max_bytes", "2")
    assert batch.skipped["filtered"] == 1


@pytest.mark.anyio
async def test_max_bytes_on_a_chunks_first_event_keeps_the_previous_cursor() -> None:
    events = [ev("a" * 60, id="1"), ev("b" * 60, id="2")]
    batch = await run(events, max_bytes=100, per_chunk=1)
    assert (batch.stop_reason, batch.last_event_id, batch.count) == ("max_bytes", "1", 1)


@pytest.mark.anyio
async def test_a_whole_chunk_moves_the_cursor_to_the_streams_last_event_id() -> None:
    """After an id-only block (`id: 9` then a blank line) the stream's last id is ahead."""
    state = StreamState()

    async def chunks() -> AsyncIterator[list[ServerSentEvent]]:
        state.last_event_id = "9"
        yield [numbered(1, "quote"), numbered(2, "quote")]

    source = chunks()
    only = EventFilter(event_types=frozenset({"trade"}))
    batch = await collect(source, state, filter=only, bounds=Bounds())
    assert (batch.stop_reason, batch.count, batch.last_event_id) == ("closed", 0, "9")
    assert batch.skipped["filtered"] == 2


@pytest.mark.anyio
async def test_a_consumer_stopping_inside_a_chunk_resumes_after_its_last_event() -> None:
    state = StreamState()
    source = feed(state, mixed(12), per_chunk=12)
    run_ = Accepted(
        source, state, filter=EventFilter(frozenset({"trade"})), bounds=Bounds(max_events=10)
    )
    async with contextlib.aclosing(source), contextlib.aclosing(aiter(run_)) as accepted:
        async for item in accepted:
            if item["id"] == "6":
                break
    assert (run_.stop_reason, run_.count, run_.filtered, run_.last_event_id) == (None, 2, 4, "6")


def _outcome(events: list[ServerSentEvent], per_chunk: int, **kwargs: Any) -> dict[str, Any]:
    batch = anyio.run(lambda: run(events, per_chunk=per_chunk, **kwargs))
    return {**batch.to_dict(), "elapsed_s": None}


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.builds(
            ServerSentEvent,
            st.sampled_from(["quote", "trade", "done"]),
            st.text("ab", max_size=12),
            st.text("0123456789", max_size=2),
        ),
        max_size=40,
    ),
    per_chunk=st.integers(2, 41),
    types=st.none() | st.frozensets(st.sampled_from(["quote", "trade"]), min_size=1),
    max_events=st.integers(1, 12),
    max_bytes=st.none() | st.integers(1, 60),
    until_event=st.none() | st.just("done"),
)
def test_batches_do_not_depend_on_how_events_are_chunked(
    events: list[ServerSentEvent],
    per_chunk: int,
    types: frozenset[str] | None,
    max_events: int,
    max_bytes: int | None,
    until_event: str | None,
) -> None:
    kwargs = {
        "filter": EventFilter(event_types=types),
        "max_events": max_events,
        "max_bytes": max_bytes,
        "until_event": until_event,
    }
    one_by_one = _outcome(events, 1, **kwargs)
    assert _outcome(events, per_chunk, **kwargs) == one_by_one
    assert one_by_one["count"] <= max_events


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_before_any_event_is_raised() -> None:
    with pytest.raises(ServerError):
        await run(
            [numbered(1, "noise")],
            ServerError("boom", status=503),
            filter=EventFilter(event_types=frozenset({"wanted"})),
        )


@pytest.mark.anyio
async def test_error_after_events_returns_them_with_the_error() -> None:
    failure = ServerError("The upstream server failed: HTTP 503.", status=503, hint="Retry.")
    batch = await run([numbered(1), numbered(2)], failure)
    assert batch.stop_reason == "error"
    assert batch.error == "The upstream server failed: HTTP 503. Retry."
    assert (batch.count, batch.last_event_id) == (2, "2")
    assert batch.to_dict()["error"] == batch.error


@pytest.mark.anyio
async def test_redact_cleans_events_cursor_and_error() -> None:
    secret = "tok-123456"
    events = [ev({"echo": secret, secret: [secret]}, id=f"id-{secret}"), ev(f"raw {secret}")]
    state = StreamState()
    source = feed(state, events, ServerError(f"echo {secret}"))

    def redact(text: str) -> str:
        return text.replace(secret, "***")

    batch = await collect(source, state, filter=EventFilter(), bounds=Bounds(), redact=redact)
    assert secret not in json.dumps(batch.to_dict())
    assert batch.events[0] == {
        "event": "message",
        "id": "id-***",
        "data": {"echo": "***", "***": ["***"]},
    }
    assert batch.error == "echo ***"


@pytest.mark.anyio
async def test_a_secret_echoed_as_a_json_number_is_redacted() -> None:
    """Redaction runs on the data text before decoding: a number cannot hold "***", so that
    data stays text; a secret echoed as a string keeps its JSON."""
    secret = "90817263"
    events = [ev({"pin": int(secret), "n": 1}), ev({"pin": secret})]
    state = StreamState()
    source = feed(state, events)

    def redact(text: str) -> str:
        return text.replace(secret, "***")

    batch = await collect(source, state, filter=EventFilter(), bounds=Bounds(), redact=redact)
    assert data(batch) == ['{"pin": ***, "n": 1}', {"pin": "***"}]


# -- shape and the streaming API ------------------------------------------------------------------


@pytest.mark.anyio
async def test_to_dict_is_exactly_the_result_shape() -> None:
    batch = await run([numbered(1)], max_events=1)
    result = batch.to_dict()
    assert list(result) == [
        "events",
        "count",
        "stop_reason",
        "last_event_id",
        "elapsed_s",
        "reconnects",
        "skipped",
    ]
    assert result["events"] == [{"event": "message", "id": "1", "data": {"n": 1}}]
    assert result["skipped"] == {"filtered": 0, "oversized": 0}
    assert isinstance(result["elapsed_s"], float) and result["reconnects"] == 0
    json.dumps(result, allow_nan=False)


@pytest.mark.anyio
async def test_accepted_streams_the_same_events_and_reports_the_stop() -> None:
    state = StreamState()
    source = feed(state, [numbered(n, "odd" if n % 2 else "even") for n in range(1, 8)])
    run_ = Accepted(
        source, state, filter=EventFilter(frozenset({"odd"})), bounds=Bounds(max_events=3)
    )
    got = [item["id"] async for item in run_]
    assert got == ["1", "3", "5"]
    assert (run_.stop_reason, run_.count, run_.filtered) == ("max_events", 3, 2)
    assert run_.last_event_id == "5"


def test_escaped_lone_surrogate_keeps_the_text_but_a_pair_decodes() -> None:
    lone = event_to_dict(ServerSentEvent("message", '{"s": "\\ud800"}', "1"))
    pair = event_to_dict(ServerSentEvent("message", '{"s": "\\ud83d\\ude00"}', "2"))
    assert lone["data"] == '{"s": "\\ud800"}'
    assert pair["data"] == {"s": "\U0001f600"}
