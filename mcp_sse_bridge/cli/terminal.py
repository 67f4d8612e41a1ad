"""What the user sees in a terminal: one-line errors, safe JSON, `key=value` arguments.

Text from manuals and upstreams reaches the terminal only without control characters, so
neither can forge escape sequences there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..errors import BridgeError, excerpt


class UsageError(Exception):
    """A bad command line; reported as one line with exit code 2."""


def fail(message: str, code: int) -> int:
    print(f"mcp-sse-bridge: error: {printable(message)}", file=sys.stderr)
    return code


def printable(text: str) -> str:
    """`text` as one terminal-safe line, never cut (see `errors.excerpt`)."""
    return excerpt(text, limit=sys.maxsize)


def error_text(err: BridgeError) -> str:
    from ..server.tools import error_text

    return error_text(err)


def drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not fail again.

    (The pattern the Python docs give for SIGPIPE; closing sys.stdout would not stop it.)
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def terminal_json(value: Any, *, indent: int | None = 2) -> str:
    """Indented JSON for stdout that neither a terminal nor the encoder can trip over.

    Non-ASCII text stays readable, but C1 controls (ESC's 8-bit twins) and lone surrogates are
    written as `\\uXXXX` escapes: still the same JSON value, and no escape sequence or
    UnicodeEncodeError. (json.dumps already escapes C0 controls.)
    """
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\ud800-\udfff]")


def parse_arguments(pairs: Sequence[str], schema: dict[str, Any]) -> dict[str, Any]:
    """`key=value` words -> tool arguments (JSON when it parses; raw text for string inputs)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, raw = split_pair(pair)
        if _takes_text(properties.get(key)):
            arguments[key] = raw
            continue
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


def split_pair(word: str) -> tuple[str, str]:
    """`key=value` -> (key, value); the value may be empty, the key may not."""
    key, sep, value = word.partition("=")
    if not sep or not key:
        raise UsageError(f"argument {word!r} is not key=value (e.g. symbol=AAPL)")
    return key, value


def _takes_text(schema: Any) -> bool:
    """Whether a property's schema allows a string, so `4711` stays the text that was typed.

    A boolean schema (`true`, valid JSON Schema) or one without `type` says nothing: JSON it is.
    """
    kind = schema.get("type") if isinstance(schema, dict) else None
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


class LiveLine:
    """One self-rewriting status line on a terminal; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()

    async def show(self, progress: float, total: float | None, message: str | None) -> None:
        if self._live:
            count = f"{int(progress)}/{total:g}" if total else f"{int(progress)}"
            line = f"[{count}] {printable(message or '')}"[: shutil.get_terminal_size().columns - 1]
            self._stream.write(f"\r\x1b[2K{line}")
            self._stream.flush()

    def clear(self) -> None:
        if self._live:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
