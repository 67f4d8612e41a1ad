"""With default settings, a first connection refused with a 503 or 502 and no usable
`Retry-After` is retried within a normal call: before any stream, the backoff starts from 1 s
(not the manual's 30 s `retry_timeout`), doubling and jittered, so a deploy window is ridden out.
Waits are measured with the times the server recorded each request at."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from mcp import types

from mcp_sse_bridge.errors import ServerError
from mcp_sse_bridge.upstream.retry import FIRST_BACKOFF_MS
from mcp_sse_bridge.upstream.stream import StreamOptions
from tests.acceptance.bridges import connect, tool, write_manual
from tests.sse_server import Request, Response, serve, sse_lines

pytestmark = pytest.mark.anyio

SLACK = 0.5  # seconds of scheduling slack on a shared machine


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


@pytest.mark.parametrize("era", ["inproc-legacy", "inproc-auto"])
async def test_a_503_then_a_502_without_retry_after_are_retried_with_the_default_settings(
    era: str, tmp_path: Path
) -> None:
    served = 0

    async def handler(request: Request, response: Response) -> None:
        nonlocal served
        served += 1
        if served <= 2:
            await response.simple(503 if served == 1 else 502, "deploying")
            return
        await response.send(sse_lines({"id": "1", "data": {"n": 1}}))
        await response.finish()

    async with serve(handler) as server:
        manual = write_manual(tmp_path / "t.json", tool("feed", f"{server.url}/s"))
        async with connect(era, manual) as client:
            with anyio.fail_after(20):
                result = await client.call_tool("feed", {})  # default max_seconds, retry_timeout
    assert not result.is_error, text_of(result)
    batch = result.structured_content or {}
    assert batch["stop_reason"] == "closed" and batch["reconnects"] == 2
    times = [request.at for request in server.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 0.8 <= gaps[0] <= 1.2 + SLACK, gaps  # 1 s +-20 %
    assert 1.6 <= gaps[1] <= 2.4 + SLACK, gaps  # doubled


def test_the_first_connections_backoff_starts_from_at_most_one_second() -> None:
    refused = ServerError("down", status=503)
    for retry_ms, base in [(30000, FIRST_BACKOFF_MS), (200, 200)]:
        first, again = StreamOptions(retry_ms=retry_ms).policies()
        waits = [
            first.wait(refused, failures=n, established=False, has_body=False) for n in (1, 2, 3)
        ]
        for n, wait in enumerate(waits):
            assert 0.8 * base * 2**n <= wait * 1000 <= 1.2 * base * 2**n, (retry_ms, waits)
        assert first.max_attempts == 5
        reconnect = again.wait(refused, failures=1, established=True, has_body=False)
        assert 0.8 * retry_ms <= reconnect * 1000 <= 1.2 * retry_ms  # reconnects: unchanged


async def test_a_503_that_never_ends_is_reported_once_the_next_wait_would_not_fit(
    tmp_path: Path,
) -> None:
    """max_seconds 4: the waits of about 1 s and 2 s fit, the third (about 4 s) would not."""

    async def handler(request: Request, response: Response) -> None:
        await response.simple(503, "down for maintenance")

    async with serve(handler) as server:
        manual = write_manual(tmp_path / "t.json", tool("feed", f"{server.url}/s"))
        async with connect("inproc-legacy", manual) as client:
            with anyio.fail_after(10):
                result = await client.call_tool("feed", {"max_seconds": 4})
    assert result.is_error
    text = text_of(result)
    assert "HTTP 503" in text and "Not retried: the next attempt would be in" in text, text
    assert len(server.requests) == 3
