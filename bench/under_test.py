"""MCP servers under test (the bridge, the SDK floor) as real subprocesses, driven over stdio.

Each is spawned and spoken to with the MCP SDK's own stdio client, as Claude Desktop or any stdio
host would, so every figure includes JSON-RPC framing and the SDK's client-side work.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.dispatcher import ProgressFnT

from bench.report import one_line

ROOT = Path(__file__).resolve().parent.parent


class CallFailed(RuntimeError):
    """A tool call came back as an error, or the server process misbehaved."""


def sse_tool(name: str, url: str, event_type: str | None = None) -> dict[str, Any]:
    """A UTCP 1.x tool entry for a loopback SSE endpoint."""
    return {
        "name": name,
        "description": f"Benchmark stream {name}",
        "inputs": {"type": "object", "properties": {}},
        "tool_call_template": {"call_template_type": "sse", "url": url, "event_type": event_type},
    }


def write_manual(directory: Path, name: str, tools: Sequence[dict[str, Any]]) -> Path:
    path = directory / f"{name}.json"
    manual = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": list(tools)}
    path.write_text(json.dumps(manual), encoding="utf-8")
    return path


@dataclass
class ServerUnderTest:
    session: ClientSession
    pid: int

    async def call(
        self, name: str, arguments: dict[str, Any], progress: ProgressFnT | None = None
    ) -> dict[str, Any]:
        """Call a tool and return its batch (structuredContent); an error result raises."""
        result = await self.session.call_tool(name, arguments, progress_callback=progress)
        if result.is_error or result.structured_content is None:
            text = " ".join(getattr(block, "text", "") for block in result.content)
            raise CallFailed(f"tool {name!r} failed: {text[:300]}")
        return result.structured_content


def _child_pid(module: str) -> int:
    """Our child running `module` (the upstream server may be a child too)."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if module in child.cmdline():
                return child.pid
    raise CallFailed(f"no child process of this one runs {module}")


@contextlib.asynccontextmanager
async def run_server(module: str, *args: str) -> AsyncIterator[ServerUnderTest]:
    """Start `python -m module args...` as an MCP stdio server and complete the handshake.

    The server's stderr goes to a temporary file whose tail is attached to any failure, so a
    broken start-up reads as the server's own message instead of a bare closed pipe.
    """
    params = StdioServerParameters(command=sys.executable, args=["-m", module, *args], cwd=ROOT)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                yield ServerUnderTest(session, _child_pid(module))
        except Exception as exc:
            errlog.seek(0)
            tail = errlog.read()[-600:].strip()
            if tail:
                raise CallFailed(f"{one_line(exc)}; {module} said: {tail}") from exc
            raise


def run_bridge(
    manuals: Sequence[Path], *options: str
) -> AbstractAsyncContextManager[ServerUnderTest]:
    """The bridge serving `manuals` over stdio, with extra command-line `options`."""
    args = [arg for manual in manuals for arg in ("--manual", str(manual))]
    return run_server("mcp_sse_bridge", *args, *options)
