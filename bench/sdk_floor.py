"""The MCP floor: a lowlevel SDK server over stdio whose tools only sleep, then return a batch.

Driven exactly like the bridge (same client, same number of concurrent calls, a result of the
same shape), it shows what the SDK, the stdio transport and the client cost on their own, so
the concurrency figures separate their share from ours.

    python -m bench.sdk_floor SECONDS EVENTS    # tool `paced` sleeps SECONDS; `warmup` does not
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server


def batch(events: int, seconds: float) -> dict[str, Any]:
    return {
        "events": [{"event": "message", "id": str(i), "data": {"seq": i}} for i in range(events)],
        "count": events,
        "stop_reason": "max_events",
        "last_event_id": str(events - 1),
        "elapsed_s": seconds,
        "reconnects": 0,
        "skipped": {"filtered": 0, "oversized": 0},
    }


async def main(seconds: float, events: int) -> None:
    result = batch(events, seconds)
    text = json.dumps(result, separators=(",", ":"))
    schema = {"type": "object", "properties": {}}
    tools = [
        types.Tool(name=name, input_schema=schema, output_schema={"type": "object"})
        for name in ("paced", "warmup")
    ]

    async def list_tools(
        ctx: ServerRequestContext[None], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[None], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        await anyio.sleep(seconds if params.name == "paced" else 0)
        content = [types.TextContent(type="text", text=text)]
        return types.CallToolResult(content=content, structured_content=result)

    server = Server("sdk-floor", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main, float(sys.argv[1]), int(sys.argv[2]))
