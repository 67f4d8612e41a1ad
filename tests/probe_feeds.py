"""Loopback feeds of each kind a probe must recognise, as handlers for `tests.sse_server`.

Each feed sends its events at once and then holds the stream open until the client goes, as a
live feed does; what differs is how it treats `Last-Event-ID`, its ids and its keep-alives.
"""

from __future__ import annotations

import json
import uuid
import zlib
from typing import Any

from tests.sse_server import Handler, Request, Response, sse_lines, wait_disconnect

SYMBOLS = ("AAPL", "MSFT", "NVDA")


def tick(i: int) -> dict[str, Any]:
    return {"symbol": SYMBOLS[i % 3], "price": 100 + i / 4, "volume": i * 10}


def numeric(*, history: bool, count: int = 40, echo: str = "") -> Handler:
    """Ids 1..count, prices and every fifth a trade, with `retry:`, comments and data-less pings.

    With `history` the feed resumes after `Last-Event-ID`; without, it starts over at 1.
    `echo` names a request header whose value the first event echoes back (as some APIs do).
    """

    async def handler(request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if history and last.isdigit() else 1
        await response.head()
        await response.send("retry: 2500\n: connected\n\n")
        for i in range(start, start + count):
            kind = "trade" if i % 5 == 0 else "price"
            data = tick(i)
            if echo and i == start:
                data["caller"] = request.headers.get(echo, "")
            if i % 4 == 0:  # before the event: a probe stopping at it has seen them all
                await response.send(": keep-alive\n\nevent: ping\n\n")
            await response.send(sse_lines({"event": kind, "id": i, "data": data}))
        await wait_disconnect(response)

    return handler


def uuids(count: int = 30) -> Handler:
    """A live feed with UUID ids and no history: each connection gets the events from now on,
    whatever `Last-Event-ID` says."""
    sent = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal sent
        await response.head()
        for _ in range(count):
            sent += 1
            await response.send(sse_lines({"id": str(uuid.uuid4()), "data": tick(sent)}))
        await wait_disconnect(response)

    return handler


def anonymous(count: int = 30) -> Handler:
    """No ids at all; plain `message` events whose data is sometimes not JSON."""

    async def handler(request: Request, response: Response) -> None:
        await response.head()
        for i in range(count):
            data = json.dumps(tick(i)) if i % 10 else "heartbeat"
            await response.send(f"data: {data}\n\n")
        await wait_disconnect(response)

    return handler


def gzipped(count: int = 30) -> Handler:
    """Numeric ids with replay, sent with `Content-Encoding: gzip`, flushed per event."""

    async def handler(request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if last.isdigit() else 1
        await response.head(headers={"Content-Encoding": "gzip"})
        packer = zlib.compressobj(wbits=31)
        for i in range(start, start + count):
            text = sse_lines({"event": "price", "id": i, "data": tick(i)})
            await response.send(packer.compress(text.encode()) + packer.flush(zlib.Z_SYNC_FLUSH))
        await wait_disconnect(response)

    return handler
