"""`mcp-sse-bridge demo`: the whole path, end to end, on one machine with no network.

Starts the demo feed on a free loopback port, launches the bridge as a real stdio MCP server
(`python -m mcp_sse_bridge --manual demo.json`), connects the SDK's `mcp.Client` to it, lists
the tools and calls two of them with progress printed live as it arrives.

The manual says `${DEMO_BASE_URL}` where the feed lives: the demo passes it with `--var`, and the
ticker's API key through the environment (`DEMO_API_KEY`), as a host config's `env` would.
"""

from __future__ import annotations

import json
import secrets
import sys
from importlib import resources
from typing import Any, TextIO

import mcp
import mcp_types as types
from mcp.client.stdio import StdioServerParameters

from mcp_sse_bridge.demo.feed import run_feed


class DemoError(Exception):
    """The demo did not run through; the message says where it stopped."""


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("stock_ticker", {"symbols": "AAPL,NVDA", "max_events": 5}),
    ("job_progress", {"job_id": "4711", "max_events": 20}),
]


async def run_demo(out: TextIO, *, interval: float = 0.15) -> None:
    """Run the scripted session, writing a human-readable transcript to `out`."""
    api_key = secrets.token_urlsafe(12)
    manual = resources.files("mcp_sse_bridge.demo") / "demo.json"
    with (
        resources.as_file(manual) as manual_path,
        run_feed(interval=interval, api_key=api_key) as base_url,
    ):
        args = ["-m", "mcp_sse_bridge", "--manual", str(manual_path), "--no-subscriptions"]
        args += ["--var", f"DEMO_BASE_URL={base_url}"]
        server = StdioServerParameters(
            command=sys.executable, args=args, env={"DEMO_API_KEY": api_key}
        )
        _say(out, f"demo feed:  {base_url}  (stock ticker, log tail, job progress)")
        _say(out, f"MCP server: python {' '.join(args[:4])} ...  (stdio)\n")
        try:
            async with mcp.Client(server) as client:
                tools = (await client.list_tools()).tools
                _say(out, f"{len(tools)} tools:")
                for tool in tools:
                    _say(out, f"  {tool.name:<14} {(tool.description or '').splitlines()[0]}")
                for name, arguments in CALLS:
                    await _call(client, out, name, arguments)
        except Exception as exc:  # our own DemoError, or the bridge failed (its stderr says why)
            inner = _innermost(exc)
            if isinstance(inner, DemoError):
                raise inner from None
            raise DemoError(f"the MCP session with the bridge failed: {inner}") from None


async def _call(client: mcp.Client, out: TextIO, name: str, arguments: dict[str, Any]) -> None:
    _say(out, f"\ncall {name} {json.dumps(arguments)}")

    async def progress(value: float, total: float | None, message: str | None) -> None:
        count = f"{int(value)}/{total:g}" if total else f"{int(value)}"
        _say(out, f"  progress {count:>5}  {message}")

    result = await client.call_tool(name, arguments, progress_callback=progress)
    if result.is_error:
        text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
        raise DemoError(f"the demo call {name} failed: {text}")
    _say(out, "result (structuredContent):")
    _say(out, _compact(result.structured_content or {}))


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _compact(batch: dict[str, Any]) -> str:
    """The batch as JSON with one event per line: readable, and still the exact result."""
    events = ",\n".join(f"  {json.dumps(event)}" for event in batch.get("events", []))
    rest = json.dumps({key: value for key, value in batch.items() if key != "events"})
    return f'{{"events": [\n{events}\n ],\n {rest[1:]}'


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
