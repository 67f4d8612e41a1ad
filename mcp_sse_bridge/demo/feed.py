"""The bundled demo feed: three small SSE APIs on loopback, so the demo needs no network.

- `GET /stocks?symbols=AAPL,MSFT`: a stock ticker. Named `price_update` events with numeric ids
  (resumable with `Last-Event-ID`), one `market_status` event first, `: keep-alive` comments.
  Requires the `X-Api-Key` header when the app was created with an `api_key`.
- `GET /logs?level=warning`: a log tail. Unnamed events (type `message`) with JSON log records.
- `GET /jobs/{job_id}`: job progress. `progress` events from 0 to 100 %, one `done` event, then
  the stream ends cleanly.

Prices and log lines are a pure function of the event id, so a resumed stream continues exactly
where it stopped. `run_feed` serves the app with uvicorn in a background thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BASE_PRICES = {"AAPL": 187.0, "MSFT": 402.0, "NVDA": 121.0, "GOOG": 171.0, "AMZN": 183.0}
LEVELS = ("debug", "info", "warning", "error")
_LOG_LINES = (
    ("info", "api", "GET /orders 200 in 12 ms"),
    ("warning", "api", "GET /orders/77 404 in 3 ms"),
    ("debug", "worker", "job 4711 picked up"),
    ("warning", "db", "slow query on orders (830 ms)"),
    ("info", "worker", "job 4711 finished"),
    ("error", "api", "POST /checkout 502: payment gateway timed out"),
)


def _event(data: Any, *, event: str | None = None, id: int | None = None) -> str:
    lines = [f"event: {event}"] if event else []
    if id is not None:
        lines.append(f"id: {id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


def _resume_from(request: Request) -> int:
    """The id after the client's `Last-Event-ID` (ids are integers here), or 1."""
    last = request.headers.get("last-event-id", "")
    return int(last) + 1 if last.isdigit() else 1


def price(symbol: str, n: int) -> float:
    """Deterministic price of `symbol` at tick `n`: a gentle wave around its base price."""
    base = BASE_PRICES.get(symbol, 100.0)
    phase = sum(map(ord, symbol)) % 7
    return round(base * (1 + 0.01 * math.sin(n / 3 + phase)), 2)


def log_record(n: int) -> dict[str, Any]:
    level, service, message = _LOG_LINES[n % len(_LOG_LINES)]
    return {"seq": n, "level": level, "service": service, "message": message}


def create_app(*, interval: float = 0.2, api_key: str | None = None) -> Starlette:
    """The feed app; `interval` is the pause between events in seconds."""

    async def stocks(request: Request) -> Response:
        if api_key is not None and request.headers.get("x-api-key") != api_key:
            return JSONResponse({"error": "missing or wrong X-Api-Key header"}, status_code=401)
        raw = request.query_params.get("symbols") or "AAPL,MSFT"
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        start = _resume_from(request)

        async def ticks() -> AsyncIterator[str]:
            yield _event({"status": "open", "symbols": symbols}, event="market_status")
            for n in range(start, 1 << 62):
                await anyio.sleep(interval)
                if n % 10 == 0:
                    yield ": keep-alive\n\n"
                symbol = symbols[n % len(symbols)]
                quote = {"symbol": symbol, "price": price(symbol, n)}
                yield _event(quote, event="price_update", id=n)

        return _stream(ticks())

    async def logs(request: Request) -> Response:
        level = request.query_params.get("level", "info")
        if level not in LEVELS:
            return JSONResponse({"error": f"level must be one of {', '.join(LEVELS)}"}, 400)
        start = _resume_from(request)

        async def tail() -> AsyncIterator[str]:
            for n in range(start, 1 << 62):
                await anyio.sleep(interval)
                record = log_record(n)
                if LEVELS.index(record["level"]) >= LEVELS.index(level):
                    yield _event(record, id=n)

        return _stream(tail())

    async def job(request: Request) -> Response:
        job_id = request.path_params["job_id"]

        async def progress() -> AsyncIterator[str]:
            for step, percent in enumerate(range(0, 101, 20), start=1):
                await anyio.sleep(interval)
                yield _event({"job": job_id, "percent": percent}, event="progress", id=step)
            yield _event({"job": job_id, "status": "succeeded"}, event="done", id=7)

        return _stream(progress())

    return Starlette(
        routes=[
            Route("/stocks", stocks),
            Route("/logs", logs),
            Route("/jobs/{job_id}", job),
        ]
    )


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@contextlib.contextmanager
def run_feed(*, interval: float = 0.2, api_key: str | None = None) -> Iterator[str]:
    """Serve the feed on a free loopback port in a thread; yields its base URL.

    The socket is bound before the thread starts, so clients can connect at once (the kernel
    queues them until uvicorn accepts). uvicorn logs go to the root logger (stderr), never stdout.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(interval=interval, api_key=api_key),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
