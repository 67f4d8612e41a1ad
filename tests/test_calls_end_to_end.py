"""Bridge end to end: manual -> variables -> request -> real loopback stream -> batch."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.errors import (
    ArgumentError,
    AuthError,
    ConnectError,
    InsecureURLError,
    ManualError,
    ServerError,
    VariableError,
)
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, Manual, ToolSpec, parse_manual
from mcp_sse_bridge.manual.variables import Variables

from .sse_server import Request, Response, serve, serve_in_thread, sse_lines, wait_disconnect

SECRET = "k-5ecret-value-42"
INPUTS = {
    "type": "object",
    "properties": {
        "symbol": {"type": "string", "description": "ticker"},
        "options": {
            "type": "object",
            "properties": {"depth": {"type": "integer", "minimum": 1}},
        },
    },
    "required": ["symbol"],
}


def manual(url: str, *, inputs: dict[str, Any] | None = None, **template: Any) -> Manual:
    tool = {
        "name": "quotes",
        "description": "Live quotes.",
        "inputs": inputs or INPUTS,
        "tool_call_template": {"call_template_type": "sse", "url": url, **template},
    }
    text = json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [tool]})
    return parse_manual(text, name="demo", source="demo.json", trusted=True)


@contextlib.asynccontextmanager
async def bridge(
    url: str, env: dict[str, str] | None = None, **template: Any
) -> AsyncIterator[Bridge]:
    variables = Variables(environ={"API_KEY": SECRET, **(env or {})})
    async with Bridge([manual(url, **template)], variables=variables) as opened:
        yield opened


def send_events(*events: dict[str, Any], end: str = "finish"):
    async def handler(request: Request, response: Response) -> None:
        await response.send(sse_lines(*events))
        await (response.finish() if end == "finish" else response.abort())

    return handler


API_KEY = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
QUOTES = [
    {"event": "quote", "id": "1", "data": {"symbol": "AAPL", "venue": {"code": "X"}, "px": 1}},
    {"event": "trade", "id": "2", "data": {"symbol": "AAPL"}},
    {"event": "quote", "id": "3", "data": {"symbol": "AAPL", "venue": {"code": "Y"}, "px": 2}},
    {"event": "quote", "id": "4", "data": {"symbol": "AAPL", "venue": {"code": "X"}, "px": 3}},
    {"event": "quote", "id": "5", "data": {"symbol": "AAPL", "venue": {"code": "X"}, "px": 4}},
]


# -- a call end to end ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_call_end_to_end_with_variables_auth_filters_and_bounds() -> None:
    url = "/quotes/{symbol}"
    async with serve(send_events(*QUOTES)) as server, bridge(server.url + url, auth=API_KEY) as b:
        batch = await b.call(
            "quotes",
            {
                "symbol": "AAPL",
                "options": {"depth": 2},
                "max_events": 2,
                "event_types": ["quote"],
                "match": {"venue.code": "X"},
            },
        )
    assert batch.to_dict() == {
        "events": [
            {"event": "quote", "id": "1", "data": QUOTES[0]["data"]},
            {"event": "quote", "id": "4", "data": QUOTES[3]["data"]},
        ],
        "count": 2,
        "stop_reason": "max_events",
        "last_event_id": "4",
        "elapsed_s": batch.elapsed_s,
        "reconnects": 0,
        "skipped": {"filtered": 2, "oversized": 0},
    }
    [request] = server.requests
    assert request.path == "/quotes/AAPL"
    assert request.query == [("options", '{"depth":2}')]  # control arguments never go upstream
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["user-agent"].startswith("mcp-sse-bridge/")


@pytest.mark.anyio
async def test_resume_and_until_event() -> None:
    events = [{"event": "step", "id": "6", "data": "a"}, {"event": "done", "id": "7", "data": "b"}]
    events.append({"event": "step", "id": "8", "data": "c"})
    async with serve(send_events(*events)) as server, bridge(server.url) as b:
        batch = await b.call("quotes", {"symbol": "X", "last_event_id": "5", "until_event": "done"})
    assert server.requests[0].headers["last-event-id"] == "5"
    assert (batch.stop_reason, batch.last_event_id, batch.count) == ("until_event", "7", 2)


@pytest.mark.anyio
async def test_any_single_line_id_is_passed_back_as_utf8() -> None:
    """A stream's ids may hold accents, tabs and other controls but CR, LF and NUL."""
    resume = "événement-7\t\x01"
    async with serve(send_events({"id": "8", "data": "x"})) as server, bridge(server.url) as b:
        batch = await b.call("quotes", {"symbol": "X", "last_event_id": resume})
    assert server.requests[0].headers["last-event-id"].encode("latin-1") == resume.encode()
    assert batch.last_event_id == "8"


def test_a_ref_the_loader_missed_is_a_clear_error_at_call_time() -> None:
    """`parse_manual` refuses unresolvable refs; a Manual built in code gets a ManualError
    from the call instead of an internal error, and nothing is fetched."""
    inputs = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}}
    raw = {"name": "t", "inputs": inputs, "tool_call_template": {"url": "https://example.com"}}
    built = Manual("m", "m.json", True, [ToolSpec.model_validate(raw)])
    b = Bridge([built], variables=Variables(environ={}))
    with pytest.raises(ManualError) as caught:
        b.validate_arguments("t", {"x": 1})
    assert "'http://127.0.0.1:9/x.json'" in caught.value.message


def test_arguments_nested_too_deeply_for_a_recursive_schema_are_an_argument_error() -> None:
    node = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    inputs = {"type": "object", "properties": {"tree": node}, "$defs": {"node": node}}
    b = Bridge([manual("https://example.com/s", inputs=inputs)], variables=Variables(environ={}))
    tree: list[Any] = []
    for _ in range(5000):
        tree = [tree]
    with pytest.raises(ArgumentError, match="nested too deeply"):
        b.validate_arguments("quotes", {"tree": tree})


@pytest.mark.anyio
async def test_manual_event_type_is_the_tools_own_filter() -> None:
    async with serve(send_events(*QUOTES)) as server, bridge(server.url, event_type="trade") as b:
        batch = await b.call("quotes", {"symbol": "AAPL"})
        with pytest.raises(ArgumentError) as caught:
            await b.call("quotes", {"symbol": "AAPL", "event_types": ["quote"]})
    assert [item["id"] for item in batch.events] == ["2"]
    assert caught.value.argument == "event_types" and "'trade'" in caught.value.message


@pytest.mark.anyio
async def test_on_event_reports_each_accepted_event() -> None:
    seen: list[tuple[str, int]] = []

    async def on_event(item: dict[str, Any], count: int) -> None:
        seen.append((item["id"], count))

    async with serve(send_events(*QUOTES)) as server, bridge(server.url) as b:
        await b.call("quotes", {"symbol": "A", "event_types": ["trade"]}, on_event=on_event)
    assert seen == [("2", 1)]


@pytest.mark.anyio
async def test_events_streams_accepted_events() -> None:
    async with serve(send_events(*QUOTES)) as server, bridge(server.url) as b:
        got = [item["id"] async for item in b.events("quotes", {"symbol": "A", "max_events": 3})]
    assert got == ["1", "2", "3"]


@pytest.mark.anyio
async def test_upstream_error_after_events_returns_a_partial_batch() -> None:
    handler = send_events(*QUOTES[:2], end="abort")
    async with serve(handler) as server, bridge(server.url, reconnect=False) as b:
        batch = await b.call("quotes", {"symbol": "A"})
    assert (batch.stop_reason, batch.count, batch.last_event_id) == ("error", 2, "2")
    assert "dropped the connection" in batch.to_dict()["error"]
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_cancelled_call_closes_the_upstream_connection() -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.send(sse_lines(QUOTES[0]))
        await wait_disconnect(response)

    got = anyio.Event()

    async def on_event(item: dict[str, Any], count: int) -> None:
        got.set()

    async with serve(handler) as server, bridge(server.url) as b:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: b.call("quotes", {"symbol": "A"}, on_event=on_event))
            await got.wait()
            tg.cancel_scope.cancel()
        await server.wait_for_client_close(timeout=1.0)
        assert server.open_connections == 0


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("location", ["header", "query", "cookie"])
async def test_secret_echoed_in_an_error_body_is_redacted(location: str) -> None:
    async def handler(request: Request, response: Response) -> None:
        echo = f"bad key {SECRET} in {request.target} {request.headers.get('cookie')}"
        await response.simple(401, echo)

    auth = {**API_KEY, "location": location}
    async with serve(handler) as server, bridge(server.url, auth=auth) as b:
        with pytest.raises(AuthError) as caught:
            await b.call("quotes", {"symbol": "A"})
    error = caught.value
    assert error.status == 401
    assert "bad key ***" in error.body_excerpt
    for text in (str(error), error.body_excerpt, repr(error.args)):
        assert SECRET not in text
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.anyio
async def test_secret_echoed_in_events_is_redacted() -> None:
    echo = {"event": "whoami", "id": "1", "data": {"key": SECRET, "note": f"your key {SECRET}"}}
    async with serve(send_events(echo)) as server, bridge(server.url, auth=API_KEY) as b:
        batch = await b.call("quotes", {"symbol": "A"})
    assert batch.events[0]["data"] == {"key": "***", "note": "your key ***"}
    assert SECRET not in json.dumps(batch.to_dict())


@pytest.mark.anyio
async def test_oauth2_token_is_refreshed_once_on_401_and_never_leaks() -> None:
    issued: list[str] = []
    accepted = {"tok-2-abcdef"}

    async def handler(request: Request, response: Response) -> None:
        if request.path == "/token":
            issued.append(f"tok-{len(issued) + 1}-abcdef")
            body = {"access_token": issued[-1], "token_type": "bearer", "expires_in": 3600}
            await response.simple(200, json.dumps(body), "application/json")
        elif request.headers["authorization"].removeprefix("Bearer ") in accepted:
            await send_events({"id": "1", "data": "streamed"})(request, response)
        else:
            await response.simple(401, f"expired: {request.headers['authorization']}")

    oauth = {
        "auth_type": "oauth2",
        "token_url": "${TOKEN_URL}",
        "client_id": "bridge",
        "client_secret": "${CLIENT_SECRET}",
    }
    async with serve(handler) as server:
        env = {"TOKEN_URL": server.url + "/token", "CLIENT_SECRET": "client-s3cret"}
        async with bridge(server.url + "/stream", env=env, auth=oauth) as b:
            batch = await b.call("quotes", {"symbol": "A"})
            assert issued == ["tok-1-abcdef", "tok-2-abcdef"]
            assert batch.count == 1
            accepted.clear()  # now the stream refuses the cached token and the refreshed one
            with pytest.raises(AuthError) as caught:
                await b.call("quotes", {"symbol": "A"})
    assert issued == ["tok-1-abcdef", "tok-2-abcdef", "tok-3-abcdef"]  # one refresh per call
    assert [r.path for r in server.requests].count("/stream") == 4
    assert "expired: ***" in str(caught.value) and "tok-" not in str(caught.value)


BASIC_TOKEN = base64.b64encode(f"reader:{SECRET}".encode()).decode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        ({**API_KEY, "location": "query"}, SECRET),
        ({**API_KEY, "api_key": SECRET, "location": "query"}, SECRET),  # written in the manual
        ({"auth_type": "basic", "username": "reader", "password": "${API_KEY}"}, BASIC_TOKEN),
    ],
    ids=["variable", "literal", "computed"],
)
async def test_http_client_log_lines_never_show_a_secret(
    auth: dict[str, str], secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A library user logging everything: the bridge logs each stream's request line at INFO
    (httpx2 does too on its proxy route, query included), httpcore2 the response headers at
    DEBUG, and this upstream echoes the credential."""

    async def handler(request: Request, response: Response) -> None:
        echo = request.headers.get("authorization") or dict(request.query)["X-Api-Key"]
        await response.head(headers={"X-Echo": echo})
        await response.send(sse_lines({"id": "1", "data": "x"}))
        await response.finish()

    caplog.set_level(logging.DEBUG)  # on the root logger, as logging.basicConfig would
    http_logger = logging.getLogger("httpx2")
    filters = list(http_logger.filters)
    async with serve(handler) as server, bridge(server.url + "/s", auth=auth) as b:
        assert (await b.call("quotes", {"symbol": "A"})).count == 1
    assert f"upstream GET {server.url}/s: HTTP 200" in caplog.text
    assert "x-echo" in caplog.text.lower()  # the response headers were logged
    assert secret not in caplog.text
    assert http_logger.filters == filters  # removed when the bridge closes


@pytest.mark.anyio
async def test_a_template_with_only_a_literal_dollar_is_still_substituted() -> None:
    async with serve(send_events({"data": "x"})) as server, bridge(server.url + "/s?q=$$top") as b:
        await b.call("quotes", {"symbol": "A"})
    assert server.requests[0].query == [("q", "$top"), ("symbol", "A")]


# -- refused before connecting ----------------------------------------------------------------


@pytest.mark.anyio
async def test_insecure_url_is_refused_before_connecting() -> None:
    async with bridge("http://example.com/stream") as b:
        with pytest.raises(InsecureURLError):
            await b.call("quotes", {"symbol": "A"})


@pytest.mark.anyio
async def test_missing_variable_names_every_candidate() -> None:
    async with bridge("http://127.0.0.1:9/{symbol}", auth={**API_KEY, "api_key": "${NOPE}"}) as b:
        with pytest.raises(VariableError) as caught:
            await b.call("quotes", {"symbol": "A"})
    assert caught.value.names == ["demo_NOPE", "NOPE"]


@pytest.mark.anyio
async def test_server_errors_are_redacted_too() -> None:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(503, f"<h1>down</h1> {request.target}", "text/html")

    auth = {**API_KEY, "location": "query"}
    async with serve(handler) as server, bridge(server.url + "/s", auth=auth) as b:
        with pytest.raises(ServerError) as caught:
            await b.call("quotes", {"symbol": "A"})
    assert caught.value.body_excerpt == "down /s?symbol=A&X-Api-Key=***"


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "argument", "words"),
    [
        ({}, "symbol", "missing required argument 'symbol'"),
        ({"symbol": 5}, "symbol", "5 is not of type 'string'"),
        ({"symbol": "A", "options": {"depth": 0}}, "options.depth", "less than the minimum"),
        ({"symbol": "A", "symbl": "A"}, "symbl", "has no argument 'symbl'"),
        ({"symbol": "A", "max_events": 5000}, "max_events", "ceiling of 1000"),
        ({"symbol": "A", "max_events": 0}, "max_events", "too small"),
        ({"symbol": "A", "max_events": 2.5}, "max_events", "whole number"),
        ({"symbol": "A", "max_events": "5"}, "max_events", 'got "5"'),
        ({"symbol": "A", "max_events": True}, "max_events", "got true"),
        ({"symbol": "A", "max_seconds": 0}, "max_seconds", "too small"),
        ({"symbol": "A", "max_seconds": 301}, "max_seconds", "ceiling of 300"),
        ({"symbol": "A", "event_types": "quote"}, "event_types", "list of event types"),
        ({"symbol": "A", "event_types": []}, "event_types", "list of event types"),
        ({"symbol": "A", "match": ["symbol"]}, "match", "object of dotted paths"),
        ({"symbol": "A", "until_event": ""}, "until_event", "non-empty string"),
        ({"symbol": "A", "last_event_id": "1\r\nX-Evil: 1"}, "last_event_id", "single-line"),
        ({"symbol": "A", "last_event_id": "1\x002"}, "last_event_id", "without NUL"),
        ({"symbol": "A", "last_event_id": "1\ud800"}, "last_event_id", "single-line"),
    ],
)
def test_bad_arguments_name_the_argument(arguments: dict, argument: str, words: str) -> None:
    b = Bridge([manual("https://example.com/s")], variables=Variables(environ={}))
    with pytest.raises(ArgumentError) as caught:
        b.validate_arguments("quotes", arguments)
    assert caught.value.argument == argument
    assert words in caught.value.message
    assert caught.value.hint


def test_whole_floats_and_nulls_are_accepted_for_control_arguments() -> None:
    b = Bridge([manual("https://example.com/s")], variables=Variables(environ={}))
    b.validate_arguments("quotes", {"symbol": "A", "max_events": 5.0, "last_event_id": None})


def test_extra_arguments_are_allowed_when_the_schema_says_so() -> None:
    inputs = {**INPUTS, "additionalProperties": {"type": "string"}}
    b = Bridge([manual("https://example.com/s", inputs=inputs)], variables=Variables(environ={}))
    b.validate_arguments("quotes", {"symbol": "A", "extra": "sent as query"})
    with pytest.raises(ArgumentError) as caught:
        b.validate_arguments("quotes", {"symbol": "A", "extra": 5})
    assert caught.value.argument == "extra"


def test_unknown_tool_lists_the_available_ones() -> None:
    b = Bridge([manual("https://example.com/s")], variables=Variables(environ={}))
    with pytest.raises(ArgumentError, match="Unknown tool 'nope'") as caught:
        b.validate_arguments("nope", {})
    assert caught.value.hint == "Available tools: quotes."


def test_input_schema_is_the_manual_inputs_plus_control_arguments() -> None:
    limits = Limits(default_max_events=7, max_max_events=70, max_max_seconds=30.0)
    b = Bridge([manual("https://example.com/s")], variables=Variables(environ={}), limits=limits)
    schema = b.input_schema("quotes")
    assert schema["required"] == ["symbol"]
    assert list(schema["properties"]) == ["symbol", "options", *RESERVED_ARGUMENTS]
    assert schema["properties"]["max_events"]["default"] == 7
    assert schema["properties"]["max_events"]["maximum"] == 70
    assert schema["properties"]["max_seconds"]["maximum"] == 30.0
    assert all(schema["properties"][name]["description"] for name in RESERVED_ARGUMENTS)
    assert "max_events" not in INPUTS["properties"]  # the manual's own schema is untouched


# -- connections --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_connections_bounds_the_upstream_streams_of_all_calls() -> None:
    """The limit holds across calls: with two streams open, a third waits for a slot until its
    handshake deadline passes."""
    streams = {"open": 0, "most": 0}
    both_open = anyio.Event()

    async def handler(request: Request, response: Response) -> None:
        streams["open"] += 1
        streams["most"] = max(streams["most"], streams["open"])
        if streams["open"] == 2:
            both_open.set()
        try:
            await response.send(sse_lines(QUOTES[0]))
            await wait_disconnect(response)
        finally:
            streams["open"] -= 1

    limits = Limits(max_connections=2, connect_timeout=0.5)
    variables = Variables(environ={})
    async with (
        serve(handler) as server,
        Bridge([manual(server.url)], variables=variables, limits=limits) as b,
        anyio.create_task_group() as tg,
    ):
        for _ in range(2):
            tg.start_soon(b.call, "quotes", {"symbol": "A", "max_events": 2})
        with anyio.fail_after(5):
            await both_open.wait()
        with pytest.raises(ConnectError, match=r"within 0\.5 s"):
            await b.call("quotes", {"symbol": "B", "max_events": 2})
        tg.cancel_scope.cancel()
    assert streams["most"] == 2
    assert len(server.requests) == 2


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Proxy variables from the test's own environment out of the way; set what a test needs."""
    for name in ("http_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.anyio
async def test_proxy_environment_variables_apply_to_upstream_calls(
    proxy_env: pytest.MonkeyPatch,
) -> None:
    async with serve(send_events(QUOTES[0])) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        async with bridge("http://127.0.0.1:9/quotes") as b:  # nothing listens on port 9
            batch = await b.call("quotes", {"symbol": "A", "max_events": 1})
    assert batch.count == 1
    assert proxy.requests[0].target == "http://127.0.0.1:9/quotes?symbol=A"


@pytest.mark.anyio
async def test_proxy_credentials_are_masked_when_the_proxy_echoes_them(
    proxy_env: pytest.MonkeyPatch,
) -> None:
    password = "pr0xy-pa55-7731"

    async def echoing_proxy(request: Request, response: Response) -> None:
        said = request.headers.get("proxy-authorization", "")
        await response.simple(502, f"bad gateway for {said} ({password})")

    async with serve(echoing_proxy) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url.replace("http://", f"http://ops:{password}@"))
        async with bridge("http://127.0.0.1:9/quotes") as b:
            with pytest.raises(ServerError) as caught:
                await b.call("quotes", {"symbol": "A", "max_events": 1})
    token = base64.b64encode(f"ops:{password}".encode()).decode()
    assert proxy.requests[0].headers["proxy-authorization"] == f"Basic {token}"
    text = f"{caught.value} {caught.value.body_excerpt}"
    assert "bad gateway for" in text
    assert password not in text
    assert token not in text


def test_a_bridge_runs_under_trio_too() -> None:
    """The engine is anyio throughout; under trio its sockets go through httpcore2's own backend
    (`network.AsyncioBackend` serves asyncio only)."""

    async def call(url: str) -> list[dict[str, Any]]:
        async with bridge(url) as opened:
            batch = await opened.call("quotes", {"symbol": "AAPL", "max_events": 2})
            return batch.events

    with serve_in_thread(send_events(*QUOTES)) as server:
        events = anyio.run(call, f"{server.url}/quotes", backend="trio")
    assert [event["id"] for event in events] == ["1", "2"]
