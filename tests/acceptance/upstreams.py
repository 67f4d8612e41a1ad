"""Small upstream handlers the acceptance tests share: an echo, numbered ticks, scripts."""

from __future__ import annotations

from typing import Any

from tests.sse_server import Request, Response, sse_lines, wait_disconnect


async def one_event(request: Request, response: Response) -> None:
    """Echo what the upstream received, as one event, then end the stream."""
    echo = {"target": request.target, "body": request.body.decode("utf-8", "replace")}
    await response.send(sse_lines({"id": "1", "data": echo}))
    await response.finish()


async def events(response: Response, *numbers: int) -> None:
    """Events with ids and data {"n": n}, in one chunk."""
    await response.send(sse_lines(*({"id": str(n), "data": {"n": n}} for n in numbers)))


async def two_events(request: Request, response: Response) -> None:
    await events(response, 1, 2)
    await response.finish()


def script(*events: dict[str, Any], end: str = "finish"):
    """An upstream sending `events`, then ending: "finish" (clean), "abort" (drop), "hold"."""

    async def handler(request: Request, response: Response) -> None:
        await response.head()
        for event in events:
            await response.send(sse_lines(event))
        if end == "finish":
            await response.finish()
        elif end == "abort":
            await response.abort()
        else:
            await wait_disconnect(response)

    return handler


def ticks(n: int, event: str = "tick") -> list[dict[str, Any]]:
    return [{"event": event, "id": str(i), "data": {"n": i}} for i in range(n)]
