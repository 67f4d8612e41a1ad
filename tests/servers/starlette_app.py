"""An sse-starlette feed, run by tests/thirdparty.py as a uvicorn subprocess on loopback.

`GET /ticks` streams `tick` events with numeric ids, JSON data and, every third event, multi-line
text, in sse-starlette's own wire format (CRLF line ends, `: ping` comments). It honours
`Last-Event-ID` (resumes after it), so tests can check that a dropped stream loses nothing.
Query: `count` (events before a clean end), `interval` and `ping` (seconds), `retry` (ms, sent
with the first event). Prints `PORT <n>` on stdout once the socket listens.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator

import anyio
import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route


def tick(n: int, *, retry: int | None) -> ServerSentEvent:
    data = f"line one of {n}\nline two of {n}" if n % 3 == 0 else f'{{"n": {n}}}'
    return ServerSentEvent(data=data, event="tick", id=str(n), retry=retry)


async def ticks(request: Request) -> EventSourceResponse:
    query = request.query_params
    count = int(query.get("count", "1000"))
    interval = float(query.get("interval", "0.02"))
    retry = int(query["retry"]) if "retry" in query else None
    start = int(request.headers.get("last-event-id") or 0) + 1

    async def events() -> AsyncIterator[ServerSentEvent]:
        for n in range(start, count + 1):
            yield tick(n, retry=retry if n == start else None)
            await anyio.sleep(interval)

    return EventSourceResponse(events(), ping=float(query.get("ping", "15")))


app = Starlette(routes=[Route("/ticks", ticks)])


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print("PORT", sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
