"""Resuming: a dropped stream reconnects with Last-Event-ID after the server's `retry:`, nothing
lost or repeated; any id (non-ASCII too) goes back verbatim, on a reconnect and when the caller
passes a batch's `last_event_id` back; an upstream restarting mid-call is survived; a 204 stops,
at the first connection and at a reconnect.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from tests.acceptance.bridges import (
    MODES,
    bridge_of,
    connect,
    mcp_call,
    stdio_bridge,
    tool,
    write_manual,
)
from tests.acceptance.credentials import SECRET
from tests.acceptance.network import origin
from tests.acceptance.restartable import Restartable
from tests.acceptance.results import MARGIN, batch_of, error_of, ids, text_of
from tests.acceptance.upstreams import events
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


NON_ASCII_ID = "événement-1"


async def resumable(request: Request, response: Response) -> None:
    """First connection: one event with a non-ASCII id, then a drop; then echo Last-Event-ID."""
    received = request.headers.get("last-event-id")
    if received is None:
        await response.send(f"retry: 10\nid: {NON_ASCII_ID}\ndata: one\n\n")
        await response.abort()
        return
    # The test server reads headers as latin-1; browsers send this header as UTF-8.
    echoed = received.encode("latin-1").decode("utf-8", "replace")
    await response.send(sse_lines({"id": "2", "data": {"resumed_after": echoed}}))
    await response.finish()


@pytest.mark.parametrize("mode", MODES)
async def test_a_non_ascii_event_id_survives_a_reconnect(mode: str) -> None:
    """The stream gave an id with an accent, then dropped: reconnect and send it back."""
    async with serve(resumable) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        result = await mcp_call(bridge, "t", {"max_events": 2, "max_seconds": 5}, mode=mode)
    assert not result.is_error, text_of(result)
    batch = result.structured_content or {}
    assert [e["data"] for e in batch["events"]] == ["one", {"resumed_after": NON_ASCII_ID}]
    assert batch["reconnects"] == 1


async def test_a_non_ascii_last_event_id_from_a_batch_can_be_passed_back() -> None:
    """README: "Pass last_event_id back to continue where the batch ended" - any id it returned."""
    async with serve(resumable) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        result = await mcp_call(bridge, "t", {"last_event_id": NON_ASCII_ID, "max_events": 1})
    assert not result.is_error, text_of(result)
    assert (result.structured_content or {})["events"][0]["data"] == {"resumed_after": NON_ASCII_ID}


async def test_an_upstream_restart_mid_call_is_survived(tmp_path: Path) -> None:
    """The upstream process restarts mid-call (its port refuses connections for 300 ms): the
    call reconnects through the refusals, resumes with Last-Event-ID, and the batch has every
    event exactly once."""
    resumed: list[str | None] = []
    first_sent = anyio.Event()

    async def numbered(request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id")
        resumed.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 50\n\n")
        for n in range(start, start + 3):
            await response.send(sse_lines({"id": str(n), "data": {"n": n}}))
        if last:
            await response.finish()
        else:
            first_sent.set()
            await wait_disconnect(response)

    upstream = Restartable(numbered)
    results: list[types.CallToolResult] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as servers:
            await servers.start(upstream.run)
            manual = write_manual(tmp_path / "r.json", tool("t", f"{upstream.url}/s"))
            async with connect("inproc-legacy", manual) as client, anyio.create_task_group() as tg:

                async def call() -> None:
                    arguments = {"max_events": 6, "max_seconds": 10}
                    results.append(await client.call_tool("t", arguments))

                tg.start_soon(call)
                await first_sent.wait()
                await upstream.stop()
                await anyio.sleep(0.3)  # the restart's down time: reconnects meet a closed port
                await servers.start(upstream.run)
            await upstream.stop()
    batch = results[0].structured_content or {}
    assert [e["data"]["n"] for e in batch["events"]] == [1, 2, 3, 4, 5, 6], text_of(results[0])
    assert batch["stop_reason"] == "max_events"
    assert batch["reconnects"] >= 1
    assert resumed == [None, "3"]


class Dropping:
    """Ticks honouring Last-Event-ID, with `retry: 200`, two per connection then a drop; the
    connection times are kept to check the waits between them."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []
        self.times: list[float] = []

    async def __call__(self, request: Request, response: Response) -> None:
        self.times.append(anyio.current_time())
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        start = int(last) + 1 if last else 1
        await response.send("retry: 200\n\n")
        await events(response, start, start + 1)
        await response.abort()


class Statuses:
    """/<status>: that status with a body in one of the ways servers send them."""

    async def __call__(self, request: Request, response: Response) -> None:
        name = request.path.strip("/")
        if name == "204":
            await response.simple(204, "")
        elif name == "401":
            await response.simple(401, f"bad key {SECRET}", headers={"WWW-Authenticate": "x"})
        elif name == "404":  # chunked
            await response.head(404, content_type="application/json")
            await response.send('{"error": "no such stream"}')
            await response.finish()
        elif name == "429":
            await response.simple(429, "slow down", headers={"Retry-After": "7"})
        elif name == "500":  # an HTML page, no length: the body ends with the connection
            await response.head(500, content_type="text/html", chunked=False)
            await response.raw(b"<html><body><h1>Internal failure</h1></body></html>")
            await response.abort()
        elif name == "200-html":
            await response.simple(200, "<p>a page</p>", "text/html")
        elif name == "long-retry":  # one event, a retry of an hour, a drop
            await response.send("retry: 3600000\n\n" + sse_lines({"id": "1", "data": "x"}))
            await response.abort()
        elif name == "until-close":  # no length, not chunked: the stream ends with the connection
            await response.head(200, chunked=False)
            await response.raw(
                sse_lines({"id": "1", "data": "a"}, {"id": "2", "data": "b"}).encode()
            )
            await response.abort()
        elif name == "then-204":
            if request.headers.get("last-event-id"):
                await response.simple(204, "")
                return
            await response.send("retry: 100\n\n")
            await events(response, 1)
            await response.abort()


async def test_drops_reconnect_after_the_servers_retry_and_every_status_ends_clearly(
    tmp_path: Path,
) -> None:
    """Drops reconnect with Last-Event-ID after the server's `retry:` (200 ms, +-20 %, not
    the default 30 s), nothing lost or repeated; an hour's `retry:` cannot outlive the call's
    max_seconds; 204 stops, at the first connection and at a reconnect; refusals quote their
    bodies however they are framed, with the secret masked; a stream delimited by the
    connection's close ends as `closed`."""
    dropping = Dropping()
    async with serve(dropping) as drops, serve(Statuses()) as st:
        key = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
        names = ["204", "401", "404", "429", "500", "200-html", "long-retry", "then-204"]
        names.append("until-close")
        manual = write_manual(
            tmp_path / "statuses.json",
            tool("drops", f"{origin(drops)}/s"),
            *(tool(f"s{n}".replace("-", "_"), f"{origin(st)}/{n}", auth=key) for n in names),
        )
        async with stdio_bridge(manual, {"API_KEY": SECRET}) as client:
            resumed = batch_of(await client.call_tool("drops", {"max_events": 6}))
            start = anyio.current_time()
            long_retry = batch_of(await client.call_tool("slong_retry", {"max_seconds": 1}))
            long_took = anyio.current_time() - start
            got = {
                name: await client.call_tool(f"s{name}".replace("-", "_"), {"max_seconds": 5})
                for name in names
                if name != "long-retry"
            }
    assert ids(resumed) == ["1", "2", "3", "4", "5", "6"] and resumed["reconnects"] == 2
    assert dropping.last_ids == [None, "2", "4"]
    waits = [later - earlier for earlier, later in itertools.pairwise(dropping.times)]
    assert all(0.15 <= wait <= 0.24 + MARGIN for wait in waits), waits
    assert long_retry["count"] == 1 and long_retry["stop_reason"] == "max_seconds"
    assert long_took <= 1 + MARGIN
    stopped = batch_of(got["204"])
    assert stopped["count"] == 0 and stopped["stop_reason"] == "closed"
    then_204 = batch_of(got["then-204"])
    assert ids(then_204) == ["1"] and then_204["stop_reason"] == "closed"
    assert then_204["reconnects"] == 1
    error_of(got["401"], "401", "refused the credentials", "bad key ***")
    error_of(got["404"], "404", "no such stream")
    error_of(got["429"], "429", "slow down", "Retry-After: 7")
    error_of(got["500"], "500", "Internal failure")
    assert "<h1>" not in text_of(got["500"])
    error_of(got["200-html"], "text/html", "a page")
    until_close = batch_of(got["until-close"])  # an HTTP/1.0-style body: its end is clean
    assert ids(until_close) == ["1", "2"] and until_close["stop_reason"] == "closed"
