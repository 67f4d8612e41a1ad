"""The bridge as MCP hosts run it: in process, over stdio and over streamable HTTP.

`connect()` gives a real `mcp.Client` on any of the six transport and protocol combinations a
host can use, so one test body runs against all of them; `stdio_bridge()` is the bridge process
as a desktop host starts it (the SDK's default environment, flags, a log file); `mcp_call()` is
one call in process. `RawStdio` speaks JSON-RPC lines to a bridge process directly, and
`post_jsonrpc()` one streamable-HTTP POST, for what the SDK client does not let a test do (send
`notifications/cancelled` by hand, pick the protocol version of `initialize`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2
import mcp
import mcp_types as types
from mcp.client.stdio import StdioServerParameters, stdio_client

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.manual import Manual, load_manual, parse_manual
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server

CLI = [sys.executable, "-m", "mcp_sse_bridge"]
MODES = ["legacy", "auto"]  # the protocol eras of an in-process `mcp.Client`
TRANSPORTS = [
    "inproc-legacy",
    "inproc-auto",
    "stdio-legacy",
    "stdio-auto",
    "http-legacy",
    "http-auto",
]


def tool(name: str, url: str, inputs: dict[str, Any] | None = None, **template: Any) -> dict:
    """One manual tool with an SSE call template."""
    return {
        "name": name,
        "description": f"Acceptance tool {name}.",
        "inputs": inputs or {"type": "object", "properties": {}},
        "tool_call_template": {"call_template_type": "sse", "url": url, **template},
    }


def manual_text(*tools: dict[str, Any]) -> str:
    return json.dumps({"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": list(tools)})


def write_manual(path: Path, *tools: dict[str, Any]) -> Path:
    path.write_text(manual_text(*tools))
    return path


def load(*tools: dict[str, Any], name: str = "acc") -> Manual:
    """A trusted manual of `tools`, parsed in memory."""
    return parse_manual(manual_text(*tools), name=name, source=f"{name}.json", trusted=True)


def bridge_of(*tools: dict[str, Any], variables: dict[str, str] | None = None, **limits: Any):
    """A `Bridge` over one manual of `tools`, with `variables` only (no environment)."""
    return Bridge(
        [load(*tools)],
        variables=Variables(variables or {}, environ={}),
        limits=Limits(**limits),
    )


async def mcp_call(
    bridge: Bridge, name: str, arguments: dict[str, Any], *, mode: str = "legacy"
) -> types.CallToolResult:
    """One tools/call through an in-process `mcp.Client`, after tools/list."""
    async with mcp.Client(build_server(bridge), mode=mode) as client:
        await client.list_tools()  # the client learns the output schemas, as hosts do
        with anyio.fail_after(20):
            return await client.call_tool(name, arguments)


@contextlib.asynccontextmanager
async def connect(
    transport: str,
    manual: Path,
    *,
    env: dict[str, str] | None = None,
    liveness_seconds: float = 5.0,
    limits: Limits | None = None,
) -> AsyncIterator[mcp.Client]:
    """An initialised client session with the bridge serving `manual` on `transport`.

    `env` holds the variables (the environment of a subprocess; `--var`-like values in
    process). `liveness_seconds` and `limits` apply in process only.
    """
    kind, mode = transport.split("-")
    env = env or {}
    if kind == "inproc":
        bridge = Bridge(
            [load_manual(str(manual))],
            variables=Variables(env, environ={}),
            limits=limits or Limits(),
        )
        server = build_server(bridge, liveness_seconds=liveness_seconds)
        async with mcp.Client(server, mode=mode) as client:
            yield client
    elif kind == "stdio":
        params = StdioServerParameters(
            command=CLI[0], args=[*CLI[1:], "--manual", str(manual)], env=env
        )
        async with mcp.Client(params, mode=mode) as client:
            yield client
    else:
        async with http_bridge(manual, env=env) as url, mcp.Client(url, mode=mode) as client:
            yield client


@contextlib.asynccontextmanager
async def stdio_bridge(
    manual: Path, env: dict[str, str] | None = None, *flags: str, errlog: IO[str] | None = None
) -> AsyncIterator[mcp.Client]:
    """The bridge process serving `manual` over stdio, with the SDK's default environment
    (PATH, HOME, ...: no proxy and no SSL_CERT_FILE unless `env` sets them)."""
    command = [*CLI[1:], "--manual", str(manual), *flags]
    params = StdioServerParameters(command=CLI[0], args=command, env=env or {})
    transport = stdio_client(params) if errlog is None else stdio_client(params, errlog=errlog)
    with anyio.fail_after(40):
        async with mcp.Client(transport, mode="legacy") as client:
            yield client


@contextlib.asynccontextmanager
async def http_bridge(
    manual: Path, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """`mcp-sse-bridge --transport http --port 0`; yields the URL its stderr banner prints."""
    async with http_process("--manual", str(manual), *extra, env={**os.environ, **(env or {})}) as (
        url,
        _,
    ):
        yield url


@contextlib.asynccontextmanager
async def http_process(
    *argv: str, env: dict[str, str]
) -> AsyncIterator[tuple[str, anyio.abc.Process]]:
    """`mcp-sse-bridge --transport http --port 0 ARGV` as a process: its MCP URL (from the
    stderr banner) and the process; terminated at the end unless it is gone already."""
    command = [*CLI, "--transport", "http", "--port", "0", *argv]
    process = await anyio.open_process(command, env=env)
    async with process:
        try:
            assert process.stderr is not None
            banner = b""
            with anyio.fail_after(20):
                while b"/mcp" not in banner:
                    banner += await process.stderr.receive()
            found = re.search(rb"http://127\.0\.0\.1:\d+/mcp", banner)
            assert found, banner.decode(errors="replace")
            yield found[0].decode(), process
        finally:
            if process.returncode is None:
                process.terminate()
            with anyio.fail_after(10):
                await process.wait()


class RawStdio:
    """JSON-RPC, one message per line, with a bridge process on stdin/stdout.

    Messages that are not the awaited reply are kept, in order, in `received`.
    """

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = b""
        self.received: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self._stdin.send((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())

    async def request(self, id: int, method: str, params: dict[str, Any] | None = None) -> dict:
        await self.send({"id": id, "method": method, **({"params": params} if params else {})})
        return await self.reply(id)

    async def reply(self, id: int) -> dict[str, Any]:
        """The reply to request `id` (a line that is not JSON fails the test)."""
        while True:
            while b"\n" not in self._buffer:
                self._buffer += await self._stdout.receive()
            line, _, self._buffer = self._buffer.partition(b"\n")
            message = json.loads(line)
            if message.get("id") == id and "method" not in message:
                return message
            self.received.append(message)

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        info = {"name": "raw-acceptance", "version": "0"}
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": info}
        reply = await self.request(1, "initialize", params)
        await self.send({"method": "notifications/initialized"})
        return reply

    async def close(self) -> None:
        await self._stdin.aclose()


@contextlib.asynccontextmanager
async def raw_stdio(
    manual: Path, *, env: dict[str, str] | None = None, stderr: int = subprocess.DEVNULL
) -> AsyncIterator[RawStdio]:
    """A bridge process serving `manual` over stdio. Unless the test ended the process itself,
    it must exit 0 once its stdin closes."""
    command = [*CLI, "--manual", str(manual)]
    environment = {**os.environ, **(env or {})}
    async with await anyio.open_process(command, env=environment, stderr=stderr) as process:
        session = RawStdio(process)
        yield session
        if process.returncode is None:
            await session.close()
            with anyio.fail_after(10):
                assert await process.wait() == 0


async def post_jsonrpc(
    http: httpx2.AsyncClient, url: str, message: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx2.Response, list[dict[str, Any]]]:
    """One streamable-HTTP POST; the JSON-RPC messages of its JSON or SSE response body."""
    response = await http.post(
        url,
        json={"jsonrpc": "2.0", **message},
        headers={"Accept": "application/json, text/event-stream", **headers},
    )
    body = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = body.replace("\r\n", "\n").split("\n")
        return response, [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    return response, [json.loads(body)] if body.strip() else []
