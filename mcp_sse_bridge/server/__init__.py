"""The MCP layer: tools, results and progress over the SDK's lowlevel server; stdio and HTTP.

A thin layer over `calls.Bridge` and `subscriptions.Registry`; with `cli` and `demo`, the only
subpackages that import `mcp`.
"""

from .http import run_http
from .tools import BATCH_SCHEMA, build_server, call_with_progress, error_text, run_stdio

__all__ = [
    "BATCH_SCHEMA",
    "build_server",
    "call_with_progress",
    "error_text",
    "run_http",
    "run_stdio",
]
