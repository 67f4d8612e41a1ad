"""Subscriptions from the command line: the flags, pinned `--subscribe`, and `call --follow`,
through the real `mcp-sse-bridge` process (stdio) where the process matters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters

from mcp_sse_bridge.cli import main
from tests.feeds import SECRET, Ticker, manual_doc, ok, ticking
from tests.sse_server import Request, Response, serve, serve_in_thread, sse_lines

ROOT = Path(__file__).parent.parent
BRIDGE = [sys.executable, "-m", "mcp_sse_bridge"]
ENV = {"PYTHONPATH": str(ROOT), "API_KEY": SECRET, "PATH": os.environ.get("PATH", "")}

pytestmark = pytest.mark.usefixtures("restore_logging")


def write_manual(tmp_path: Path, url: str, **template: object) -> str:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(manual_doc(url, **template)))
    return str(path)


def bridge(*args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_sse_bridge", *args], env=ENV
    )


@pytest.mark.anyio
async def test_a_pinned_subscription_is_there_from_the_first_call(tmp_path: Path) -> None:
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        pinned = "ticks symbol=AAPL buffer_events=50"
        with anyio.fail_after(20):
            async with mcp.Client(bridge("--manual", manual, "--subscribe", pinned)) as client:
                [sub] = ok(await client.call_tool("list_subscriptions", {}))["subscriptions"]
                await anyio.sleep(0.2)
                result = ok(
                    await client.call_tool(
                        "read_subscription",
                        {"subscription": sub["subscription"], "max_events": 100},
                    )
                )
            start = anyio.current_time()
            await upstream.wait_for_client_close(timeout=2)  # stdin closed: the feed closes
    assert anyio.current_time() - start < 1.5
    assert sub["pinned"] is True and sub["arguments"] == {"symbol": "AAPL"}
    assert sub["buffer_events"] == 50 and result["count"] >= 5
    assert upstream.requests[0].query == [("symbol", "AAPL")]


@pytest.mark.anyio
async def test_a_pinned_subscription_whose_upstream_fails_at_start_is_tried_again(
    tmp_path: Path,
) -> None:
    """The upstream answers 404 twice (the feed is not there yet), then streams: the pin is
    retried in the background while the bridge serves, and is listed once it connects."""
    ticker = Ticker(0.02)
    streaming = anyio.Event()

    async def late(request: Request, response: Response) -> None:
        if len(upstream.requests) <= 2:
            await response.simple(404, "not yet")
            return
        streaming.set()
        await ticker.handler(request, response)

    async with ticking(ticker) as feed, serve(late) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        with anyio.fail_after(20):
            async with mcp.Client(bridge("--manual", manual, "--subscribe", "ticks")) as client:
                assert ok(await client.call_tool("list_subscriptions", {}))["count"] == 0
                await streaming.wait()  # the third try
                again = {"tool": "ticks", "arguments": {}}
                joined = ok(await client.call_tool("subscribe", again))
    assert joined["joined"] and joined["pinned"] and joined["state"] == "live"
    assert feed is not None and len(upstream.requests) == 3


@pytest.mark.anyio
async def test_no_subscriptions_hides_the_four_tools(tmp_path: Path) -> None:
    manual = write_manual(tmp_path, "http://127.0.0.1:9")
    with anyio.fail_after(20):
        async with mcp.Client(bridge("--manual", manual, "--no-subscriptions")) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == ["ticks", "needs_var"]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--subscribe", "nope"], "unknown tool 'nope'"),
        (["--subscribe", "ticks symbol=1 color=red"], "no argument 'color'"),
        (["--subscribe", "ticks 'open"], "No closing quotation"),
        (["--subscribe", "ticks", "--no-subscriptions"], "drop --no-subscriptions"),
        (["--max-subscriptions", "0"], "expected a positive integer"),
        (["--subscription-ttl", "nan"], "expected a positive finite number"),
    ],
)
def test_bad_subscription_flags_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], said: str
) -> None:
    manual = write_manual(tmp_path, "http://127.0.0.1:9")
    code = main(["--manual", manual, *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0], err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["max_events=3"], "--follow runs until Ctrl-C: drop max_events"),
        (["latest_per=symbol"], "--follow prints every event as it comes: drop latest_per"),
        (["summary=true", "format=lines"], "drop summary, format (shaping applies to one call"),
    ],
)
def test_call_follow_refuses_bounds_and_shaping_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], said: str
) -> None:
    manual = write_manual(tmp_path, "http://127.0.0.1:9")
    code = main(["call", "ticks", *extra, "--follow", "--manual", manual])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0], err


def test_call_follow_prints_each_event_as_a_json_line_until_the_feed_ends(tmp_path: Path) -> None:
    async def three(request: Request, response: Response) -> None:
        await response.head()
        for i in range(3):
            await response.send(sse_lines({"event": "tick", "id": str(i), "data": {"n": i}}))
        await response.finish()

    with serve_in_thread(three) as upstream:
        manual = write_manual(tmp_path, upstream.url, reconnect=False)
        done = subprocess.run(
            [*BRIDGE, "call", "ticks", "--follow", "--manual", manual],
            env=ENV, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert [line["data"] for line in lines] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(line["received_at"].endswith("Z") for line in lines)
    assert "the feed ended: closed" in done.stderr


@pytest.mark.anyio
async def test_call_follow_runs_until_ctrl_c_and_closes_the_upstream(tmp_path: Path) -> None:
    ticker = Ticker(0.02)
    async with ticking(ticker) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        command = [
            sys.executable,
            "-m",
            "mcp_sse_bridge",
            "call",
            "ticks",
            "--follow",
            "--manual",
            manual,
        ]
        with anyio.fail_after(20):
            async with await anyio.open_process(command, env=ENV, stderr=subprocess.PIPE) as proc:
                assert proc.stdout is not None and proc.stderr is not None
                seen = b""
                while seen.count(b"\n") < 5:
                    seen += await proc.stdout.receive()
                proc.send_signal(signal.SIGINT)
                code = await proc.wait()
                err = (await proc.stderr.receive()).decode()
            await upstream.wait_for_client_close(timeout=2)
    numbers = [json.loads(line)["data"]["n"] for line in seen.decode().splitlines()[:5]]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert code == 130 and "interrupted" in err
