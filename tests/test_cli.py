"""The command line: every subcommand, and one clear line (no traceback) for every mistake."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from mcp_sse_bridge.cli import main
from mcp_sse_bridge.cli.terminal import LiveLine, parse_arguments, terminal_json
from tests.sse_server import Request, Response, serve_in_thread, sse_lines, wait_disconnect

ROOT = Path(__file__).parent.parent
DEMO = str(ROOT / "manuals" / "demo.json")
DEMO_VARS = ["--var", "DEMO_BASE_URL=http://127.0.0.1:9", "--var", "DEMO_API_KEY=k3y-k3y"]
SECRET = "sk-cli-0123456789"
UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""What must not reach a terminal from a manual or an upstream: C0/C1 controls (but newline)."""


pytestmark = pytest.mark.usefixtures("restore_logging")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mcp-sse-bridge: error: ")
    return lines[0]


def write_manual(tmp_path: Path, url: str, *, event_type: str | None = None) -> str:
    template: dict[str, Any] = {
        "call_template_type": "sse",
        "url": f"{url}/ticks",
        "auth": {"auth_type": "api_key", "api_key": "${API_KEY}"},
        "event_type": event_type,
    }
    doc = {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": "ticks",
                "description": "Ticks.",
                "inputs": {
                    "type": "object",
                    "properties": {"symbol": {"type": "string"}, "depth": {"type": "integer"}},
                    "required": ["symbol"],
                },
                "tool_call_template": template,
            }
        ],
    }
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(doc))
    return str(path)


# -- list and check ---------------------------------------------------------------------------


def test_list_shows_tools_arguments_and_missing_variables(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "list", "--manual", DEMO, "--var", "DEMO_BASE_URL=http://x")
    assert code == 0, err
    assert out.splitlines()[0] == "stock_ticker"
    assert "  arguments: symbols: string\n" in out
    assert "  arguments: job_id: string (required)\n" in out
    assert out.endswith(
        "\nevery tool also takes: max_events, max_seconds, last_event_id, until_event, "
        "event_types, match, fields, latest_per, summary, format\n"
    )
    assert (
        "  variables: DEMO_BASE_URL, DEMO_API_KEY "
        "(MISSING: set one of demo_DEMO_API_KEY, DEMO_API_KEY)"
    ) in out


def test_check_passes_when_every_tool_is_ready(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "check", "--manual", DEMO, *DEMO_VARS)
    assert (code, err) == (0, "")
    assert out == "ok: 3 tool(s) ready: stock_ticker, log_tail, job_progress\n"


def test_check_names_file_tool_and_variable_when_one_is_missing(
    capsys: pytest.CaptureFixture,
) -> None:
    local = "DEMO_BASE_URL=http://127.0.0.1:9"
    code, out, err = run(capsys, "check", "--manual", DEMO, "--var", local)
    assert code == 2
    assert out == ""
    assert err == (
        f"mcp-sse-bridge: error: {DEMO}: tool 'stock_ticker': missing variable DEMO_API_KEY: "
        "set one of demo_DEMO_API_KEY, DEMO_API_KEY\n"
    )


def test_check_reads_env_files_and_the_environment(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# demo\nexport DEMO_BASE_URL=http://127.0.0.1:9\n")
    monkeypatch.setenv("demo_DEMO_API_KEY", "k3y-k3y")
    code, _, err = run(capsys, "check", "--manual", DEMO, "--env-file", str(env_file))
    assert (code, err) == (0, "")


def test_check_refuses_plain_http_to_a_remote_host_unless_allowed(
    capsys: pytest.CaptureFixture,
) -> None:
    remote = ["--var", "DEMO_BASE_URL=http://feed.example", "--var", "DEMO_API_KEY=k3y-k3y"]
    code, _, err = run(capsys, "check", "--manual", f"demo={DEMO}", *remote)
    assert code == 2
    assert "tool 'log_tail'" in err and "--allow-insecure-http" in err
    code, _, err = run(capsys, "check", "--manual", DEMO, *remote, "--allow-insecure-http")
    assert (code, err) == (0, "")


# -- one line for every mistake ---------------------------------------------------------------


BAD_COMMAND_LINES = [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["list"], "no manual given"),
    (["check", "--manual", "missing.json"], "missing.json: file not found"),
    (["--manual", DEMO, "--max-events", "0"], "--max-events: expected a positive integer"),
    (["--manual", DEMO, "--max-seconds", "soon"], "--max-seconds: expected a positive finite"),
    (["--manual", DEMO, "--max-seconds", "nan"], "--max-seconds: expected a positive finite"),
    (["--manual", DEMO, "--max-seconds-limit", "inf"], "--max-seconds-limit: expected a positive"),
    (["--manual", DEMO, "--idle-seconds", "1e400"], "--idle-seconds: expected a positive finite"),
    (["--manual", DEMO, "--max-bytes", "nan"], "--max-bytes: expected a positive integer"),
    (["--manual", DEMO, "--max-events", "50", "--max-events-limit", "20"], "above its ceiling"),
    (["--manual", DEMO, "--transport", "carrier-pigeon"], "invalid choice: 'carrier-pigeon'"),
    (["--manual", DEMO, "--transport", "http", "--port", "http"], "expected a port number"),
    (["check", "--manual", DEMO, "--var", "NOVALUE"], "--var: expected NAME=VALUE"),
    (["call", "--manual", DEMO], "the following arguments are required: tool"),
    (["call", "t", "--manual", DEMO, "a=1", "--bogus"], "unrecognized arguments: --bogus"),
    (["check", "--manual", DEMO, "a=1"], "unrecognized arguments: a=1"),
]


@pytest.mark.parametrize(("argv", "says"), BAD_COMMAND_LINES)
def test_every_usage_error_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture, argv: list[str], says: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert says in one_error_line(err)


RESERVED = {
    "name": "t",
    "inputs": {"type": "object", "properties": {"max_events": {"type": "integer"}}},
    "tool_call_template": {"call_template_type": "sse", "url": "https://feed.example/s"},
}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"tools": [}', "broken.json: invalid JSON at line 1"),
        (
            json.dumps({"tools": [RESERVED]}),
            "broken.json: tools[0].inputs.properties.max_events: 'max_events' is reserved",
        ),
    ],
)
def test_a_broken_manual_names_the_file_and_the_place(
    capsys: pytest.CaptureFixture, tmp_path: Path, text: str, says: str
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(text)
    code, _, err = run(capsys, "list", "--manual", str(broken))
    assert code == 2
    assert says in one_error_line(err)


def test_a_busy_port_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        argv = ["--manual", DEMO, *DEMO_VARS, "--transport", "http", "--port", port]
        code, _, err = run(capsys, *argv)
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(err)


# -- call -------------------------------------------------------------------------------------


async def ticks_then_hold(request: Request, response: Response) -> None:
    if request.headers.get("x-api-key") != SECRET:
        await response.simple(401, f'{{"error": "bad key {request.headers.get("x-api-key")}"}}')
        return
    events = [{"event": "tick", "id": str(i), "data": {"n": i}} for i in range(5)]
    await response.send(sse_lines(*events))
    await response.finish()


def test_call_prints_the_batch_as_json(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    with serve_in_thread(ticks_then_hold) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        argv = ["call", "ticks", "symbol=AAPL", "depth=2", "max_events=3", "match={}"]
        code, out, err = run(capsys, *argv, "--manual", manual, "--var", f"API_KEY={SECRET}")
    assert (code, err) == (0, "")
    batch = json.loads(out)
    assert [event["data"] for event in batch["events"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert batch["stop_reason"] == "max_events"
    assert upstream.requests[0].query == [("symbol", "AAPL"), ("depth", "2")]


def test_call_upstream_failure_is_one_redacted_line_and_exit_1(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    wrong = "sk-wrong-0123456789"
    with serve_in_thread(ticks_then_hold) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        code, out, err = run(
            capsys, "call", "ticks", "symbol=X", "--manual", manual, "--var", f"API_KEY={wrong}"
        )
    assert code == 1
    assert out == ""
    line = one_error_line(err)
    assert "401" in line
    assert wrong not in line


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["nope"], "unknown tool 'nope'; the manuals define: ticks"),
        (["ticks", "symbol"], "argument 'symbol' is not key=value"),
        (["ticks", "symbol=X", "depth=deep"], "argument 'depth' is invalid"),
        (["ticks"], "missing required argument 'symbol'"),
        (["ticks", "symbol=X", "max_events=0"], "max_events"),
    ],
)
def test_call_argument_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture, tmp_path: Path, words: list[str], says: str
) -> None:
    with serve_in_thread(ticks_then_hold) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        code, _, err = run(capsys, "call", *words, "--manual", manual, "--var", "API_KEY=k3y-k3y")
        assert upstream.requests == []
    assert code == 2
    assert says in one_error_line(err)


async def big_batch(request: Request, response: Response) -> None:
    for n in range(80):  # 200 KB of JSON: more than a pipe buffer holds
        await response.send(sse_lines({"id": str(n), "data": {"n": n, "pad": "x" * 2500}}))
    await response.finish()


@pytest.mark.parametrize("events", [2, 80], ids=["small-batch", "big-batch"])
def test_call_into_a_reader_that_is_gone_ends_quietly(tmp_path: Path, events: int) -> None:
    """`call ... | head`: the reader has closed the pipe. A big batch breaks the pipe while it is
    written, a small one in the final flush; either way no traceback and exit code 0."""
    with serve_in_thread(big_batch) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        read_end, write_end = os.pipe()
        os.close(read_end)
        argv = ["call", "ticks", "symbol=X", f"max_events={events}", "--manual", manual]
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mcp_sse_bridge", *argv, "--var", "API_KEY=k3y-k3y"],
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=30,
            )
        finally:
            os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
    assert len(upstream.requests) == 1  # the call did run


def test_call_arguments_are_json_when_they_parse() -> None:
    schema = {"properties": {"symbol": {"type": "string"}, "n": {"type": "integer"}}}
    words = ["symbol=4711", "n=5", "flag=true", 'match={"a": [1]}', "word=AAPL", "eq=a=b", "e="]
    assert parse_arguments(words, schema) == {
        "symbol": "4711",  # a string input keeps the raw text
        "n": 5,
        "flag": True,
        "match": {"a": [1]},
        "word": "AAPL",
        "eq": "a=b",
        "e": "",
    }


def test_call_arguments_keep_raw_text_wherever_the_schema_allows_a_string() -> None:
    """A type list holding "string" keeps the text; boolean property schemas are valid JSON
    Schema that say nothing about the type, so the value is JSON when it parses."""
    schema = {
        "properties": {
            "job_id": {"type": ["string", "null"]},
            "n": {"type": ["integer", "null"]},
            "anything": True,
            "nothing": False,
        }
    }
    words = ["job_id=4711", "n=5", "anything=1", "nothing=[1]"]
    assert parse_arguments(words, schema) == {
        "job_id": "4711",
        "n": 5,
        "anything": 1,
        "nothing": [1],
    }
    assert parse_arguments(["x=1"], {"type": "object"}) == {"x": 1}


def test_call_takes_key_value_words_before_and_after_options(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    with serve_in_thread(ticks_then_hold) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        argv = ["call", "ticks", "symbol=AAPL", "--manual", manual, "max_events=2", "depth=3"]
        code, out, err = run(capsys, *argv, "--var", f"API_KEY={SECRET}", "match={}")
    assert (code, err) == (0, "")
    assert json.loads(out)["count"] == 2
    assert upstream.requests[0].query == [("symbol", "AAPL"), ("depth", "3")]


async def one_tick_then_hold(request: Request, response: Response) -> None:
    await response.send(sse_lines({"event": "tick", "id": "0", "data": {"n": 0}}))
    await wait_disconnect(response)


@pytest.mark.parametrize(
    ("ceiling", "handler", "stop_reason"),
    [
        (["--max-events-limit", "2"], ticks_then_hold, "max_events"),  # default 10 -> 2
        (["--max-seconds-limit", "0.5"], one_tick_then_hold, "max_seconds"),  # 15 s -> 0.5 s
    ],
)
def test_a_ceiling_below_the_builtin_default_lowers_it(
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
    ceiling: list[str],
    handler: Any,
    stop_reason: str,
) -> None:
    with serve_in_thread(handler) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        argv = ["call", "ticks", "symbol=X", "--manual", manual, "--var", f"API_KEY={SECRET}"]
        code, out, err = run(capsys, *argv, *ceiling)
    assert (code, err) == (0, "")
    batch = json.loads(out)
    assert batch["stop_reason"] == stop_reason
    assert batch["count"] <= 2 and batch["elapsed_s"] < 5


# -- nothing from a manual or an upstream drives the terminal ---------------------------------


def test_list_and_logs_strip_control_characters_from_manuals(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\x00"
    doc = {
        "tools": [
            {
                "name": "t",
                "description": f"Ticks {evil}here.",
                "inputs": {"type": "object", "properties": {f"arg{evil}": {"type": "string"}}},
                "tool_call_template": {
                    "call_template_type": "sse",
                    "url": "https://feed.example/s",
                    f"unknown{evil}": 1,  # a warning quoting the key, on stderr
                },
            }
        ]
    }
    manual = tmp_path / "evil.json"
    manual.write_text(json.dumps(doc))
    code, out, err = run(capsys, "list", "--manual", str(manual))
    assert code == 0, err
    assert "unknown" in err and "]0;pwned" in out
    assert not UNPRINTABLE.search(out) and not UNPRINTABLE.search(err), (out, err)


def test_call_prints_c1_controls_and_lone_surrogates_as_json_escapes() -> None:
    value = {"data": "\x9b31m red \ud800 é \x1b"}
    text = terminal_json(value)
    assert not UNPRINTABLE.search(text.replace("\n", ""))
    assert "é" in text and "\\u009b" in text and "\\ud800" in text
    assert json.loads(text) == value


async def hostile_events(request: Request, response: Response) -> None:
    await response.send('id: 1\ndata: {"t": "\x9b31m\\u001b[2J"}\n\nid: 2\ndata: "\\ud800"\n\n')
    await response.finish()


def test_call_output_from_a_hostile_upstream_is_safe_json(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    with serve_in_thread(hostile_events) as upstream:
        manual = write_manual(tmp_path, upstream.url)
        argv = ["call", "ticks", "symbol=X", "--manual", manual, "--var", f"API_KEY={SECRET}"]
        code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert not UNPRINTABLE.search(out.replace("\n", ""))
    assert json.loads(out)["events"][0]["data"] == {"t": "\x9b31m\x1b[2J"}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_the_live_line_rewrites_itself_on_a_terminal_only() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        line = LiveLine(stream)
        await line.show(1, 10, 'tick #1: {"n":1}')
        await line.show(1.5, 10, "waiting for events (5 s)")
        await line.show(2, 10, "evil \x1b]0;pwned\x07\x9b31m\nline\ud800")
        line.clear()
    assert terminal.getvalue() == (
        '\r\x1b[2K[1/10] tick #1: {"n":1}\r\x1b[2K[1/10] waiting for events (5 s)'
        "\r\x1b[2K[2/10] evil ]0;pwned 31m line?\r\x1b[2K"
    )
    assert pipe.getvalue() == ""


# -- the installed command --------------------------------------------------------------------


def bridge(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mcp_sse_bridge", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, **kwargs)


def test_call_help_is_for_users_not_the_modules_notes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["call", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "print its batch of events as JSON" in out
    assert "examples:" in out and "exit codes:" in out
    assert "max_events, max_seconds, last_event_id" in out
    for internal in ("MCP SDK", "import", "Every failure is one line"):
        assert internal not in out


def test_python_dash_m_is_the_console_script() -> None:
    (script,) = entry_points(group="console_scripts", name="mcp-sse-bridge")
    assert script.value == "mcp_sse_bridge.cli:main"
    done = bridge("check", "--manual", DEMO)
    assert done.returncode == 2
    assert "missing variable DEMO_BASE_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_warns_about_unready_tools_and_stops_at_end_of_input() -> None:
    env = {k: v for k, v in os.environ.items() if "DEMO_" not in k}
    done = bridge("--manual", DEMO, stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "WARNING: " in done.stderr
    assert "missing variable DEMO_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr
