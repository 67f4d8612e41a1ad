"""`import` writes what strict MCP clients take: OpenAPI 3.0's `nullable` and 3.1's type lists
become an `anyOf` of single types, so the imported manual loads without a strict warning, and
its tool still takes a number, a null (not sent) or text where the document said so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.cli import main
from mcp_sse_bridge.cli.terminal import parse_arguments
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from tests.sse_server import Request, Response, serve_in_thread, sse_lines

pytestmark = pytest.mark.usefixtures("restore_logging")


def document(base: str, version: str) -> dict[str, Any]:
    if version.startswith("3.0"):
        interval = {"type": "number", "nullable": True, "minimum": 0, "exclusiveMinimum": True}
        tag = {"type": "string", "nullable": True}
        either = {"type": "string", "nullable": True, "anyOf": [{"minLength": 1}]}
    else:
        interval = {"type": ["number", "null"], "exclusiveMinimum": 0}
        tag = {"type": ["string", "null"]}
        either = {"type": ["string", "null", "string"], "anyOf": [{"minLength": 1}]}
    parameters = [
        {"name": name, "in": "query", "schema": schema}
        for name, schema in (("interval", interval), ("tag", tag), ("either", either))
    ]
    stream = {"text/event-stream": {"schema": {"type": "string"}}}
    return {
        "openapi": version,
        "info": {"title": "Ticks", "version": "1"},
        "servers": [{"url": base}],
        "paths": {
            "/ticks": {
                "get": {
                    "operationId": "ticks",
                    "parameters": parameters,
                    "responses": {"200": {"description": "ok", "content": stream}},
                }
            }
        },
    }


async def one_tick(request: Request, response: Response) -> None:
    await response.send(sse_lines({"id": "1", "data": {"query": request.target}}))
    await response.finish()


async def call(manual: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    server = build_server(Bridge([manual], variables=Variables({}, environ={})))
    async with mcp.Client(server, mode="legacy") as client:
        result = await client.call_tool("ticks", arguments)
    assert not result.is_error, result.content
    return result.structured_content or {}


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_nullable_and_type_lists_become_any_of_and_load_without_a_strict_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, version: str
) -> None:
    source = tmp_path / "api.json"
    with serve_in_thread(one_tick) as upstream:
        source.write_text(json.dumps(document(upstream.url, version)))
        target = tmp_path / "ticks.json"
        code = main(["import", str(source), "-o", str(target)])
        err = capsys.readouterr().err
        assert code == 0, err
        assert "strict" not in err
        manual = load_manual(str(target))
        assert not [w for w in manual.warnings if "strict" in w], manual.warnings
        (tool,) = manual.tools
        properties = tool.inputs["properties"]
        number, null = {"type": "number"}, {"type": "null"}
        assert properties["interval"] == {"anyOf": [number, null], "exclusiveMinimum": 0}
        assert properties["tag"] == {"anyOf": [{"type": "string"}, null]}
        assert properties["either"] == {
            "anyOf": [{"minLength": 1}],
            "allOf": [{"anyOf": [{"type": "string"}, null]}],
        }
        assert "gives a list as its type" not in target.read_text()
        sent = anyio.run(call, manual, {"interval": 0.5, "tag": None, "either": "x"})
        assert sent["events"][0]["data"]["query"] == "/ticks?interval=0.5&either=x"
        refused = anyio.run(refused_call, manual, {"interval": 0})
        assert "interval" in refused
        # the terminal keeps a nullable string's text as typed
        assert parse_arguments(["tag=4711", "interval=2"], tool.inputs) == {
            "tag": "4711",
            "interval": 2,
        }


async def refused_call(manual: Any, arguments: dict[str, Any]) -> str:
    server = build_server(Bridge([manual], variables=Variables({}, environ={})))
    async with mcp.Client(server, mode="legacy") as client:
        result = await client.call_tool("ticks", arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)
