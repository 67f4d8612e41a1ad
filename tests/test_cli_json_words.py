"""JSON values in command-line words: `--subscribe 'prices event_types=["price"]'` keeps the
quotes and brackets of a JSON value whole, and a value that looks like JSON but is not (the
shell ate its quotes) is one usage error saying how to quote it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters

from mcp_sse_bridge.cli import main
from mcp_sse_bridge.cli.terminal import UsageError, parse_arguments, split_words
from tests.feeds import SECRET, manual_doc, ok
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

ROOT = Path(__file__).parent.parent
ENV = {"PYTHONPATH": str(ROOT), "API_KEY": SECRET, "PATH": os.environ.get("PATH", "")}

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_a_json_list_or_object_value_is_one_word_with_its_quotes() -> None:
    spec = 'prices event_types=["price", "trade"] match={"symbol": "AAPL", "x]": [1, {"y": "}"}]}'
    assert split_words(spec + " depth=3") == [
        "prices",
        'event_types=["price", "trade"]',
        'match={"symbol": "AAPL", "x]": [1, {"y": "}"}]}',
        "depth=3",
    ]
    assert split_words('m={"a\\"}": 1}') == ['m={"a\\"}": 1}']  # an escaped quote in a string


def test_other_words_follow_the_shells_rules() -> None:
    assert split_words("ticks  name='a b' \"c d\" e=[1") == ["ticks", "name=a b", "c d", "e=[1"]
    assert split_words("k=[1,2]x") == ["k=[1,2]x"]  # not a JSON value alone: shell rules
    assert split_words("k='[\"a\"]'") == ['k=["a"]']  # quoted as for a shell: works too
    assert split_words("   ") == []
    with pytest.raises(ValueError, match="No closing quotation"):
        split_words("ticks 'open")


def test_a_value_that_looks_like_json_but_is_not_says_how_to_quote_it() -> None:
    with pytest.raises(UsageError) as caught:
        parse_arguments(["event_types=[price]"], {"properties": {}})
    message = str(caught.value)
    assert "'event_types=[price]' is not valid JSON" in message
    assert """'event_types=["a", "b"]'""" in message
    with pytest.raises(UsageError, match=r"""'match=\{"symbol": "AAPL"\}'"""):
        parse_arguments(["match={symbol:AAPL}"], {"properties": {}})
    assert parse_arguments(["name=[x"], {"properties": {"name": {"type": "string"}}}) == {
        "name": "[x"  # a string input takes the text as typed
    }


def test_a_bad_json_word_in_subscribe_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manual = tmp_path / "feed.json"
    manual.write_text(json.dumps(manual_doc("http://127.0.0.1:9")))
    code = main(["--manual", str(manual), "--subscribe", "ticks event_types=[tick]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not valid JSON" in err[0], err


async def mixed(request: Request, response: Response) -> None:
    """Two event types for two symbols, then the stream stays open."""
    await response.head()
    for number, (kind, symbol) in enumerate(
        [("tick", "AAPL"), ("other", "AAPL"), ("tick", "MSFT"), ("tick", "AAPL")], start=1
    ):
        data = {"symbol": symbol, "n": number}
        await response.send(sse_lines({"event": kind, "id": str(number), "data": data}))
    await wait_disconnect(response)


@pytest.mark.anyio
async def test_a_pinned_subscription_takes_event_types_and_match_as_documented(
    tmp_path: Path,
) -> None:
    async with serve(mixed) as upstream:
        manual = tmp_path / "feed.json"
        manual.write_text(json.dumps(manual_doc(upstream.url)))
        pinned = 'ticks event_types=["tick"] match={"symbol": "AAPL"} buffer_events=10'
        args = ["-m", "mcp_sse_bridge", "--manual", str(manual), "--subscribe", pinned]
        params = StdioServerParameters(command=sys.executable, args=args, env=ENV)
        seen: list[int] = []
        with anyio.fail_after(20):
            async with mcp.Client(params) as client:
                [sub] = ok(await client.call_tool("list_subscriptions", {}))["subscriptions"]
                read: dict[str, object] = {"subscription": sub["subscription"], "wait_seconds": 5}
                for _ in range(4):
                    result = ok(await client.call_tool("read_subscription", read))
                    seen += [event["data"]["n"] for event in result["events"]]
                    if len(seen) >= 2:
                        break
                    read["cursor"] = result["cursor"]
    assert sub["event_types"] == ["tick"] and sub["match"] == {"symbol": "AAPL"}
    assert sub["buffer_events"] == 10
    assert seen == [1, 4]
