"""`mcp-sse-bridge call` prints a result as an MCP host gets it: `format=lines` as the lines text,
and a shaped result with its note (on stderr, so stdout stays one JSON document)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_sse_bridge.cli import main
from tests.sse_server import Request, Response, serve_in_thread, sse_lines

pytestmark = pytest.mark.usefixtures("restore_logging")

TICKS = [("AAPL", 1.0), ("MSFT", 2.0), ("AAPL", 3.0), ("MSFT", 4.0), ("AAPL", 5.0)]


async def prices(request: Request, response: Response) -> None:
    await response.head()
    for number, (symbol, price) in enumerate(TICKS, start=1):
        data = {"symbol": symbol, "price": price}
        await response.send(sse_lines({"event": "price", "id": str(number), "data": data}))
    await response.finish()


def manual(tmp_path: Path, url: str) -> str:
    path = tmp_path / "prices.json"
    tool = {
        "name": "prices",
        "description": "Prices.",
        "inputs": {"type": "object", "properties": {}},
        "tool_call_template": {"call_template_type": "sse", "url": f"{url}/prices"},
    }
    path.write_text(json.dumps({"utcp_version": "1.0.1", "tools": [tool]}))
    return str(path)


def call(capsys: pytest.CaptureFixture[str], tmp_path: Path, *words: str) -> tuple[str, str]:
    with serve_in_thread(prices) as upstream:
        code = main(["call", "--manual", manual(tmp_path, upstream.url), "prices", *words])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_format_lines_prints_the_lines_text_with_the_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, _ = call(capsys, tmp_path, "format=lines", "latest_per=symbol")
    assert out.splitlines() == [
        'count=2 stop_reason=closed last_event_id="5" folded=5',
        "latest per symbol: 2 of 5 events",
        'price 4 {"symbol":"MSFT","price":4.0}',
        'price 5 {"symbol":"AAPL","price":5.0}',
    ]


def test_a_shaped_json_result_says_what_was_done_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, err = call(capsys, tmp_path, "latest_per=symbol")
    batch = json.loads(out)
    assert [event["id"] for event in batch["events"]] == ["4", "5"] and batch["folded"] == 5
    assert "mcp-sse-bridge: latest per symbol: 2 of 5 events" in err.splitlines()


def test_a_plain_call_prints_json_and_no_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, err = call(capsys, tmp_path)
    assert json.loads(out)["count"] == 5
    assert err == ""
