"""A refused first connection is retried when the upstream says "come back later", honouring
`Retry-After` (seconds or an HTTP-date) within the call's max_seconds, a bounded number of times.

Calls go through the real bridge (an in-process MCP client in both protocol eras, or `Bridge`)
to a scripted loopback server. Waits are measured with the times the server recorded each
request at, never with sleeps in the test.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.errors import ConnectError, HTTPStatusError, ServerError, UpstreamError
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.upstream.retry import MAX_RETRY_AFTER_S, RetryPolicy, retry_after
from tests.acceptance.bridges import connect, tool, write_manual
from tests.acceptance.results import text_of
from tests.sse_server import Request, Response, SSEServer, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio

Handler = Callable[[Request, Response], Awaitable[None]]
ERAS = ["inproc-legacy", "inproc-auto"]
JITTER = 1.2  # a Retry-After wait is the asked time plus up to 20 %
SLACK = 0.5  # seconds of scheduling slack on this shared 2-core machine
EVENTS = sse_lines({"id": "1", "data": {"n": 1}}, {"id": "2", "data": {"n": 2}})


def refusing(times: int, code: int, **headers: str) -> Handler:
    """Refuse the first `times` requests with `code` and `headers`, then serve EVENTS."""

    served = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal served
        served += 1
        if served <= times:
            await response.simple(code, "come back later", headers=headers or None)
            return
        await response.send(EVENTS)
        await response.finish()

    return handler


def gaps(server: SSEServer) -> list[float]:
    """Seconds between consecutive requests, as the server saw them."""
    times = [request.at for request in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def bridge_for(tmp_path: Path, server: SSEServer, **template: Any) -> Bridge:
    inputs = {"type": "object", "properties": {"q": {"type": "object"}}}
    manual = write_manual(
        tmp_path / "retry.json", tool("feed", f"{server.url}/s", inputs, **template)
    )
    return Bridge([load_manual(str(manual))], variables=Variables({}, {}))


async def call(bridge: Bridge, **arguments: Any) -> tuple[Any, float]:
    """The batch or the error of one call, and how long it took."""
    started = anyio.current_time()
    with anyio.fail_after(arguments.get("max_seconds", 15) + 2):
        async with bridge:
            try:
                outcome: Any = await bridge.call("feed", arguments)
            except UpstreamError as exc:
                outcome = exc
    return outcome, anyio.current_time() - started


# -- waits honoured ------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_503_with_retry_after_1_twice_then_200_delivers_the_events_after_waiting(
    era: str, tmp_path: Path
) -> None:
    async with serve(refusing(2, 503, **{"Retry-After": "1"})) as server:
        manual = write_manual(tmp_path / "t.json", tool("feed", f"{server.url}/s"))
        async with connect(era, manual) as client:
            with anyio.fail_after(15):
                result = await client.call_tool("feed", {"max_seconds": 10})
    assert not result.is_error, text_of(result)
    batch = result.structured_content or {}
    assert [event["data"] for event in batch["events"]] == [{"n": 1}, {"n": 2}]
    assert batch["stop_reason"] == "closed" and batch["reconnects"] == 2
    assert len(server.requests) == 3
    for gap in gaps(server):
        assert 1.0 <= gap <= JITTER + SLACK, gaps(server)


async def test_429_with_an_http_date_waits_until_that_date(tmp_path: Path) -> None:
    """The date is read against the response's own Date header (no clock skew counts)."""

    async def handler(request: Request, response: Response) -> None:
        if len(server.requests) == 1:
            now = math.floor(time.time())
            headers = {
                "Date": email.utils.formatdate(now, usegmt=True),
                "Retry-After": email.utils.formatdate(now + 2, usegmt=True),
            }
            await response.simple(429, "slow down", headers=headers)
            return
        await response.send(EVENTS)
        await response.finish()

    async with serve(handler) as server:
        batch, _ = await call(bridge_for(tmp_path, server), max_seconds=10)
    assert not isinstance(batch, Exception), batch
    assert batch.count == 2 and batch.reconnects == 1
    assert 2.0 <= gaps(server)[0] <= 2 * JITTER + SLACK, gaps(server)


async def test_a_reconnect_honours_retry_after_too(tmp_path: Path) -> None:
    async def handler(request: Request, response: Response) -> None:
        if len(server.requests) == 1:
            await response.send(sse_lines({"id": "1", "data": "a"}))
            await response.abort()
        elif len(server.requests) == 2:
            await response.simple(503, "restarting", headers={"Retry-After": "1"})
        else:
            await response.send(sse_lines({"id": "2", "data": "b"}))
            await response.finish()

    async with serve(handler) as server:
        batch, _ = await call(bridge_for(tmp_path, server, retry_timeout=10), max_seconds=10)
    assert not isinstance(batch, Exception), batch
    assert [event["id"] for event in batch.events] == ["1", "2"]
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "1", "1"]
    assert gaps(server)[1] >= 1.0, gaps(server)


# -- bounded: attempts and the deadline ------------------------------------------------------------


async def test_503_forever_gives_up_after_bounded_attempts_within_the_deadline(
    tmp_path: Path,
) -> None:
    async with serve(refusing(10**6, 503)) as server:
        error, took = await call(bridge_for(tmp_path, server, retry_timeout=100), max_seconds=10)
    assert isinstance(error, ServerError) and error.status == 503
    assert "after 5 attempts" in str(error) and "come back later" in str(error)
    assert len(server.requests) == 5
    assert took < 10


async def test_retry_after_longer_than_max_seconds_ends_the_call_at_once_naming_the_wait(
    tmp_path: Path,
) -> None:
    async with serve(refusing(10**6, 503, **{"Retry-After": "30"})) as server:
        error, took = await call(bridge_for(tmp_path, server), max_seconds=5)
    assert isinstance(error, ServerError)
    assert "asked to wait 30 s" in str(error), str(error)
    assert "max_seconds" in str(error)
    assert len(server.requests) == 1
    assert took < 1.0


async def test_a_second_wait_that_would_pass_the_deadline_is_not_started(tmp_path: Path) -> None:
    """Retry-After: 2 with max_seconds 3: the first wait fits, the second would not, so the
    call ends right after the second refusal rather than at its deadline or past it."""
    async with serve(refusing(10**6, 429, **{"Retry-After": "2"})) as server:
        error, took = await call(bridge_for(tmp_path, server), max_seconds=3)
    assert isinstance(error, HTTPStatusError) and error.status == 429
    assert "asked to wait 2 s" in str(error) and "Retry-After: 2" in str(error)
    assert len(server.requests) == 2
    assert took < 3


async def test_a_retry_cut_by_the_deadline_reports_the_refusal_before_it(tmp_path: Path) -> None:
    """The retry after a 503 (Retry-After: 1) never gets its headers before max_seconds: the
    error is the missing stream, and it quotes the refusal that came first."""

    async def handler(request: Request, response: Response) -> None:
        if len(server.requests) == 1:
            await response.simple(503, "deploying", headers={"Retry-After": "1"})
            return
        await wait_disconnect(response)  # no headers at all

    async with serve(handler) as server:
        error, took = await call(bridge_for(tmp_path, server), max_seconds=2)
    assert isinstance(error, ConnectError), error
    assert "within 2 s (max_seconds)" in str(error)
    assert "The last attempt was refused" in str(error) and "HTTP 503" in str(error)
    assert "deploying" in str(error)
    assert len(server.requests) == 2
    assert took < 2 + SLACK


@pytest.mark.parametrize("value", ["3601", "-1", "1.5", "soon", "Wed, 99 Foo 2015 07:28:00 GMT"])
async def test_an_unusable_retry_after_is_treated_as_absent(value: str, tmp_path: Path) -> None:
    """Over an hour, negative, fractional or garbage: the backoff (here 100 ms) applies."""
    async with serve(refusing(1, 503, **{"Retry-After": value})) as server:
        batch, _ = await call(bridge_for(tmp_path, server, retry_timeout=100), max_seconds=10)
    assert not isinstance(batch, Exception), batch
    assert batch.count == 2
    assert gaps(server)[0] < 1.0, gaps(server)


# -- what is never retried -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 403, 404, 409, 422, 500, 501])
async def test_other_statuses_on_the_first_connection_are_reported_at_once(
    code: int, tmp_path: Path
) -> None:
    async with serve(refusing(10**6, code, **{"Retry-After": "1"})) as server:
        error, _ = await call(bridge_for(tmp_path, server, retry_timeout=10), max_seconds=5)
    assert isinstance(error, UpstreamError) and error.status == code
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("code", "retried"), [(503, True), (429, True), (502, False), (504, False), (408, False)]
)
async def test_a_post_is_sent_again_only_after_a_503_or_429(
    code: int, retried: bool, tmp_path: Path
) -> None:
    """503 and 429 say the body was not processed; after a 502, 504 or 408 a gateway may have
    forwarded it, so sending it again could repeat its effect."""
    async with serve(refusing(1, code, **{"Retry-After": "0"})) as server:
        bridge = bridge_for(tmp_path, server, body_field="q", retry_timeout=10)
        outcome, _ = await call(bridge, q={"prompt": "hi"}, max_seconds=5)
    assert [r.method for r in server.requests] == ["POST"] * (2 if retried else 1)
    assert {r.body for r in server.requests} == {b'{"prompt":"hi"}'}
    if retried:
        assert not isinstance(outcome, Exception), outcome
        assert outcome.count == 2
    else:
        assert isinstance(outcome, UpstreamError) and outcome.status == code


# -- the rule itself, for callers without a deadline (subscriptions) ------------------------------


def test_without_a_deadline_the_policy_waits_what_the_server_asks_within_its_budget() -> None:
    policy = RetryPolicy(retry_ms=100, cap_ms=1000, max_attempts=3)
    refused = ServerError("down", status=503, retry_after=1800)
    for failures in (1, 2):
        wait = policy.wait(refused, failures=failures, established=True, has_body=False)
        assert 1800 <= wait <= 1800 * JITTER
    with pytest.raises(ServerError, match="after 3 attempts"):
        policy.wait(refused, failures=3, established=True, has_body=False)


def test_without_retry_after_the_policy_backs_off_like_a_reconnect() -> None:
    policy = RetryPolicy(retry_ms=100, cap_ms=1000)
    failed = ServerError("down", status=500)
    waits = [
        policy.wait(failed, failures=n, established=True, has_body=False) for n in (1, 2, 3, 9)
    ]
    assert 0.08 <= waits[0] <= 0.12 and 0.16 <= waits[1] <= 0.24 and 0.32 <= waits[2] <= 0.48
    assert waits[3] <= 1.2  # capped
    with pytest.raises(ServerError):  # a 500 before any stream is reported
        policy.wait(failed, failures=1, established=False, has_body=False)


DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": " 120 "}, 120.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": str(MAX_RETRY_AFTER_S)}, float(MAX_RETRY_AFTER_S)),
        ({"retry-after": str(MAX_RETRY_AFTER_S + 1)}, None),
        ({"retry-after": "9" * 400}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "+5"}, None),
        ({"retry-after": "1.5"}, None),
        ({"retry-after": "١٢"}, None),  # Arabic-Indic digits are not HTTP's digits
        ({"retry-after": ""}, None),
        ({}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": DATE}, 30.0),
        ({"retry-after": "Wednesday, 21-Oct-15 07:29:00 GMT", "date": DATE}, 60.0),
        ({"retry-after": "Wed Oct 21 07:28:10 2015", "date": DATE}, 10.0),  # asctime, GMT too
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT", "date": DATE}, None),  # in the past
        ({"retry-after": "Wed, 21 Oct 2015 09:28:01 GMT", "date": DATE}, None),  # over an hour
    ],
)
def test_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, now=0.0) == expected


@pytest.mark.parametrize("date", [None, "garbage"])
def test_an_http_date_without_a_usable_date_header_is_measured_against_the_local_clock(
    date: str | None,
) -> None:
    now = email.utils.parsedate_to_datetime(DATE).timestamp()
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:45 GMT"}
    if date is not None:
        headers["date"] = date
    assert retry_after(headers, now=now) == 45.0
