"""What the user sees in a terminal: one-line errors, safe JSON, `key=value` arguments.

Text from manuals and upstreams reaches the terminal only without control characters, so
neither can forge escape sequences there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
_JSON_VALUE = re.compile(r"[^\s=\"'\\]+=(?=[\[{])")  # key= followed by a JSON list or object
_CLOSING = {"[": "]", "{": "}"}


def split_words(spec: str) -> list[str]:
    """Shell-like words, except that a `key=` value starting with `[` or `{` is kept verbatim
    up to its matching bracket, quotes and spaces inside included: so `--subscribe 'prices
    event_types=["price"] match={"symbol": "AAPL"}'` reaches the parser as JSON, where
    `shlex.split` would strip its quotes. Raises ValueError (an unclosed quote)."""
    words: list[str] = []
    at = 0
    while True:
        while at < len(spec) and spec[at].isspace():
            at += 1
        if at == len(spec):
            return words
        if (key := _JSON_VALUE.match(spec, at)) and (end := _json_end(spec, key.end())):
            words.append(spec[at:end])
            at = end
            continue
        lexer = shlex.shlex(spec[at:], posix=True)
        lexer.whitespace_split, lexer.commenters = True, ""
        word = lexer.get_token()
        if word is None:
            return words
        words.append(word)
        at += lexer.instream.tell()


def _json_end(text: str, start: int) -> int | None:
    """The index after the bracket closing the one at `start`, when a space or the end follows
    it (None otherwise: shell rules apply to the word then). Brackets in strings don't count."""
    stack: list[str] = []
    quoted = escaped = False
    for at in range(start, len(text)):
        char = text[at]
        if quoted:
            quoted = char != '"' or escaped
            escaped = char == "\\" and not escaped
        elif char == '"':
            quoted = True
        elif char in _CLOSING:
            stack.append(_CLOSING[char])
        elif char in "]}":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                end = at + 1
                return end if end == len(text) or text[end].isspace() else None
    return None


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
            if raw[:1] in _CLOSING:
                example = '["a", "b"]' if raw[0] == "[" else '{"symbol": "AAPL"}'
                raise UsageError(
                    f"argument {pair!r} is not valid JSON: write its strings in double quotes, "
                    f"e.g. {key}={example}, and quote the whole word for the shell: "
                    f"'{key}={example}'"
                ) from None
            arguments[key] = raw
    return arguments


def split_pair(word: str) -> tuple[str, str]:
    """`key=value` -> (key, value); the value may be empty, the key may not."""
    key, sep, value = word.partition("=")
    if not sep or not key:
        raise UsageError(f"argument {word!r} is not key=value (e.g. symbol=AAPL)")
    return key, value


def _takes_text(schema: Any, depth: int = 0) -> bool:
    """Whether a property's schema allows a string, so `4711` stays the text that was typed:
    by its `type` (or type list), or one of its `anyOf`/`oneOf` branches (a nullable string
    imported from OpenAPI is `anyOf: [string, null]`).

    A boolean schema (`true`, valid JSON Schema) or one without `type` says nothing: JSON it is.
    """
    if not isinstance(schema, dict) or depth > 8:
        return False
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return True
    branches = [
        branch
        for key in ("anyOf", "oneOf")
        if isinstance(schema.get(key), list)
        for branch in schema[key]
    ]
    return any(_takes_text(branch, depth + 1) for branch in branches)


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
