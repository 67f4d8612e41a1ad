"""The MCP face of the bridge: every manual tool becomes an MCP tool returning a bounded batch.

A thin layer over `engine.Bridge` on the SDK's lowlevel `Server` (tools come from manuals, not
from Python signatures). The SDK validates nothing, so every failure the engine reports becomes
an `is_error=True` result a model can read and act on; only cancellation passes through, and it
closes the upstream stream on its way out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import anyio
import mcp_types as types
import pydantic_core
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.direct_dispatcher import DIRECT_TRANSPORT_KIND

from .. import __version__
from ..calls.batch import Batch
from ..calls.bridge import Bridge
from ..errors import BridgeError, UpstreamError, excerpt
from ..shaping import render_lines
from ..shaping.schema import SUMMARY_SCHEMA
from ..subscriptions.registry import Pin, SubscriptionLimits
from ..subscriptions.store import SubscriptionStore
from .live import NotifyingServer, SubscriptionLayer
from .stdio import nonblocking_stdio

logger = logging.getLogger(__name__)

ReportProgress = Callable[[float, float | None, str | None], Awaitable[None]]
"""`(progress, total, message)`: the SDK's `session.report_progress`, or the CLI's live line."""

STOP_REASONS = ["max_events", "max_seconds", "idle", "closed", "until_event", "max_bytes", "error"]
# Any JSON value, spelled so that strict clients see a validation keyword on every node: an
# `anyOf` of single types, since a list as `type` is less portable (MCP Inspector --strict).
ANY_JSON = [{"type": kind} for kind in ("object", "array", "string", "number", "boolean", "null")]

BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "event": {"type": "string", "description": "event type ('message' if unnamed)"},
                    "id": {"type": "string", "description": "the stream's last event id"},
                    "data": {
                        "description": "decoded JSON when the data is JSON, else the text",
                        "anyOf": ANY_JSON,
                    },
                },
                "required": ["event", "id", "data"],
            },
        },
        "count": {"type": "integer", "minimum": 0},
        "stop_reason": {"type": "string", "enum": STOP_REASONS},
        "last_event_id": {
            "type": "string",
            "description": "pass it back as last_event_id to continue where this batch ended",
        },
        "elapsed_s": {"type": "number", "minimum": 0},
        "reconnects": {"type": "integer", "minimum": 0},
        "skipped": {
            "type": "object",
            "properties": {
                "filtered": {"type": "integer", "minimum": 0},
                "oversized": {"type": "integer", "minimum": 0},
                "keys": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "only with latest_per: events of keys beyond max_events",
                },
                "over_budget": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "shaped results: older events left out to fit max_bytes",
                },
            },
        },
        "folded": {
            "type": "integer",
            "minimum": 0,
            "description": "only with latest_per: how many events were folded into these",
        },
        "summary": SUMMARY_SCHEMA,
        "error": {
            "type": "string",
            "description": "only with stop_reason 'error': the upstream failed after these events",
        },
    },
    "required": [
        "events",
        "count",
        "stop_reason",
        "last_event_id",
        "elapsed_s",
        "reconnects",
        "skipped",
    ],
}
"""The tool's `outputSchema`: the shape of `batch.Batch.to_dict()`."""

DEFAULT_SUBSCRIPTIONS = SubscriptionLimits()
ANNOTATIONS = types.ToolAnnotations(read_only_hint=True, open_world_hint=True)
SUMMARY_CHARS = 100


DESCRIPTION = "Live Server-Sent-Events APIs as tools that return bounded batches of events."


def build_server(
    bridge: Bridge,
    *,
    liveness_seconds: float = 5.0,
    subscriptions: SubscriptionLimits | None = DEFAULT_SUBSCRIPTIONS,
    pinned: Sequence[Pin] = (),
    store: SubscriptionStore | None = None,
) -> Server[Bridge]:
    """An MCP server exposing `bridge.tools`; the bridge is entered for the server's lifespan.

    `liveness_seconds` is the least time between two progress notifications while the upstream
    is quiet (hosts like Claude Code reset their call timer on each notification). With
    `subscriptions` (None: off) the four subscription tools, the subscription resources and
    their notifications are added (`live.py`), and `pinned` ones start with the server; `store`
    (default: in memory) is where subscriptions live (Redis: shared by replicas).
    """
    tools = [_describe(bridge, name) for name in bridge.tools]
    layer = None
    if subscriptions is not None and bridge.tools:
        layer = SubscriptionLayer(bridge, subscriptions, pinned=pinned, store=store)
        tools += layer.tools

    @contextlib.asynccontextmanager
    async def lifespan(_server: Server[Bridge]) -> AsyncIterator[Bridge]:
        async with bridge, layer.running() if layer else contextlib.nullcontext():
            yield bridge

    async def list_tools(
        ctx: ServerRequestContext[Bridge], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Bridge], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        report = ctx.session.report_progress if wants_progress(ctx) else None
        try:
            if layer is not None and params.name in layer.names:
                data, style, note = await layer.call(ctx, params.name, arguments)
            else:
                batch = await call_with_progress(
                    bridge, params.name, arguments, report, liveness_seconds
                )
                data, style, note = batch.to_dict(), batch.format, batch.note
        except BridgeError as err:
            logger.info("tool %s failed: %s", params.name, error_text(err))
            return error_result(error_text(err))
        except Exception:  # a bug, not bad input: keep the session alive and say where to look
            logger.exception("tool %s failed unexpectedly", params.name)
            return error_result(
                f"Internal error in mcp-sse-bridge while calling {params.name!r}. "
                "The server's log (stderr) has the details; please report it."
            )
        try:
            content = result_content(data, style, note)
        except ValueError as err:
            logger.error("tool %s: the batch cannot be sent as JSON: %s", params.name, err)
            return error_result(
                f"The batch from {params.name!r} cannot be sent: an event's data is not valid "
                "UTF-8 JSON (a lone surrogate such as \\ud800, a non-finite number, or nesting "
                "too deep). Pass last_event_id to continue after these events, or lower "
                "max_events to get the events before the bad one."
            )
        return types.CallToolResult(content=content, structured_content=data)

    common: dict[str, Any] = {
        "version": __version__,
        "title": "SSE bridge",
        "description": DESCRIPTION,
        "lifespan": lifespan,
        "on_list_tools": list_tools,
        "on_call_tool": call_tool,
    }
    if layer is None:
        return Server("mcp-sse-bridge", **common)
    return NotifyingServer("mcp-sse-bridge", **common, **layer.handlers(), layer=layer)


def _describe(bridge: Bridge, name: str) -> types.Tool:
    spec = bridge.tools[name].spec
    limits = bridge.limits
    about = (
        f"Returns a batch of live events: at most max_events (default {limits.default_max_events})"
        f" or whatever arrives within max_seconds (default {limits.default_max_seconds:g})."
        " Pass the result's last_event_id back to continue."
    )
    description = f"{spec.description.strip()}\n\n{about}" if spec.description.strip() else about
    return types.Tool(
        name=name,
        title=spec.name.replace("_", " ").replace("-", " ").strip().capitalize() or name,
        description=description,
        input_schema=bridge.input_schema(name),
        output_schema=BATCH_SCHEMA,
        annotations=ANNOTATIONS,
    )


def wants_progress(ctx: ServerRequestContext[Bridge]) -> bool:
    """Whether the caller asked for progress (else reporting it is wasted work per event).

    On the wire the ask is a progress token in the request's `_meta`. In-process (direct)
    dispatch hands progress to the caller's callback without a token, so there we cannot tell;
    the SDK shows the transport only on the session's private dispatch context, and when that
    is not found the answer is yes (slower, never silent).
    """
    if (ctx.meta or {}).get("progress_token") is not None:
        return True
    transport = getattr(getattr(ctx.session, "_request_outbound", None), "transport", None)
    return getattr(transport, "kind", DIRECT_TRANSPORT_KIND) == DIRECT_TRANSPORT_KIND


async def call_with_progress(
    bridge: Bridge,
    name: str,
    arguments: dict[str, Any],
    report: ReportProgress | None,
    liveness_seconds: float,
) -> Batch:
    """`bridge.call` that reports each accepted event and, while the stream is quiet, liveness.

    With `report` None nobody listens: a plain `bridge.call`, no keep-alive task, no summaries.
    """
    if report is None:
        return await bridge.call(name, arguments)
    total = arguments.get("max_events", bridge.limits.default_max_events)
    if arguments.get("latest_per") is not None or arguments.get("summary") is True:
        total = None  # max_events caps keys or samples there, not the events folded
    progress = Progress(report, total=total, interval=liveness_seconds)
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress.keep_alive)
        try:
            return await bridge.call(
                name, arguments, on_event=progress.event, on_fold=progress.fold
            )
        except BridgeError as err:
            failure = err  # raised below: raised in here it would arrive in an ExceptionGroup
        finally:
            tg.cancel_scope.cancel()
    raise failure


def batch_text(data: dict[str, Any]) -> str:
    """The batch as compact JSON text; ValueError when no transport could send it.

    Python strings may hold lone surrogates (JSON escapes like "\\ud800" decode to them) and
    pydantic, which serialises every MCP message, stops at about 250 levels of nesting. Either
    fails outside the tool handler, where over stdio it ends the session: refuse it here. The
    probe is pydantic's own encoder (a fraction of the cost of `json.dumps`).
    """
    pydantic_core.to_json(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def result_content(
    data: dict[str, Any], style: str = "json", note: str | None = None
) -> list[types.ContentBlock]:
    """The text of a result: the batch as JSON, or as lines (`format: "lines"`); a shaped
    result in JSON starts with a block of one line saying what was done (`note`), so that the
    JSON block stays the batch and a model never takes a reduction for the stream."""
    if style == "lines":
        pydantic_core.to_json(data)  # the probe of `batch_text`: refuse what cannot be sent
        return [types.TextContent(type="text", text=render_lines(data, note))]
    blocks = [types.TextContent(type="text", text=batch_text(data))]
    if note:
        blocks.insert(0, types.TextContent(type="text", text=note))
    return blocks


def error_text(err: BridgeError) -> str:
    """One line: what failed, the HTTP status when there was one, and what to do."""
    text = " ".join(str(err).split())
    status = err.status if isinstance(err, UpstreamError) else None
    if status is not None and str(status) not in text:
        text = f"{text} (HTTP {status})"
    return text


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class Progress:
    """Turns accepted events and quiet spells into progress notifications.

    An event reports `count` (events so far); each liveness tick since the last event reports
    `count + k/(k+1)`, so values strictly increase. A lock keeps a tick and an event from
    overtaking each other between computing a value and sending it. A shaping call that folds
    events (`latest_per`, `summary`) yields none: its ticks report how many it folded.
    """

    def __init__(self, report: ReportProgress, *, total: float | None, interval: float) -> None:
        self._report = report
        self._total = total if isinstance(total, int | float) else None
        self._interval = interval
        self._lock = anyio.Lock()
        self._count = 0
        self._ticks = 0
        self._folded: int | None = None
        self._started = time.monotonic()
        self._last_sent = self._started

    async def event(self, event: dict[str, Any], count: int) -> None:
        async with self._lock:
            self._count, self._ticks = count, 0
            await self._send(count, summarize(event))

    def fold(self, count: int) -> None:
        """`count` events folded so far; the next tick reports them."""
        if count != self._folded:
            self._folded, self._count, self._ticks = count, count, 0

    async def keep_alive(self) -> None:
        """Tick while the call runs (the caller cancels it when the call ends)."""
        while True:
            await anyio.sleep(max(0.0, self._last_sent + self._interval - time.monotonic()))
            async with self._lock:
                if time.monotonic() - self._last_sent < self._interval:
                    continue  # an event was reported meanwhile
                self._ticks += 1
                waited = int(time.monotonic() - self._started)
                value = self._count + self._ticks / (self._ticks + 1)
                if self._folded is None:
                    message = f"waiting for events ({waited} s)"
                else:
                    message = f"folded {self._folded:,} events so far ({waited} s)"
                await self._send(value, message)

    async def _send(self, value: float, message: str) -> None:
        self._last_sent = time.monotonic()
        await self._report(value, self._total, message)


def summarize(event: dict[str, Any]) -> str:
    """A short one-line view of an event, e.g. `price_update #42: {"symbol":"AAPL",...`.

    Hosts show it in a terminal (Claude Code's progress line, our `call`): control characters
    from the upstream, which could forge escape sequences, become spaces, and lone surrogates,
    which no transport can encode, become `?`.
    """
    data = event.get("data")
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    head = event.get("event", "message")
    if event.get("id"):
        head += f" #{event['id']}"
    return excerpt(f"{head}: {text}"[: 4 * SUMMARY_CHARS], limit=SUMMARY_CHARS)


async def run_stdio(server: Server[Bridge]) -> None:
    """Serve one client over stdin/stdout (fd 1 points at stderr meanwhile).

    Pipes and sockets are served on the event loop (`stdio.nonblocking_stdio`); anything else
    by the SDK's default, which hops to a worker thread per message.
    """
    with nonblocking_stdio() as (stdin, stdout):
        # stdio_server only iterates stdin and awaits stdout.write()/flush(): duck-typed files
        files = cast("tuple[anyio.AsyncFile[str] | None, ...]", (stdin, stdout))
        async with stdio_server(*files) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
