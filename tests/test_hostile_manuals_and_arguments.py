"""Hostile manuals and arguments: unresolvable `$ref`s, templates using control-argument names,
odd tool names, catastrophic patterns, huge retry timeouts, lone surrogates. Each is a clear
error at load or at the call, or simply works: never an internal error, a crash or a hang.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from jsonschema import Draft202012Validator

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.errors import ManualError
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from tests.acceptance.bridges import CLI, MODES, bridge_of, load, manual_text, mcp_call, tool
from tests.acceptance.results import INTERNAL_ERROR, text_of
from tests.acceptance.upstreams import one_event
from tests.sse_server import Request, Response, serve, sse_lines

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
        async with mcp.Client(build_server(bridge, subscriptions=None), mode=mode) as client:
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
