"""Secrets never reach a result: not as a JSON number echoed by the upstream, not JSON-escaped in a
refusal's body. (Logs: test_logs.py; the other channels and forms: test_security.py.)
"""

from __future__ import annotations

import json

import pytest

from tests.acceptance.bridges import MODES, bridge_of, mcp_call, tool
from tests.acceptance.results import text_of
from tests.sse_server import Request, Response, serve, sse_lines

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
