"""`probe --write`: the manual it writes passes `check`, its tool works through a real MCP client,
and no secret given on the command line is ever written or printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.cli import main
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from tests import probe_feeds
from tests.sse_server import Request, Response, serve_in_thread

pytestmark = pytest.mark.usefixtures("restore_logging")

KEY = "sk-live-7f3a9c2e41d0"
TOKEN = "tok-q-5be1d8a7"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def guarded(seen: list[Request]) -> Any:
    """The numeric feed with replay, only for callers with the key and the token; it echoes
    the key back in its first event, as careless APIs do."""
    feed = probe_feeds.numeric(history=True, echo="x-api-key")

    async def handler(request: Request, response: Response) -> None:
        seen.append(request)
        if request.headers.get("x-api-key") != KEY or ("token", TOKEN) not in request.query:
            await response.simple(401, "bad key")
            return
        await feed(request, response)

    return handler


def test_the_written_manual_passes_check_and_its_tool_works_over_mcp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Request] = []
    target = tmp_path / "prices.json"
    with serve_in_thread(guarded(seen)) as upstream:
        url = f"{upstream.url}/v2/prices/{{symbol}}?token={TOKEN}&depth=3"
        code, out, err = run(
            capsys,
            "probe",
            url,
            "symbol=AAPL",
            "--header",
            f"X-Api-Key: {KEY}",
            "--events",
            "12",
            "--seconds",
            "5",
            "--write",
            str(target),
        )
        assert code == 0, err
        for text in (out, err, target.read_text()):
            assert KEY not in text and TOKEN not in text
        assert '"caller": "***"' in out  # the echoed key is masked in the printed sample
        assert "set X_API_KEY to the value of the header 'X-Api-Key'" in err
        assert "set TOKEN to the value of the query parameter 'token'" in err

        manual = json.loads(target.read_text())
        (tool,) = manual["tools"]
        template = tool["tool_call_template"]
        assert tool["name"] == "prices"
        assert template["url"] == f"{upstream.url}/v2/prices/{{symbol}}"
        assert template["headers"] == {"X-Api-Key": "${X_API_KEY}"}
        assert template["auth"] == {
            "auth_type": "api_key",
            "api_key": "${TOKEN}",
            "var_name": "token",
            "location": "query",
        }
        assert template["reconnect"] is True  # the server resumed after Last-Event-ID
        assert tool["inputs"]["required"] == ["symbol", "depth"]
        assert tool["inputs"]["properties"]["depth"]["type"] == "integer"
        assert "price (fields: symbol (string), price (number)" in tool["description"]
        assert "pass last_event_id" in tool["description"]

        secrets = ["--var", f"X_API_KEY={KEY}", "--var", f"TOKEN={TOKEN}"]
        code, out, err = run(capsys, "check", "--manual", str(target), *secrets)
        assert (code, out.strip()) == (0, "ok: 1 tool(s) ready: prices"), err
        code, _, err = run(capsys, "check", "--manual", str(target))
        assert code == 2 and "missing variable X_API_KEY" in err

        batches = [anyio.run(call_over_mcp, str(target), mode) for mode in ("legacy", "auto")]
    for batch in batches:
        assert [e["id"] for e in batch["events"]] == ["5", "6", "7"]
        assert batch["events"][0]["data"]["symbol"] == "NVDA"
    assert seen[-1].path == "/v2/prices/AAPL"
    assert seen[-1].headers["last-event-id"] == "4"


async def call_over_mcp(path: str, mode: str) -> dict[str, Any]:
    manual = load_manual(path)
    variables = Variables({"X_API_KEY": KEY, "TOKEN": TOKEN}, environ={})
    server = build_server(Bridge([manual], variables=variables))
    async with mcp.Client(server, mode=mode) as client:
        arguments = {"symbol": "AAPL", "depth": 3, "max_events": 3, "last_event_id": "4"}
        result = await client.call_tool("prices", arguments)
    assert not result.is_error, result
    return result.structured_content


def test_bearer_env_reads_the_secret_and_writes_only_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Request] = []
    feed = probe_feeds.uuids()

    async def handler(request: Request, response: Response) -> None:
        seen.append(request)
        await feed(request, response)

    monkeypatch.setenv("FEED_TOKEN", KEY)
    target = tmp_path / "feed.json"
    with serve_in_thread(handler) as upstream:
        code, out, err = run(
            capsys,
            "probe",
            f"{upstream.url}/events",
            "--bearer-env",
            "FEED_TOKEN",
            "--events",
            "5",
            "-o",
            str(target),
            "--json",
        )
    assert code == 0, err
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    report = json.loads(out)
    assert report["id_style"] == "uuid" and report["resume"] == "ignored"
    template = json.loads(target.read_text())["tools"][0]["tool_call_template"]
    assert template["auth"]["api_key"] == "Bearer ${FEED_TOKEN}"
    assert KEY not in target.read_text() + out + err


def test_a_feed_that_replays_gets_reconnect_false(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "replay.json"
    with serve_in_thread(probe_feeds.numeric(history=False)) as upstream:
        code, out, err = run(
            capsys, "probe", f"{upstream.url}/feed", "--events", "6", "-o", str(target)
        )
    assert code == 0, err
    assert "replayed: the server replayed from the start" in out
    assert json.loads(target.read_text())["tools"][0]["tool_call_template"]["reconnect"] is False


def test_a_probe_that_cannot_connect_is_one_redacted_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve_in_thread(guarded([])) as upstream:
        url = f"{upstream.url}/v2/prices?token=wrong-token-123"
        code, out, err = run(capsys, "probe", url, "--header", f"Authorization: Bearer {KEY}")
    assert code == 1 and out == ""
    assert err.startswith("mcp-sse-bridge: error: The upstream refused the credentials: HTTP 401")
    assert len(err.strip().splitlines()) == 1
    assert KEY not in err and "wrong-token-123" not in err


def test_probe_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in [
        (["probe", "https://x/{a}"], "placeholder {a} has no value"),
        (["probe", "https://x/", "--seconds", "0"], "expected a positive"),
        (["probe", "https://x/", "--events", "100000"], "at most"),
        (["probe", "https://x/", "nopair"], "is not key=value"),
        (["probe", "http://example.com/s"], "Refusing plain-http URL"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, err
