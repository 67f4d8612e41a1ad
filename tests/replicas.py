"""Bridge replicas as separate processes sharing a real Redis, and upstreams for them.

`replica()` starts `mcp-sse-bridge --transport http --store redis://...` on a free port and
yields its MCP URL and process (so a test can SIGKILL it); `Replaying` is a numbered live feed
that honours `Last-Event-ID` (it resends what the client missed), `Ticker` (tests.feeds) one that
does not.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp

from tests.acceptance.bridges import http_process
from tests.feeds import SECRET, Ticker, manual_doc
from tests.sse_server import Request, Response, SSEServer, serve, sse_lines

LEASE = "1"  # --store-lease-seconds: a dead replica's feeds move within about a second


@dataclass
class Replica:
    url: str
    process: anyio.abc.Process

    def kill(self) -> None:
        self.process.kill()


def write_manual(directory: Path, base_url: str) -> Path:
    path = directory / "feed.json"
    path.write_text(json.dumps(manual_doc(base_url)))
    return path


@contextlib.asynccontextmanager
async def replica(
    manual: Path, store: str, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[Replica]:
    """One bridge process on streamable HTTP with `--store`; terminated (if alive) at the end."""
    argv = ["--manual", str(manual), "--store", store, "--store-lease-seconds", LEASE, *extra]
    env = {**os.environ, "API_KEY": SECRET, "PYTHONUNBUFFERED": "1", **(env or {})}
    async with http_process(*argv, env=env) as (url, process):
        yield Replica(url, process)


@contextlib.asynccontextmanager
async def replicas(
    manual: Path, store: str, count: int, *extra: str
) -> AsyncIterator[list[Replica]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(replica(manual, store, *extra)) for _ in range(count)
        ]


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, " ".join(block.text for block in result.content)
    return result.structured_content


async def call(url: str, tool: str, mode: str = "auto", /, **arguments: Any) -> dict[str, Any]:
    """One tool call on the replica at `url`, through a fresh MCP client."""
    async with mcp.Client(url, mode=mode) as client:
        return structured(await client.call_tool(tool, arguments))


class Replaying:
    """A numbered `tick` every `period` s; a client resuming with `Last-Event-ID: n` first gets
    every tick after n that it missed, as a feed with history does."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.sent: list[int] = []  # every tick made
        self.changed = anyio.Event()

    async def clock(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await anyio.sleep(self.period)
            self.sent.append(len(self.sent))
            self.changed.set()
            self.changed = anyio.Event()

    async def handler(self, request: Request, response: Response) -> None:
        last = request.headers.get("last-event-id", "")
        position = int(last) + 1 if last.isdecimal() else len(self.sent)
        await response.head()
        await response.send("retry: 100\n\n")
        while True:
            while position < len(self.sent):
                data = {"n": position}
                await response.send(sse_lines({"event": "tick", "id": str(position), "data": data}))
                position += 1
            await self.changed.wait()


@contextlib.asynccontextmanager
async def feeding(feed: Ticker | Replaying) -> AsyncIterator[SSEServer]:
    async with serve(feed.handler) as upstream, anyio.create_task_group() as tg:
        await tg.start(feed.clock)
        yield upstream
        tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def deployment(
    feed: Ticker | Replaying, directory: Path, store: str, count: int, *extra: str
) -> AsyncIterator[tuple[SSEServer, list[Replica]]]:
    """The upstream `feed` on loopback and `count` replicas of a manual for it sharing `store`."""
    async with feeding(feed) as upstream:
        manual = write_manual(directory, upstream.url)
        async with replicas(manual, store, count, *extra) as live:
            yield upstream, live
