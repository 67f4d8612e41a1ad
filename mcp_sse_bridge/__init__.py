"""mcp-sse-bridge: upstream Server-Sent-Events APIs, described by UTCP manuals, as MCP tools.

The package is a stack whose layers import only downwards (`tests/test_layering.py`):

    manual/         UTCP manuals (JSON, or OpenAPI documents), names, `${VAR}` variables, secrets
    upstream/       request building, auth, the SSE parser, the reconnecting stream, sockets
    shaping/        results reduced for a model's context (fields, latest_per, summary, lines)
    calls/          control arguments, filters, bounds, batches, and the `Bridge` facade
    authoring/      `probe` (a live stream -> a manual) and writing manuals
    subscriptions/  feeds held open between calls, buffered, read from cursors
    server/         the MCP layer (tools, results, progress, resources; stdio and HTTP)
    cli/            the `mcp-sse-bridge` command

The names below are the library's public API; `server` is imported on its own
(`from mcp_sse_bridge.server import build_server`) because it brings the MCP SDK.
"""

__version__ = "0.1.0"

from .calls.batch import Batch
from .calls.bridge import Bridge, Limits
from .calls.filters import Bounds, EventFilter
from .errors import (
    ArgumentError,
    AuthError,
    BridgeError,
    ConnectError,
    InsecureURLError,
    ManualError,
    ProtocolError,
    UpstreamError,
    VariableError,
)
from .manual import Manual, load_manual, parse_manual
from .manual.variables import SecretRegistry, Variables
from .upstream.sse import EventStreamParser, ServerSentEvent

__all__ = [
    "ArgumentError",
    "AuthError",
    "Batch",
    "Bounds",
    "Bridge",
    "BridgeError",
    "ConnectError",
    "EventFilter",
    "EventStreamParser",
    "InsecureURLError",
    "Limits",
    "Manual",
    "ManualError",
    "ProtocolError",
    "SecretRegistry",
    "ServerSentEvent",
    "UpstreamError",
    "VariableError",
    "Variables",
    "__version__",
    "load_manual",
    "parse_manual",
]
