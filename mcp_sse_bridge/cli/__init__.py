"""The `mcp-sse-bridge` command line: serve (default), list, check, call, demo, probe, import.

Owns the parser and the flags (`main.py`, `options.py`), the commands (`commands.py`, and
`authoring.py` for probe/import, `subscribing.py` for `--subscribe` and `call --follow`) and
what a terminal shows (`terminal.py`). The top of the stack: may import everything below it,
and `server` (hence `mcp`) only inside the commands that need it, so `list` and `check` stay
quick.
"""

from .main import main

__all__ = ["main"]
