"""Bounds and stop reasons: every way a call can end is a batch that the tool's output schema
accepts; the byte budget bounds what reaches the model; and no call outlives its max_seconds,
whatever the upstream does (slow headers, a byte-wise body, 503 loops, `retry: 0`, redirects).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_sse_bridge.calls.bridge import Limits
from tests.acceptance.bridges import bridge_of, connect, tool, write_manual
from tests.acceptance.results import MARGIN, checked_batch, text_of
from tests.acceptance.upstreams import script, ticks
from tests.sse_server import Request, Response, serve, wait_disconnect

pytestmark = pytest.mark.anyio


STOP_CASES = [
    pytest.param("max_events", script(*ticks(5)), {"max_events": 2}, {}, {}, id="max_events"),
    pytest.param("closed", script(*ticks(2)), {}, {}, {}, id="closed"),
    pytest.param(
        "max_seconds", script(*ticks(1), end="hold"), {"max_seconds": 0.3}, {}, {}, id="max_seconds"
    ),
    pytest.param("idle", script(*ticks(1), end="hold"), {}, {"idle_seconds": 0.2}, {}, id="idle"),
    pytest.param(
        "until_event",
        script(*ticks(2), {"event": "done", "id": "d", "data": "ok"}, *ticks(2)),
        {"until_event": "done"},
        {},
        {},
        id="until_event",
    ),
    pytest.param("max_bytes", script(*ticks(5)), {}, {"max_bytes": 30}, {}, id="max_bytes"),
    pytest.param("error", script(*ticks(2), end="abort"), {}, {}, {"reconnect": False}, id="error"),
]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("reason", "upstream", "arguments", "limits", "template"), STOP_CASES)
async def test_every_stop_reason_validates_against_the_output_schema(
    mode: str,
    reason: str,
    upstream: Any,
    arguments: dict[str, Any],
    limits: dict[str, Any],
    template: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A host that validates structuredContent (the SDK client does, once it listed the tool)
    must accept every batch the bridge can return, `error` batches included."""
    async with serve(upstream) as server:
        manual = write_manual(tmp_path / "m.json", tool("t", f"{server.url}/s", **template))
        async with connect(f"inproc-{mode}", manual, limits=Limits(**limits)) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(10):
                result = await client.call_tool("t", {"max_seconds": 5, **arguments})
    batch = checked_batch(result, schema)
    assert batch["stop_reason"] == reason
    assert ("error" in batch) == (reason == "error")
    assert batch["count"] == len(batch["events"]) >= 1


async def test_the_byte_budget_bounds_what_reaches_the_model() -> None:
    """--max-bytes exists because the model's context is scarce: a hostile upstream must not get
    around it with 60 KiB event types and ids on events whose data is one byte."""
    big = "E" * 60_000

    async def fat_metadata(request: Request, response: Response) -> None:
        for n in range(5):
            await response.send(f"event: {big}{n}\nid: {big}{n}\ndata: x\n\n")
        await response.finish()

    async with serve(fat_metadata) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"), max_bytes=1000)
        async with bridge:
            batch = await bridge.call("t", {"max_events": 5, "max_seconds": 5})
    size = len(json.dumps(batch.to_dict()))
    assert size <= 16 * 1000, f"a 1000-byte budget returned a {size}-byte batch"


# -- the time budget -------------------------------------------------------------------------------
# (A silent upstream and a trickle of comments are in test_faults.py.)


async def slow_headers(request: Request, response: Response) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n":
        await response.raw(bytes([byte]))
        await anyio.sleep(0.1)
    await wait_disconnect(response)


async def bytewise(request: Request, response: Response) -> None:
    await response.head()
    for _ in range(40):
        for byte in b"data: slow\n\n":
            await response.send(bytes([byte]))
            await anyio.sleep(0.02)


async def event_then_503s(request: Request, response: Response) -> None:
    if "last-event-id" in request.headers:
        await response.simple(503, "restarting", headers={"Retry-After": "0"})
        return
    await response.send("retry: 0\nid: 1\ndata: one\n\n")
    await response.abort()


async def drop_after_each_event(request: Request, response: Response) -> None:
    n = int(request.headers.get("last-event-id", "0")) + 1
    await response.send(f"retry: 0\nid: {n}\ndata: {n}\n\n")
    await response.abort()


async def huge_retry(request: Request, response: Response) -> None:
    await response.send("retry: 999999999999999999999\nid: 1\ndata: one\n\n")
    await response.abort()


async def redirect_loop(request: Request, response: Response) -> None:
    await response.simple(307, "", headers={"Location": request.path + "x"})


BUDGET = [
    # Headers that never complete: no stream was ever established, so an error, not a batch.
    pytest.param(slow_headers, True, id="headers-byte-by-byte"),
    pytest.param(bytewise, False, id="body-byte-by-byte"),
    pytest.param(event_then_503s, False, id="503-loop"),
    pytest.param(drop_after_each_event, False, id="retry-0-drop-per-event"),
    pytest.param(huge_retry, False, id="huge-retry"),
    pytest.param(redirect_loop, True, id="redirect-loop"),
]


@pytest.mark.parametrize(("upstream", "is_error"), BUDGET)
async def test_no_call_outlives_its_max_seconds(
    upstream: Any, is_error: bool, tmp_path: Path
) -> None:
    """max_seconds=1 with progress and liveness on: the result (a batch, or an error where
    the upstream never gave a stream) arrives within the margin, and no upstream connection
    outlives the call."""
    async with serve(upstream) as server:
        manual = write_manual(tmp_path / "b.json", tool("t", f"{server.url}/s", retry_timeout=0))
        async with connect("inproc-legacy", manual, liveness_seconds=0.2) as client:
            await client.list_tools()

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                pass

            started = anyio.current_time()
            with anyio.fail_after(10):
                arguments = {"max_events": 1000, "max_seconds": 1}
                result = await client.call_tool("t", arguments, progress_callback=on_progress)
            took = anyio.current_time() - started
            with anyio.fail_after(1):
                await server.wait_for_client_close()
    assert took <= 1 + MARGIN, f"the call took {took:.2f} s for max_seconds=1"
    assert result.is_error is is_error, text_of(result)
    if not is_error:
        assert (result.structured_content or {})["stop_reason"] == "max_seconds"


async def test_retry_0_and_a_drop_per_event_is_no_busy_loop(tmp_path: Path) -> None:
    """A server saying `retry: 0` and dropping the stream after each (filtered-out) event must
    not be hammered with hundreds of connections a second: stream.py keeps MIN_BACKOFF_MS "so
    `retry: 0` cannot make a busy loop", but any parsed event resets the backoff."""

    async def noise_then_drop(request: Request, response: Response) -> None:
        await response.send("retry: 0\nevent: noise\ndata: x\n\n")
        await response.abort()

    async with serve(noise_then_drop) as server:
        template = {"event_type": "wanted"}
        manual = write_manual(tmp_path / "s.json", tool("t", f"{server.url}/s", **template))
        async with connect("inproc-legacy", manual) as client:
            with anyio.fail_after(10):
                result = await client.call_tool("t", {"max_seconds": 1})
    batch = result.structured_content or {}
    assert batch.get("stop_reason") == "max_seconds", text_of(result)
    assert len(server.requests) <= 20, f"{len(server.requests)} connections in 1 s"
