"""The commands: `serve`, `list`, `check`, `call` and `demo`, each `(args) -> exit code`.

The MCP SDK takes about a second to import, so only the commands that need it import
`server` (and through it `mcp`): `list` and `check` stay quick.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import socket
import sys
from typing import Any

import anyio

from ..calls.batch import Batch
from ..calls.bridge import Bridge
from ..errors import BridgeError
from ..manual import RESERVED_ARGUMENTS
from ..shaping import render_lines
from ..urls import check_url
from . import subscribing
from .options import bridge_from, logger
from .terminal import (
    LiveLine,
    UsageError,
    error_text,
    fail,
    parse_arguments,
    printable,
    terminal_json,
)

AUTH_TOKEN_ENV = "MCP_SSE_BRIDGE_AUTH_TOKEN"


def serve(args: argparse.Namespace) -> int:
    from ..server.http import run_http
    from ..server.tools import build_server, run_stdio

    bridge = bridge_from(args)
    limits = subscribing.limits_from(args)
    pins = subscribing.pins_from(args, bridge, limits) if limits else []
    store = subscribing.store_from(args, bridge, limits) if limits else None
    if args.stateless and args.transport != "http":
        raise UsageError("--stateless is for --transport http")
    for problem in _problems(bridge):
        logger.warning("%s (calls to this tool will fail until fixed)", problem)
    server = build_server(bridge, subscriptions=limits, pinned=pins, store=store)
    _settle_heap()
    if args.transport == "stdio":
        anyio.run(run_stdio, server)
        return 0
    token = args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or None
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"mcp-sse-bridge: streamable HTTP on http://{shown}:{port}/mcp", file=sys.stderr)
    if token is None and host not in ("127.0.0.1", "::1"):
        logger.warning("serving %s without --auth-token: anyone who reaches it can call", host)
    anyio.run(functools.partial(run_http, server, sock, auth_token=token, stateless=args.stateless))
    return 0


def _settle_heap() -> None:
    """Spare the cyclic GC the long-lived heap (manuals, schemas, the SDK) and frequent passes.

    A thousand calls in flight allocate containers fast enough that the default gen-0 threshold
    (700) ran the collector over and over, and older passes kept rescanning objects that live as
    long as the process (about a tenth of the bridge's CPU; bench/README.md).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, made with protocol IPPROTO_TCP (not 0, as `socket.create_server`
    makes it): asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose `proto` says
    TCP, and with Nagle on, a response written as headers then body waited for the client's
    delayed ACK, about 40 ms per request."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        if os.name != "nt":  # as create_server does: a restart can bind a port in TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited on Linux too
        sock.bind((host, port))
        sock.listen()
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def list_tools(args: argparse.Namespace) -> int:
    bridge = bridge_from(args)
    variables = bridge.variables
    out = sys.stdout
    for name, tool in bridge.tools.items():
        out.write(f"{name}\n")
        if description := printable(tool.spec.description):
            out.write(f"  {description}\n")
        out.write(f"  arguments: {printable(_describe_arguments(tool.spec.inputs))}\n")
        missing = dict(variables.missing(tool.manual, tool.spec))
        needed = [
            f"{var} (MISSING: set one of {', '.join(missing[var])})" if var in missing else var
            for var in variables.referenced(tool.spec)
        ]
        out.write(f"  variables: {printable(', '.join(needed)) or 'none'}\n")
    if bridge.tools:
        out.write(f"\nevery tool also takes: {', '.join(RESERVED_ARGUMENTS)}\n")
    else:
        out.write("no SSE tools in these manuals\n")
    return 0


def _describe_arguments(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    parts = []
    for key, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        kind = "|".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{key}: {kind}{' (required)' if key in required else ''}")
    return ", ".join(parts) or "none"


def check(args: argparse.Namespace) -> int:
    bridge = bridge_from(args)
    problems = _problems(bridge)
    for problem in problems:
        print(f"mcp-sse-bridge: error: {printable(problem)}", file=sys.stderr)
    if problems:
        return 2
    names = ", ".join(bridge.tools) or "none"
    print(f"ok: {len(bridge.tools)} tool(s) ready: {names}")
    return 0


def _problems(bridge: Bridge) -> list[str]:
    """Why tools are not ready: missing variables, or a resolved URL the bridge would refuse."""
    variables, problems = bridge.variables, []
    for name, tool in bridge.tools.items():
        where = f"{tool.manual.source}: tool {tool.spec.name!r}"
        if name != tool.spec.name:
            where += f" (MCP name {name!r})"
        missing = variables.missing(tool.manual, tool.spec)
        for var, candidates in missing:
            problems.append(f"{where}: missing variable {var}: set one of {', '.join(candidates)}")
        if missing:
            continue
        try:
            url = variables.substitute(tool.manual, tool.spec.template.url, bridge.secrets.copy())
            check_url(url, allow_insecure_http=bridge.allow_insecure_http)
        except BridgeError as err:
            problems.append(f"{where}: {bridge.secrets.redact(error_text(err))}")
    return problems


def call(args: argparse.Namespace) -> int:
    from ..server.tools import call_with_progress

    bridge = bridge_from(args)
    if args.tool not in bridge.tools:
        known = ", ".join(bridge.tools) or "none"
        raise UsageError(f"unknown tool {args.tool!r}; the manuals define: {known}")
    arguments = parse_arguments(args.arguments, bridge.input_schema(args.tool))
    if args.follow:
        return subscribing.follow(bridge, args.tool, arguments)
    line = LiveLine(sys.stderr)

    async def run() -> Batch:
        async with bridge:
            return await call_with_progress(bridge, args.tool, arguments, line.show, 1.0)

    try:
        batch = anyio.run(run)
    finally:
        line.clear()
    _print_batch(batch)
    return 0


def _print_batch(batch: Batch) -> None:
    """As an MCP host gets it: the lines text for `format=lines`, else the JSON, with the
    shaping note on stderr (stdout stays one JSON document for pipes)."""
    if batch.format == "lines":
        for text in render_lines(batch.to_dict(), batch.note).split("\n"):
            print(printable(text))
        return
    if batch.note:
        print(f"mcp-sse-bridge: {printable(batch.note)}", file=sys.stderr)
    print(terminal_json(batch.to_dict()))


def demo(args: argparse.Namespace) -> int:
    from mcp_sse_bridge.demo.run import DemoError, run_demo

    try:
        anyio.run(run_demo, sys.stdout)
    except DemoError as err:
        return fail(str(err), 1)
    return 0
