"""Progress: a host gets one notification per accepted event, in order, each naming its event; a
terminal running `call` gets a live line, also while the stream is quiet, cleared at the end.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp.shared.dispatcher import ProgressFnT

from tests.acceptance.bridges import CLI, stdio_bridge, tool, write_manual
from tests.acceptance.network import origin
from tests.acceptance.results import batch_of, ids
from tests.sse_server import Request, Response, serve, serve_in_thread, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


def recorder(seen: list[tuple[float, float | None, str | None]]) -> ProgressFnT:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    return on_progress


async def test_a_fast_upstream_gets_one_progress_notification_per_event(tmp_path: Path) -> None:
    """An upstream that writes 300 events in one burst: the host gets one notification per
    accepted event up to max_events, in order, progress strictly increasing 1..N with total
    N, each message naming its event, and the result holds exactly the notified events."""

    async def burst(request: Request, response: Response) -> None:
        await response.send(
            "".join(
                sse_lines({"event": "tick", "id": f"e{n}", "data": {"n": n}}) for n in range(300)
            )
        )
        await wait_disconnect(response)

    async with serve(burst) as up:
        manual = write_manual(tmp_path / "fast.json", tool("fast", f"{origin(up)}/s"))
        async with stdio_bridge(manual) as client:
            for max_events in (1, 100):
                seen: list[tuple[float, float | None, str | None]] = []
                result = await client.call_tool(
                    "fast", {"max_events": max_events}, progress_callback=recorder(seen)
                )
                batch = batch_of(result)
                assert batch["count"] == max_events and batch["stop_reason"] == "max_events"
                assert [p for p, _, _ in seen] == list(range(1, max_events + 1))
                assert {total for _, total, _ in seen} == {max_events}
                for (_, _, message), event in zip(seen, batch["events"], strict=True):
                    assert message and message.startswith(f"tick #{event['id']}:"), message
                assert ids(batch) == [f"e{n}" for n in range(max_events)]


def test_call_on_a_terminal_shows_a_live_line_and_prints_only_the_batch(tmp_path: Path) -> None:
    """README: `call` shows a live progress line on a terminal (stderr), including while the
    stream is quiet, clears it, and prints the batch as JSON on stdout."""

    async def two_then_quiet(request: Request, response: Response) -> None:
        await response.send(sse_lines({"id": "1", "data": {"n": 1}}))
        await anyio.sleep(1.5)  # the upstream is quiet: the line says it is waiting
        await response.send(sse_lines({"id": "2", "data": {"n": 2}}))
        await response.finish()

    with serve_in_thread(two_then_quiet) as server:
        manual = write_manual(tmp_path / "tty.json", tool("t", f"{server.url}/s"))
        leader, follower = pty.openpty()
        try:
            done = subprocess.run(
                [*CLI, "call", "t", "max_events=2", "--manual", str(manual)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=follower,
                timeout=30,
            )
            os.close(follower)
            follower = -1
            shown = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal has no writer left
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
    assert done.returncode == 0
    assert [e["id"] for e in json.loads(done.stdout)["events"]] == ["1", "2"]
    screen = shown.decode()
    assert '[1/2] message #1: {"n":1}' in screen
    assert "waiting for events" in screen
    assert '[2/2] message #2: {"n":2}' in screen
    assert screen.endswith("\r\x1b[2K"), "the live line is not cleared at the end"
