"""Reading one top-level key of JSON objects from their text, a chunk at a time, undecoded.

`latest_per` needs to know only which key each event belongs to, and decoding a whole event
costs about as much as parsing it from the stream. `KeyScan.keys` reads the keys of a chunk's
data texts with C-level passes (`str.count` per text and over the whole chunk, one
`re.findall`), no Python per event, and answers only where that reading equals decoding for
every valid JSON text: no backslash in the chunk (so every quote delimits a string and no name
is escaped), each text starting with `{`, ending with `}` and no other `{` in the chunk (so each
text is one flat object), and the quoted key name exactly once, directly followed by a colon and
the value (`"symbol":"SYM01"`, `"id":42`). Any other chunk (escapes, nested objects, a space
before the colon, a text without the key, an object or list as the value) gives None, and the
caller decodes it as before.

What a scan cannot see is whether the rest of a text is valid JSON: a text that is not, but
reads as above (`{"symbol":"A","price":}`), gets the key it reads as. A text cut off in the
middle does not end with `}`, so it is decoded, and counted as text as decoding counts it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import repeat
from operator import add, getitem
from typing import Any

from .paths import MISSING, Path

MAX_TOKENS = 10_000  # raw non-string keys remembered with their decoded key
Decode = Callable[[str], Any]
"""Text to its JSON value, or `MISSING` when it is not JSON (the bridge's strict decoder)."""


def key_of(value: Any) -> Any:
    """A dict key for a JSON value: 1, 1.0, true and "1" stay distinct keys; objects and lists
    (unhashable) are keyed by their canonical JSON text."""
    if type(value) is str:
        return value
    if isinstance(value, dict | list):
        return type(value), json.dumps(value, sort_keys=True, separators=(",", ":"))
    return type(value), value


class KeyScan:
    """Reads the value at a one-segment `path` from JSON object texts; see the module docstring.

    `usable` is False for a path the scan cannot read (more than one segment, or a name JSON
    writes with escapes).
    """

    def __init__(self, path: Path, decode: Decode) -> None:
        name = json.dumps(path[0], ensure_ascii=False) if len(path) == 1 else ""
        self.usable = len(path) == 1 and name == f'"{path[0]}"'
        self._name = name
        self._strings = re.compile(re.escape(f"{name}:") + '"([^"]*)"')  # string keys: the text
        self._value = f"{name}:"
        self._decode = decode
        self._tokens: dict[str, Any] = {}

    def keys(self, texts: list[str]) -> list[Any] | None:
        """The key of each text (as `key_of` makes it), or None when a text must be decoded."""
        joined, count = "".join(texts), len(texts)
        if "\\" in joined or joined.count("{") != count:
            return None  # escapes, or more objects than texts
        if not all(map(str.startswith, texts, repeat("{"))):
            return None  # so each text's one `{` opens it: not an object inside a list, nor
            # a nested one beside a text that is no object
        if not all(map(str.endswith, texts, repeat("}"))):
            return None  # a text cut off (or with trailing spaces): let decoding judge it
        if set(map(str.count, texts, repeat(self._name))) != {1}:
            return None  # the name not exactly once in every text
        keys = self._strings.findall(joined)  # in text order: one name per text
        return keys if len(keys) == count else self._tokens_read(texts)

    def _tokens_read(self, texts: list[str]) -> list[Any] | None:
        """Keys that are numbers, booleans or null (strings too): the raw token up to the next
        comma or closing brace, each distinct token decoded once."""
        starts = list(map(str.find, texts, repeat(self._value)))
        if -1 in starts:
            return None
        begins = list(map(add, starts, repeat(len(self._value))))
        commas = map(str.find, texts, repeat(","), begins)
        braces = list(map(str.find, texts, repeat("}"), begins))
        if -1 in braces:
            return None
        ends = [c if 0 <= c < b else b for c, b in zip(commas, braces, strict=True)]
        tokens = list(map(getitem, texts, map(slice, begins, ends)))
        known = self._tokens
        for token in set(tokens).difference(known):
            value = self._decode(token)
            if value is MISSING or isinstance(value, dict | list) or len(known) >= MAX_TOKENS:
                return None  # a value cut at a comma inside it, or not a JSON scalar at all
            known[token] = key_of(value)
        return list(map(known.__getitem__, tokens))
