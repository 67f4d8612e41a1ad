"""The command line as the README documents it: help pages, exit codes with one line on stderr
and never a traceback, `call`'s key=value arguments and bound flags, the Troubleshooting
messages quoted verbatim, an interrupt, and a reader that stops early.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.acceptance.bridges import CLI, manual_text, tool, write_manual
from tests.acceptance.cli import cli_env, run_cli, run_main
from tests.acceptance.credentials import AUTH
from tests.acceptance.network import closed_port
from tests.acceptance.upstreams import one_event, ticks
from tests.sse_server import Request, Response, serve_in_thread, sse_lines

ROOT = Path(__file__).parent.parent


# -- help pages and exit codes ---------------------------------------------------------------------


HELP_PAGES = [
    pytest.param([], ["serve", "list", "check", "call", "demo"], id="top"),
    pytest.param(["serve"], ["--manual", "--transport", "--port", "--auth-token"], id="serve"),
    pytest.param(["list"], ["--manual", "--env-file", "--var"], id="list"),
    pytest.param(["check"], ["--manual", "--allow-insecure-http"], id="check"),
    pytest.param(["call"], ["key=value", "--manual", "--max-events"], id="call"),
    pytest.param(["demo"], [], id="demo"),
]


@pytest.mark.parametrize(("command", "words"), HELP_PAGES)
def test_help_pages_exit_0_and_print_on_stdout(command: list[str], words: list[str]) -> None:
    done = run_cli(*command, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: mcp-sse-bridge")
    assert all(word in done.stdout for word in words), done.stdout


@pytest.fixture
def cli_manual(tmp_path: Path) -> Iterator[Path]:
    """A manual with a working tool, a 404, a refused port and a missing variable."""

    async def feed(request: Request, response: Response) -> None:
        if request.path == "/404":
            await response.simple(404, "gone")
            return
        await response.send(sse_lines(*ticks(3)))
        await response.finish()

    with serve_in_thread(feed) as server:
        manual = write_manual(
            tmp_path / "cli.json",
            tool("ok", f"{server.url}/s"),
            tool("gone", f"{server.url}/404"),
            tool("refused", f"http://127.0.0.1:{closed_port()}/s"),
            tool("keyed", f"{server.url}/s", auth={**AUTH, "api_key": "${CLI_ACCEPTANCE_KEY}"}),
        )
        yield manual


CLI_CASES = [
    # argv after the manual, exit code, stdout is the batch, words stderr (or stdout) must hold
    pytest.param(["call", "ok", "max_events=2"], 0, True, [], id="call-ok"),
    pytest.param(["call", "gone"], 1, False, ["404"], id="call-404"),
    pytest.param(["call", "refused"], 1, False, ["connect"], id="call-refused"),
    pytest.param(["call", "ok", "max_events=0"], 2, False, ["max_events"], id="call-bad-bound"),
    pytest.param(["call", "nothing"], 2, False, ["nothing"], id="call-unknown-tool"),
    pytest.param(["call", "keyed"], 2, False, ["CLI_ACCEPTANCE_KEY"], id="call-missing-var"),
    pytest.param(["check"], 2, False, ["CLI_ACCEPTANCE_KEY"], id="check-missing-var"),
    pytest.param(["list"], 0, False, ["MISSING", "CLI_ACCEPTANCE_KEY"], id="list"),
]


@pytest.mark.parametrize(("argv", "code", "batch", "words"), CLI_CASES)
def test_exit_codes_are_as_the_readme_states(
    cli_manual: Path, argv: list[str], code: int, batch: bool, words: list[str]
) -> None:
    """README: 0 success, 1 the upstream failed during `call`, 2 a usage or configuration
    error, always one line on stderr, never a traceback; `call` prints only the batch."""
    done = run_cli(*argv, "--manual", str(cli_manual))
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    said = done.stderr if code else done.stdout
    assert all(word.lower() in said.lower() for word in words), said
    if code:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""
    if batch:
        assert json.loads(done.stdout)["count"] == 2


# -- call's arguments and the bound flags ----------------------------------------------------------


def test_call_keeps_raw_text_for_a_string_typed_argument_with_a_type_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """README: "an argument the schema types as `string` always keeps the raw text" - also when
    the schema says `"type": ["string", "null"]`, the usual shape of an optional string."""
    with serve_in_thread(one_event) as server:
        inputs = {"type": "object", "properties": {"job_id": {"type": ["string", "null"]}}}
        manual = tmp_path / "jobs.json"
        manual.write_text(manual_text(tool("job", f"{server.url}/jobs", inputs)))
        code, out, err = run_main(capsys, "call", "job", "job_id=4711", "--manual", str(manual))
    assert code == 0, err
    assert json.loads(out)["events"][0]["data"]["target"] == "/jobs?job_id=4711"


def test_call_accepts_boolean_property_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """`"properties": {"anything": true}` is valid JSON Schema (and `check` accepts it)."""
    with serve_in_thread(one_event) as server:
        inputs = {"type": "object", "properties": {"anything": True}}
        manual = tmp_path / "any.json"
        manual.write_text(manual_text(tool("t", f"{server.url}/s", inputs)))
        code, out, err = run_main(capsys, "call", "t", "anything=1", "--manual", str(manual))
    assert code == 0, err
    assert json.loads(out)["events"][0]["data"]["target"] == "/s?anything=1"


@pytest.mark.parametrize(
    "flag", ["--max-seconds", "--max-seconds-limit", "--idle-seconds", "--max-bytes"]
)
def test_a_not_a_number_bound_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None, flag: str
) -> None:
    """README: a bad flag is exit 2 and one line; `nan` passes `value <= 0` and later crashes
    `call` with a traceback (`deadline must not be NaN`)."""
    manual = tmp_path / "m.json"
    manual.write_text(manual_text(tool("t", "http://127.0.0.1:9/s")))
    code, _, err = run_main(capsys, "check", "--manual", str(manual), flag, "nan")
    assert code == 2, f"{flag} nan accepted"
    assert len(err.strip().splitlines()) == 1 and flag in err


@pytest.mark.parametrize(
    "argv", [["--max-events-limit", "5"], ["--max-seconds-limit", "10"]], ids=["events", "seconds"]
)
def test_a_ceiling_below_the_builtin_default_works_on_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None, argv: list[str]
) -> None:
    """An operator lowering a ceiling (README: --max-events-limit, --max-seconds-limit) should
    not also have to lower a default they never set: today it is `--max-events 10 is above its
    ceiling` for a flag that was not given."""
    manual = tmp_path / "m.json"
    manual.write_text(manual_text(tool("t", "http://127.0.0.1:9/s")))
    code, _, err = run_main(capsys, "check", "--manual", str(manual), *argv)
    assert code == 0, err


# -- the README's Troubleshooting messages ---------------------------------------------------------


def readme_troubleshooting() -> dict[str, str]:
    """The error messages the README's Troubleshooting section quotes, by topic."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"^- \*\*`(.+?)`\*\*", section, re.M)
    topics = {"variable": "missing variable", "401": "401", "http": "http://"}
    return {topic: next(q for q in quoted if key in q) for topic, key in topics.items()}


def test_the_readme_troubleshooting_messages_are_the_real_ones(tmp_path: Path) -> None:
    """A user pastes the error into a search of the README: it must be found there."""

    async def refuse(request: Request, response: Response) -> None:
        await response.simple(401, "no")

    quoted = readme_troubleshooting()
    with serve_in_thread(refuse) as server:
        stocks = tmp_path / "stocks.json"
        auth = {"auth_type": "api_key", "api_key": "${STOCK_API_KEY}"}
        stocks.write_text(manual_text(tool("prices", f"{server.url}/s", auth=auth)))
        remote = tmp_path / "remote.json"
        remote.write_text(manual_text(tool("prices", "http://example.com/s")))
        env = {k: v for k, v in cli_env().items() if "STOCK_API_KEY" not in k}
        seen = {
            "variable": run_cli("check", "--manual", str(stocks), env=env).stderr,
            "401": run_cli(
                "call", "prices", "--manual", str(stocks), "--var", "STOCK_API_KEY=k3y-k3y"
            ).stderr,
            "http": run_cli("check", "--manual", str(remote)).stderr,
        }
    missing = {
        topic: (quoted[topic], seen[topic].strip())
        for topic in quoted
        if quoted[topic].lower() not in seen[topic].lower()
    }
    assert not missing, json.dumps(missing, indent=1, ensure_ascii=False)


# -- an interrupt, and a reader that stops early ---------------------------------------------------


def test_call_interrupted_exits_130_with_one_line(tmp_path: Path) -> None:
    """README exit codes: 130 interrupted, one line on stderr, no traceback."""
    connected = threading.Event()

    async def quiet(request: Request, response: Response) -> None:
        await response.send(": waiting\n\n")
        connected.set()
        await anyio.sleep(30)

    with serve_in_thread(quiet) as server:
        manual = tmp_path / "m.json"
        manual.write_text(manual_text(tool("t", f"{server.url}/s")))
        process = subprocess.Popen(
            [*CLI, "call", "t", "max_seconds=30", "--manual", str(manual)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert connected.wait(timeout=30), "the call never reached the upstream"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, err
    assert out == "" and err.strip() == "mcp-sse-bridge: error: interrupted"


def test_call_piped_into_a_reader_that_stops_early_prints_no_traceback(tmp_path: Path) -> None:
    """`mcp-sse-bridge call ... | head` (or a `jq` that fails): the reader goes away while the
    200 KB batch is being written. README: never a traceback; at most one line on stderr."""

    async def big(request: Request, response: Response) -> None:
        for n in range(80):
            await response.send(sse_lines({"id": str(n), "data": {"n": n, "pad": "x" * 2500}}))
        await response.finish()

    with serve_in_thread(big) as server:
        manual = write_manual(tmp_path / "big.json", tool("t", f"{server.url}/s"))
        process = subprocess.Popen(
            [*CLI, "call", "t", "max_events=80", "--manual", str(manual)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            assert process.stdout.read(10)  # the batch has started; the reader stops here
            process.stdout.close()
            errors = process.stderr.read().decode(errors="replace")
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "Traceback" not in errors, errors
    assert len(errors.strip().splitlines()) <= 1, errors
