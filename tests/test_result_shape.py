"""Results are JSON every host can read: numbers beyond float range and deeply nested data keep a
call's text valid JSON equal to its structured content, and do not turn the call into an error.
"""

from __future__ import annotations

import pytest

from tests.acceptance.bridges import MODES, bridge_of, mcp_call, tool
from tests.acceptance.results import strict_json, text_of
from tests.sse_server import Request, Response, serve, sse_lines


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
