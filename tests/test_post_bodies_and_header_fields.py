"""`body_field` and `header_fields`: a JSON POST with its Content-Length, arguments as headers,
the rest as the query, the stream headers kept, and a dropped POST stream not re-sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.network import origin
from tests.acceptance.results import batch_of
from tests.sse_server import Request, Response, serve, sse_lines

pytestmark = pytest.mark.anyio


async def test_a_body_field_makes_a_json_post_and_header_fields_become_headers(
    tmp_path: Path,
) -> None:
    """body_field (a JSON object) makes a POST with a JSON body and Content-Length; each
    header_fields argument is a header; the rest is the query; the stream headers are there;
    a dropped POST stream is not re-sent."""
    seen: list[Request] = []

    async def echo(request: Request, response: Response) -> None:
        seen.append(request)
        await response.send(sse_lines({"id": "1", "data": request.json()}))
        if request.path == "/drop":
            await response.abort()
        else:
            await response.finish()

    inputs = {
        "type": "object",
        "properties": {
            "job": {"type": "object"},
            "X-Request-Id": {"type": "string"},
            "X-Tenant": {"type": "string"},
            "verbose": {"type": "boolean"},
        },
    }
    template = {"body_field": "job", "header_fields": ["X-Request-Id", "X-Tenant"]}
    async with serve(echo) as up:
        manual = write_manual(
            tmp_path / "post.json",
            tool("submit", f"{origin(up)}/jobs", inputs, **template),
            tool("drop", f"{origin(up)}/drop", inputs, **template),
        )
        job = {"name": "rebuild ☃", "steps": [1, 2, {"deep": None}], "ok": True}
        arguments = {"job": job, "X-Request-Id": "r-42", "X-Tenant": "acme", "verbose": True}
        async with stdio_bridge(manual) as client:
            posted = batch_of(await client.call_tool("submit", arguments))
            dropped = await client.call_tool("drop", {**arguments, "max_seconds": 5})
    request = seen[0]
    assert request.method == "POST" and request.target == "/jobs?verbose=true"
    assert request.json() == job and posted["events"][0]["data"] == job
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(request.body))
    assert request.headers["x-request-id"] == "r-42" and request.headers["x-tenant"] == "acme"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["user-agent"].startswith("mcp-sse-bridge/")
    batch = batch_of(dropped)  # the event that came, and why the stream was not resumed
    assert batch["stop_reason"] == "error" and "request had a body" in batch["error"]
    assert [r.path for r in seen] == ["/jobs", "/drop"]
