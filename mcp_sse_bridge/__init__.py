"""mcp-sse-bridge: upstream Server-Sent-Events APIs, described by UTCP manuals, as MCP tools.

The package is a stack whose layers import only downwards:

    manual/     UTCP manuals, tool names, `${VAR}` variables and the secret registry
    upstream/   request building, auth, the SSE parser, the reconnecting stream, sockets
    calls/      control arguments, filters, bounds, batches, and the `Bridge` facade
    server/     the MCP layer (tools, results, progress; stdio and streamable HTTP)
    cli/        the `mcp-sse-bridge` command

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
