"""Acceptance tests: the bridge as a black box, against the spec, hostile input and its README.

Written by the acceptance tester, not by the authors of the modules: every case comes from a
source outside the code (the WHATWG "Server-sent events" text and the web-platform-tests
`eventsource/` corpus, the README, DESIGN.md, issues 2-4), and drives only public entry points:
`EventStreamParser`, `parse_manual`, `Bridge`, the MCP server through a real `mcp.Client`, and
the command line (`cli.main` in-process, or `python -m mcp_sse_bridge` as a subprocess when logs
or signals are what is tested). Upstreams are real loopback servers (`tests/sse_server.py`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import mcp
import mcp_types as types
import pytest
from jsonschema import Draft202012Validator

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.cli.main import main
from mcp_sse_bridge.errors import BridgeError, ManualError
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, Manual, parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from mcp_sse_bridge.upstream.sse import EventStreamParser
from tests.sse_server import Request, Response, serve, serve_in_thread, sse_lines

ROOT = Path(__file__).parent.parent
MODES = ["legacy", "auto"]
INTERNAL_ERROR = "Internal error"
CLI = [sys.executable, "-m", "mcp_sse_bridge"]

# -- helpers ----------------------------------------------------------------------------------


def manual_text(*tools: dict[str, Any]) -> str:
    return json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": list(tools)})


def tool(name: str, url: str, inputs: dict[str, Any] | None = None, **template: Any) -> dict:
    return {
        "name": name,
        "description": f"acceptance tool {name}",
        "inputs": inputs or {"type": "object", "properties": {}},
        "tool_call_template": {"call_template_type": "sse", "url": url, **template},
    }


def load(*tools: dict[str, Any], name: str = "acc") -> Manual:
    return parse_manual(manual_text(*tools), name=name, source=f"{name}.json", trusted=True)


def bridge_of(*tools: dict[str, Any], variables: dict[str, str] | None = None, **limits: Any):
    return Bridge(
        [load(*tools)],
        variables=Variables(variables or {}, environ={}),
        limits=Limits(**limits),
    )


async def mcp_call(
    bridge: Bridge, name: str, arguments: dict[str, Any], *, mode: str = "legacy"
) -> types.CallToolResult:
    async with mcp.Client(build_server(bridge), mode=mode) as client:
        await client.list_tools()  # the client learns the output schemas, as hosts do
        with anyio.fail_after(20):
            return await client.call_tool(name, arguments)


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 defines it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
    )


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`cli.main` in-process; an exception escaping it is exit code -1 (README: no tracebacks)."""
    try:
        code = main(list(argv))
    except Exception as exc:
        out, err = capsys.readouterr()
        return -1, out, f"{err}\n`mcp-sse-bridge {' '.join(argv)}` raised {exc!r}"
    out, err = capsys.readouterr()
    return code, out, err


async def one_event(request: Request, response: Response) -> None:
    """Echo what the upstream received, as one event, then end the stream."""
    echo = {"target": request.target, "body": request.body.decode("utf-8", "replace")}
    await response.send(sse_lines({"id": "1", "data": echo}))
    await response.finish()


# == 1. The event-stream format: web-platform-tests `eventsource/` and the HTML spec's examples ==


def php_message(message: str, newline: str = "\n\n") -> bytes:
    """The body `eventsource/resources/message.py` sends for `?message=...&newline=...`."""
    return (message + newline + "\n").encode()


LONG = "x" * 2048
# (body, events as (type, data, id), retry after the stream, last event ID after close)
CORPUS = [
    pytest.param(
        "\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3\n\n\n".encode(),
        [("message", "1", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-bom",
    ),
    pytest.param(
        "\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3\n\n\n".encode(),
        [("message", "2", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-bom-2",
    ),
    pytest.param(
        php_message(
            f"data:1\r:\0\n:\r\ndata:2\n:{LONG}\rdata:3\n:data:fail\r:{LONG}\ndata:4\n", ""
        ),
        [("message", "1\n2\n3\n4", "")],
        None,
        "",
        id="wpt-format-comments",
    ),
    pytest.param(
        php_message("retry:1000\ndata:test1\n\nid:test\ndata:test2", ""),
        [("message", "test1", "")],
        1000,
        "",
        id="wpt-format-data-before-final-empty-line",
    ),
    pytest.param(
        php_message("data:\n\ndata\ndata\n\ndata:test"),
        [("message", "", ""), ("message", "\n", ""), ("message", "test", "")],
        None,
        "",
        id="wpt-format-field-data",
    ),
    pytest.param(
        php_message("event:test\ndata:x\n\ndata:x"),
        [("test", "x", ""), ("message", "x", "")],
        None,
        "",
        id="wpt-format-field-event",
    ),
    pytest.param(
        php_message("event: \ndata:data"),
        [("message", "data", "")],
        None,
        "",
        id="wpt-format-field-event-empty",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\ndata:2\n\n",
        [("message", "1", "1"), ("message", "2", "1")],
        None,
        "1",
        id="wpt-format-field-id-3-persists",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", "2"), ("message", "3", "2")],
        None,
        "2",
        id="wpt-format-field-id-3-changes-and-persists",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-field-id-3-resets",
    ),
    pytest.param(
        php_message(
            "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
            "data:\r\n data:32\ndata:4\n"
        ),
        [("message", "\0\n 2\n1\n3\n\n4", "")],
        None,
        "",
        id="wpt-format-field-parse",
    ),
    pytest.param(
        php_message("retry:03000\ndata:x"),
        [("message", "x", "")],
        3000,
        "",
        id="wpt-format-field-retry",
    ),
    pytest.param(
        php_message("retry:2000\nretry:1000x\ndata:x"),
        [("message", "x", "")],
        2000,
        "",
        id="wpt-format-field-retry-bogus",
    ),
    pytest.param(
        php_message("retry\ndata:test"),
        [("message", "test", "")],
        None,
        "",
        id="wpt-format-field-retry-empty",
    ),
    pytest.param(
        php_message(
            "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test"
        ),
        [("message", "test\n\ntest", "")],
        None,
        "",
        id="wpt-format-field-unknown",
    ),
    pytest.param(
        php_message("data:\ttest\rdata: \ndata:test"),
        [("message", "\ttest\n\ntest", "")],
        None,
        "",
        id="wpt-format-leading-space",
    ),
    pytest.param(
        php_message("data:test\r\ndata\ndata:test\r\n\r"),
        [("message", "test\n\ntest", "")],
        None,
        "",
        id="wpt-format-newlines",
    ),
    pytest.param(
        php_message("data:\0\n\n"),
        [("message", "\0", "")],
        None,
        "",
        id="wpt-format-null-character",
    ),
    pytest.param(
        php_message("data:ok\u2026"), [("message", "ok\u2026", "")], None, "", id="wpt-format-utf-8"
    ),
    pytest.param(
        b"data:msg\ndata:msg\n\n:\nfalsedata:msg\n\ndata:\n\ndata:end\n\n",
        [("message", "msg\nmsg", ""), ("message", "", ""), ("message", "end", "")],
        None,
        "",
        id="wpt-event-data",
    ),
    pytest.param(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [("message", "YHOO\n+2\n10", "")],
        None,
        "",
        id="html-spec-stock-example",
    ),
    pytest.param(
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n",
        [("message", "first event", "1"), ("message", "second event", "")],
        None,
        "",
        id="html-spec-ids-and-unterminated-block",
    ),
    pytest.param(
        b"data\n\ndata\ndata\n\ndata:",
        [("message", "", ""), ("message", "\n", "")],
        None,
        "",
        id="html-spec-empty-data-lines",
    ),
    pytest.param(
        b"data:test\n\ndata: test\n\n",
        [("message", "test", ""), ("message", "test", "")],
        None,
        "",
        id="html-spec-optional-space",
    ),
]


@pytest.mark.parametrize(("body", "expected", "retry", "last_id"), CORPUS)
@pytest.mark.parametrize("chunk", [1, 3, None], ids=["bytewise", "3-byte-chunks", "whole"])
def test_wpt_and_html_spec_corpus(
    body: bytes,
    expected: list[tuple[str, str, str]],
    retry: int | None,
    last_id: str,
    chunk: int | None,
) -> None:
    """Each body, fed byte by byte, in 3-byte chunks and whole, gives what the corpus expects."""
    parser = EventStreamParser()
    size = chunk or len(body)
    events = [e for i in range(0, len(body), size) for e in parser.feed(body[i : i + size])]
    events += parser.close()
    assert [(e.event, e.data, e.id) for e in events] == expected
    assert parser.retry == retry
    assert parser.last_event_id == last_id


# == 2. The handshake, as EventSource does it ==================================================


@pytest.mark.anyio
@pytest.mark.parametrize("status", [210, 299])
async def test_a_2xx_other_than_200_is_not_an_event_stream(status: int) -> None:
    """WHATWG: "if res's status is not 200 ... fail the connection" (wpt request-status-error).

    The upstream answers with the right Content-Type and a valid event; EventSource shows
    nothing and closes, so the bridge must not return that event as the stream's.
    """

    async def odd_status(request: Request, response: Response) -> None:
        await response.head(status)
        await response.send(sse_lines({"data": "data"}))
        await response.finish()

    async with serve(odd_status) as server, bridge_of(tool("t", f"{server.url}/s")) as bridge:
        try:
            batch = await bridge.call("t", {"max_events": 1, "max_seconds": 5})
        except BridgeError:
            return
    assert batch.count == 0, f"HTTP {status} was read as an event stream: {batch.events}"


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_same_origin_redirects_are_followed_with_the_credentials(status: int) -> None:
    """wpt request-redirect: every redirect status leads to the stream (same origin here)."""
    api_key = "acceptance-key-5150"

    async def redirecting(request: Request, response: Response) -> None:
        if request.path == "/old":
            await response.simple(status, "", headers={"Location": "/new?x=1"})
            return
        await response.send(sse_lines({"id": "1", "data": request.headers.get("x-api-key")}))
        await response.finish()

    auth = {"auth_type": "api_key", "api_key": "${KEY}"}
    async with serve(redirecting) as server:
        manual_tool = tool("t", f"{server.url}/old", auth=auth)
        async with bridge_of(manual_tool, variables={"KEY": api_key}) as bridge:
            batch = await bridge.call("t", {"max_events": 1, "max_seconds": 5})
    assert [r.path for r in server.requests] == ["/old", "/new"]
    assert server.requests[1].headers["accept"] == "text/event-stream"
    assert batch.count == 1 and batch.events[0]["data"] == "***"  # the key arrived, redacted


# == 3. Event ids are any text but CR, LF and NUL: resume with every one of them ==============

NON_ASCII_ID = "événement-1"


async def resumable(request: Request, response: Response) -> None:
    """First connection: one event with a non-ASCII id, then a drop; then echo Last-Event-ID."""
    received = request.headers.get("last-event-id")
    if received is None:
        await response.send(f"retry: 10\nid: {NON_ASCII_ID}\ndata: one\n\n")
        await response.abort()
        return
    # The test server reads headers as latin-1; browsers send this header as UTF-8.
    echoed = received.encode("latin-1").decode("utf-8", "replace")
    await response.send(sse_lines({"id": "2", "data": {"resumed_after": echoed}}))
    await response.finish()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_non_ascii_event_id_survives_a_reconnect(mode: str) -> None:
    """The stream gave an id with an accent, then dropped: reconnect and send it back."""
    async with serve(resumable) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        result = await mcp_call(bridge, "t", {"max_events": 2, "max_seconds": 5}, mode=mode)
    assert not result.is_error, text_of(result)
    batch = result.structured_content or {}
    assert [e["data"] for e in batch["events"]] == ["one", {"resumed_after": NON_ASCII_ID}]
    assert batch["reconnects"] == 1


@pytest.mark.anyio
async def test_a_non_ascii_last_event_id_from_a_batch_can_be_passed_back() -> None:
    """README: "Pass last_event_id back to continue where the batch ended" - any id it returned."""
    async with serve(resumable) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        result = await mcp_call(bridge, "t", {"last_event_id": NON_ASCII_ID, "max_events": 1})
    assert not result.is_error, text_of(result)
    assert (result.structured_content or {})["events"][0]["data"] == {"resumed_after": NON_ASCII_ID}


# == 4. Results are JSON that every host can read =============================================


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_numbers_beyond_float_range_keep_the_text_valid_json(mode: str) -> None:
    """`1e400` is valid JSON text but no float: the result must stay JSON and lose nothing."""

    async def huge_numbers(request: Request, response: Response) -> None:
        await response.send('data: 1e400\n\ndata: {"a": -1e999, "b": 1}\n\n')
        await response.finish()

    async with serve(huge_numbers) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        result = await mcp_call(bridge, "t", {"max_events": 2, "max_seconds": 5}, mode=mode)
    assert not result.is_error, text_of(result)
    text_batch = strict_json(text_of(result))  # Infinity here would break JSON.parse in a host
    assert text_batch == result.structured_content
    assert all(event["data"] is not None for event in text_batch["events"])


@pytest.mark.anyio
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


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_deeply_nested_json_data_does_not_break_the_call(mode: str) -> None:
    """300 nested arrays are valid JSON that Python decodes but the MCP SDK cannot serialise
    (pydantic stops near 250 levels): one such event from a hostile upstream must not turn the
    whole call, with the events before it, into a JSON-RPC error."""

    async def nested(request: Request, response: Response) -> None:
        await response.send(sse_lines({"id": "1", "data": "first"}))
        await response.send("id: 2\ndata: " + "[" * 300 + "]" * 300 + "\n\n")
        await response.finish()

    failure = ids = None
    async with serve(nested) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s"))
        try:
            result = await mcp_call(bridge, "t", {"max_events": 2, "max_seconds": 5}, mode=mode)
            ids = [e["id"] for e in (result.structured_content or {}).get("events", [])]
        except Exception as err:  # an MCPError, inside the client's exception group
            failure = repr(err)
    assert failure is None, f"the call failed as a whole: {failure}"
    assert ids == ["1", "2"]


# == 5. Secrets never leak: every channel, every kind of credential ===========================

PIN = "90817263"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_numeric_secret_echoed_as_a_json_number_is_redacted(mode: str) -> None:
    """An upstream echoing a numeric credential as a number must not slip past the redaction."""

    async def echo_pin(request: Request, response: Response) -> None:
        pin = request.headers["x-pin"]
        await response.send(sse_lines({"data": {"pin": int(pin)}}, {"data": {"pin": pin}}))
        await response.finish()

    async with serve(echo_pin) as server:
        manual_tool = tool("t", f"{server.url}/s", headers={"X-Pin": "${PIN}"})
        bridge = bridge_of(manual_tool, variables={"PIN": PIN})
        result = await mcp_call(bridge, "t", {"max_events": 2, "max_seconds": 5}, mode=mode)
    assert not result.is_error, text_of(result)
    assert server.requests[0].headers["x-pin"] == PIN
    assert PIN not in text_of(result)
    assert PIN not in json.dumps(result.structured_content)


@pytest.mark.anyio
async def test_a_json_escaped_secret_in_an_error_body_is_redacted() -> None:
    """PHP's json_encode writes "/" as "\\/": an upstream quoting a base64-style key back in a
    JSON 401 body must not put a trivially unescaped copy of it into the error."""
    key = "sk/live+Q9x7/abc=="

    async def refuse_and_quote(request: Request, response: Response) -> None:
        body = json.dumps({"error": f"invalid key {request.headers.get('x-api-key')}"})
        await response.simple(401, body.replace("/", "\\/"), "application/json")

    async with serve(refuse_and_quote) as server:
        auth = {"auth_type": "api_key", "api_key": "${KEY}"}
        bridge = bridge_of(tool("t", f"{server.url}/s", auth=auth), variables={"KEY": key})
        result = await mcp_call(bridge, "t", {"max_events": 1, "max_seconds": 5})
    assert result.is_error and "401" in text_of(result)
    assert key.replace("/", "\\/") not in text_of(result), text_of(result)


LITERAL_KEY = "literal-manual-key-6e4d9a"
ACCESS_TOKEN = "oauth-access-token-5f3a9c71"
USERNAME, PASSWORD = "acceptance-user", "basic-password-8b2c11"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


async def echoing_upstream(request: Request, response: Response) -> None:
    """An OAuth2 token endpoint, and a stream that echoes the credentials in a response header."""
    if request.path == "/token":
        token = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}
        await response.simple(200, json.dumps(token), "application/json")
        return
    await response.head(200, {"X-Echo": request.headers.get("authorization", "none")})
    await response.send(sse_lines({"id": "1", "data": "hello"}))
    await response.finish()


def test_credentials_never_reach_the_debug_log(tmp_path: Path) -> None:
    """README: every value is redacted "from results, errors, progress messages and logs".

    Three credentials no `${VAR}` holds: an api_key written in the manual (it travels in the
    query string, which httpx logs), an OAuth2 access token and a Basic header (echoed back by
    the upstream in a response header, which httpcore logs at debug).
    """
    with serve_in_thread(echoing_upstream) as server:
        literal = {"auth_type": "api_key", "api_key": LITERAL_KEY, "location": "query"}
        oauth = {
            "auth_type": "oauth2",
            "token_url": f"{server.url}/token",
            "client_id": "acceptance-client",
            "client_secret": "${CLIENT_SECRET}",
        }
        basic = {"auth_type": "basic", "username": USERNAME, "password": "${PASSWORD}"}
        manual = tmp_path / "creds.json"
        manual.write_text(
            manual_text(
                tool("literal", f"{server.url}/s", auth=literal),
                tool("oauth", f"{server.url}/s", auth=oauth),
                tool("basic", f"{server.url}/s", auth=basic),
            )
        )
        env = cli_env(CLIENT_SECRET="client-secret-77d1e2aa", PASSWORD=PASSWORD)
        leaks = []
        for name in ("literal", "oauth", "basic"):
            argv = ["call", name, "max_events=1", "--manual", str(manual), "--log-level", "debug"]
            done = run_cli(*argv, env=env)
            assert done.returncode == 0, done.stderr[-2000:]
            for secret in (LITERAL_KEY, ACCESS_TOKEN, BASIC, PASSWORD):
                for channel, text in (("stdout", done.stdout), ("stderr", done.stderr)):
                    leaks += [
                        f"`call {name}` {channel}: {line.strip()[:160]}"
                        for line in text.splitlines()
                        if secret in line
                    ]
    assert not leaks, "\n".join(leaks)


# == 6. Hostile manuals ========================================================================

BAD_REFS = [
    pytest.param({"x": {"$ref": "#/$defs/missing"}}, {}, id="dangling"),
    pytest.param({"x": {"$ref": "https://schemas.example.com/x.json"}}, {}, id="remote"),
    pytest.param({"x": {"$ref": "#/$defs/a"}}, {"a": {"$ref": "#/$defs/a"}}, id="loop"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("properties", "defs"), BAD_REFS)
async def test_an_unresolvable_ref_in_inputs_is_a_clear_error(
    properties: dict[str, Any], defs: dict[str, Any]
) -> None:
    """A `$ref` that cannot be resolved: a ManualError at load, or a clear error result - never
    an "internal error" on every call of a tool that `check` called ready."""
    inputs = {"type": "object", "properties": properties, "$defs": defs}
    async with serve(one_event) as server:
        try:
            manual = load(tool("t", f"{server.url}/s", inputs))
        except ManualError as err:
            assert "$ref" in str(err) or "ref" in str(err).lower(), str(err)
            return
        bridge = Bridge([manual], variables=Variables({}, environ={}))
        result = await mcp_call(bridge, "t", {"x": 1, "max_events": 1, "max_seconds": 5})
    assert result.is_error
    assert INTERNAL_ERROR not in text_of(result), text_of(result)
    assert "$ref" in text_of(result) or "x" in text_of(result)


@pytest.mark.parametrize(
    "template",
    [
        pytest.param({"url": "http://127.0.0.1:9/s?limit={max_events}"}, id="url-placeholder"),
        pytest.param({"url": "http://127.0.0.1:9/s", "header_fields": ["match"]}, id="header"),
        pytest.param({"url": "http://127.0.0.1:9/s", "body_field": "until_event"}, id="body"),
    ],
)
def test_a_template_using_a_control_argument_name_is_refused_at_load(
    template: dict[str, Any],
) -> None:
    """DESIGN 9: control names "cannot collide with the manual's, or a clear load-time error".

    Such a template can never receive that argument (the bridge keeps it), so today every call
    fails ("The URL needs the argument 'max_events'") or silently drops it.
    """
    raw = {"name": "t", "tool_call_template": {"call_template_type": "sse", **template}}
    with pytest.raises(ManualError) as caught:
        parse_manual(manual_text(raw), name="acc", source="acc.json", trusted=True)
    assert any(name in str(caught.value) for name in RESERVED_ARGUMENTS)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_odd_tool_names_reach_an_mcp_client_valid_unique_and_callable(mode: str) -> None:
    """Names with dots, spaces, slashes, CJK, emoji, combining marks, >64 chars, near-collisions,
    over two manuals with the same name: every listed name is what hosts accept, no two alike,
    every input schema is valid JSON Schema holding the control arguments, and calls work."""
    names = ["a.b", "a b", "a/b", "a_b", "股票", "🚀", "e\u0301", "-", "x" * 100, "x" * 100 + "y"]
    async with serve(one_event) as server:
        inputs = {"type": "object", "properties": {"p": {"type": "string"}}, "required": ["p"]}
        tools = [tool(name, f"{server.url}/s/{{p}}", inputs) for name in names]
        manuals = [
            parse_manual(manual_text(*tools), name="same", source=f"{n}.json", trusted=True)
            for n in ("one", "two")
        ]
        bridge = Bridge(manuals, variables=Variables({}, environ={}))
        async with mcp.Client(build_server(bridge), mode=mode) as client:
            listed = (await client.list_tools()).tools
            for item in listed:
                assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", item.name), item.name
                Draft202012Validator.check_schema(item.input_schema)
                assert set(RESERVED_ARGUMENTS) <= set(item.input_schema["properties"])
            assert len({item.name for item in listed}) == len(listed) == 2 * len(names)
            with anyio.fail_after(20):
                for item in (listed[0], listed[-1]):
                    result = await client.call_tool(item.name, {"p": "../a?b#c", "max_events": 1})
                    assert not result.is_error, text_of(result)
                    data = (result.structured_content or {})["events"][0]["data"]
                    assert data["target"] == "/s/..%2Fa%3Fb%23c"


def test_a_catastrophic_input_pattern_cannot_hang_the_bridge(tmp_path: Path) -> None:
    """A manual's `pattern` with nested quantifiers and a 40-character argument: validation must
    answer (a clear error) instead of backtracking for hours on the server's event loop."""
    manual = tmp_path / "redos.json"
    inputs = {"type": "object", "properties": {"p": {"type": "string", "pattern": "^(a+)+$"}}}
    manual.write_text(manual_text(tool("t", "http://127.0.0.1:9/s", inputs)))
    argv = [*CLI, "call", "t", "p=" + "a" * 40 + "!"]
    try:
        done = subprocess.run(
            [*argv, "--manual", str(manual)],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("argument validation ran for more than 10 s (catastrophic backtracking)")
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_a_huge_retry_timeout_is_refused_or_survives_a_reconnect() -> None:
    """`retry_timeout` is a whole number of ms; 10**400 is one. Either the manual is refused at
    load, or a drop is reconnected (bounded by max_seconds) without losing the event before it:
    today the first reconnect dies with OverflowError (int too large to convert to float)."""

    async def drop_after_one(request: Request, response: Response) -> None:
        await response.send(sse_lines({"id": str(len(server.requests)), "data": "x"}))
        await response.abort()

    async with serve(drop_after_one) as server:
        raw = manual_text(tool("t", f"{server.url}/s", retry_timeout=0))
        raw = raw.replace('"retry_timeout": 0', '"retry_timeout": 1' + "0" * 400)
        try:
            manual = parse_manual(raw, name="acc", source="acc.json", trusted=True)
        except ManualError as err:
            assert "retry_timeout" in str(err)
            return
        async with Bridge([manual], variables=Variables({}, environ={})) as bridge:
            try:
                batch = await bridge.call("t", {"max_events": 3, "max_seconds": 1})
            except Exception as err:
                failure = repr(err)
            else:
                failure = None
    assert failure is None, f"the call crashed: {failure}"
    assert batch.count >= 1 and batch.stop_reason in ("max_seconds", "max_events")


# == 7. Hostile arguments ======================================================================


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["q", "p", "b"])
async def test_a_lone_surrogate_in_an_argument_is_a_clear_argument_error(where: str) -> None:
    """JSON can carry "\\ud800"; it cannot be UTF-8 encoded into a URL or a body. The caller
    must learn which argument is wrong, not get an internal error."""
    inputs = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "p": {"type": "string"}, "b": {"type": "string"}},
    }
    arguments = {"p": "ok", where: "bad\ud800", "max_events": 1, "max_seconds": 5}
    async with serve(one_event) as server:
        bridge = bridge_of(tool("t", f"{server.url}/s/{{p}}", inputs, body_field="b"))
        result = await mcp_call(bridge, "t", arguments)
    assert result.is_error
    assert INTERNAL_ERROR not in text_of(result), text_of(result)
    assert f"'{where}'" in text_of(result)


# == 8. The command line, as the README documents it ==========================================


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
