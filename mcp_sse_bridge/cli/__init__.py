"""The `mcp-sse-bridge` command line: serve (default), list, check, call, demo.

The top of the stack: imports everything below it, and `server` (hence `mcp`) only in the
commands that need it, so `list` and `check` stay quick.
"""

from .main import main

__all__ = ["main"]
