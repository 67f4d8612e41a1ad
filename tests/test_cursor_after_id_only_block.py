"""The batch's `last_event_id` is the stream's last event id where the call stopped, whatever
block set it: a block with an `id:` line and no data dispatches no event but moves the cursor
(WHATWG HTML, "dispatch the event"), and `id:` with an empty value resets it to "".

Through the real bridge (an in-process MCP client, both protocol eras) to a loopback server.
Where the order of arrival matters, the server sends the id-only block only after the client
has been told of the event before it (its progress notification), so that the block arrives in
a network chunk of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acceptance.bridges import connect, tool, write_manual
from tests.acceptance.results import batch_of, ids
from tests.sse_server import Request, Response, SSEServer, serve, wait_disconnect

pytestmark = pytest.mark.anyio

ERAS = ["inproc-legacy", "inproc-auto"]


class Gate:
    """Opened by the client's progress callback when an event (not a liveness tick) arrived."""

    def __init__(self) -> None:
        self.events = 0
        self._opened: list[anyio.Event] = [anyio.Event() for _ in range(4)]

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        if float(progress).is_integer():
            self.events = int(progress)
            for opened in self._opened[: self.events]:
                opened.set()

    async def after_event(self, n: int) -> None:
        """Wait until the client has been told of its `n`th event."""
        with anyio.fail_after(5):
            await self._opened[n - 1].wait()


async def call(
    era: str, tmp_path: Path, server: SSEServer, gate: Gate | None = None, **arguments: Any
) -> dict[str, Any]:
    template = arguments.pop("template", {})
    manual = write_manual(
        tmp_path / "cursor.json", tool("feed", f"{server.url}/s", retry_timeout=10, **template)
    )
    async with connect(era, manual) as client:
        with anyio.fail_after(10):
            result = await client.call_tool(
                "feed",
                {"max_events": 10, "max_seconds": 5, **arguments},
                progress_callback=gate.on_progress if gate else None,
            )
    return batch_of(result)


def last_event_ids(server: SSEServer) -> list[str | None]:
    return [request.headers.get("last-event-id") for request in server.requests]


async def event_then_id_only_block(response: Response, gate: Gate) -> None:
    """Event 1, then, once the client was told of it, `id: 2` with no data (a chunk of its own)."""
    await response.send("id: 1\ndata: a\n\n")
    await gate.after_event(1)
    await response.send("id: 2\n\n")


async def resumed_after_2(request: Request, response: Response) -> bool:
    """Answer a request resuming after id 2 with event 3 and the end; False for any other."""
    if request.headers.get("last-event-id") != "2":
        return False
    await response.send("id: 3\ndata: c\n\n")
    await response.finish()
    return True


@pytest.mark.parametrize("era", ERAS)
async def test_an_id_only_block_at_the_end_of_a_closed_stream_is_the_cursor(
    era: str, tmp_path: Path
) -> None:
    gate = Gate()

    async def handler(request: Request, response: Response) -> None:
        if await resumed_after_2(request, response):  # the resumed call
            return
        await event_then_id_only_block(response, gate)
        await response.finish()

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, gate)
        assert (ids(batch), batch["stop_reason"], batch["last_event_id"]) == (["1"], "closed", "2")
        resumed = await call(era, tmp_path, server, last_event_id=batch["last_event_id"])
    assert ids(resumed) == ["3"]  # nothing replayed
    assert last_event_ids(server) == [None, "2"]


@pytest.mark.parametrize("era", ERAS)
async def test_an_id_only_block_before_a_drop_is_what_the_reconnect_sends(
    era: str, tmp_path: Path
) -> None:
    gate = Gate()

    async def handler(request: Request, response: Response) -> None:
        if await resumed_after_2(request, response):  # the reconnect
            return
        await event_then_id_only_block(response, gate)
        await response.abort()

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, gate)
    assert (ids(batch), batch["last_event_id"], batch["reconnects"]) == (["1", "3"], "3", 1)
    assert last_event_ids(server) == [None, "2"]


@pytest.mark.parametrize("era", ERAS)
async def test_an_id_only_block_before_a_drop_is_the_cursor_when_the_call_stops_there(
    era: str, tmp_path: Path
) -> None:
    """The reconnect is refused until max_seconds: the batch still hands back id 2, not 1."""
    gate = Gate()

    async def handler(request: Request, response: Response) -> None:
        if request.headers.get("last-event-id"):
            await response.simple(503, "restarting")
            return
        await event_then_id_only_block(response, gate)
        await response.abort()

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, gate, max_seconds=1)
    assert (ids(batch), batch["stop_reason"], batch["last_event_id"]) == (
        ["1"],
        "max_seconds",
        "2",
    )
    assert set(last_event_ids(server)[1:]) == {"2"}


@pytest.mark.parametrize("era", ERAS)
async def test_an_id_only_block_between_two_events_gives_the_second_its_id(
    era: str, tmp_path: Path
) -> None:
    gate = Gate()

    async def handler(request: Request, response: Response) -> None:
        await event_then_id_only_block(response, gate)
        await response.send("data: b\n\n")  # no id line: it carries the last event id, 2
        await response.finish()

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, gate)
    assert (ids(batch), batch["last_event_id"]) == (["1", "2"], "2")


@pytest.mark.parametrize("era", ERAS)
async def test_an_id_only_block_right_after_the_last_event_taken_moves_the_cursor(
    era: str, tmp_path: Path
) -> None:
    """max_events stops at event 1; the id-only block came in the same network chunk, so the
    stream's last event id when the call stops is 2 (and no event lies between 1 and 2)."""

    async def handler(request: Request, response: Response) -> None:
        await response.send("id: 1\ndata: a\n\nid: 2\n\n")  # one chunk
        await wait_disconnect(response)

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, max_events=1)
    assert (ids(batch), batch["stop_reason"], batch["last_event_id"]) == (
        ["1"],
        "max_events",
        "2",
    )


@pytest.mark.parametrize("era", ERAS)
async def test_an_empty_id_resets_the_cursor_and_the_reconnect_sends_none(
    era: str, tmp_path: Path
) -> None:
    gate = Gate()

    async def handler(request: Request, response: Response) -> None:
        if len(server.requests) > 1:
            await response.send("id: 5\ndata: b\n\n")
            await gate.after_event(2)
            await response.send("id\n\n")  # a bare `id` line resets it too
            await response.finish()
            return
        await response.send("id: 1\ndata: a\n\n")
        await gate.after_event(1)
        await response.send("id:\n\n")
        await response.abort()

    async with serve(handler) as server:
        batch = await call(era, tmp_path, server, gate)
    assert (ids(batch), batch["stop_reason"], batch["last_event_id"]) == (["1", "5"], "closed", "")
    assert last_event_ids(server) == [None, None]
