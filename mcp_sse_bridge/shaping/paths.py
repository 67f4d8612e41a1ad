"""Dotted paths into JSON data: `"quote.price"` reads `data["quote"]["price"]`.

A decimal segment indexes a list (`"items.0.id"`). `lookup` reads one path (for `match`,
`latest_per` and summaries); `selection` and `project` keep only some paths of a value
(`fields`), with the nested shape preserved and missing paths left out. Paths a caller gives are
bounded (`MAX_PATH_CHARS`, `MAX_PATH_SEGMENTS`; checked by `calls/arguments.py`), so neither a
lookup nor a note echoing them grows with hostile input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_PATH_CHARS = 256  # a dotted path (fields, latest_per, match keys) is at most this long
MAX_PATH_SEGMENTS = 32  # and has at most this many segments

Path = tuple[str, ...]
Selection = dict[str, "Selection"]
"""A tree of path segments; an empty node keeps the whole value below it."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What `lookup` and `project` return for a path the value does not have."""


def lookup(value: Any, path: Path) -> Any:
    """The value at `path`, or `MISSING`."""
    for key in path:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and key.isdecimal() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


def selection(paths: Iterable[Path]) -> Selection:
    """The tree of `paths`; a path that is a prefix of another keeps all of it."""
    tree: Selection = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            child = node.get(key)
            if child is not None and not child:
                break  # a shorter path already keeps everything below
            node = node.setdefault(key, {})  # not empty for long: the next segment goes in
        else:
            node[path[-1]] = {}
    return tree


def project(value: Any, tree: Selection) -> Any:
    """`value` with only the selected paths (objects keep keys, lists keep picked items in
    index order), or `MISSING` when none of them is there."""
    if not tree:
        return value
    if isinstance(value, dict):
        out = {}
        for key, below in tree.items():
            if key in value:
                picked = project(value[key], below)
                if picked is not MISSING:
                    out[key] = picked
        return out or MISSING
    if isinstance(value, list):
        indices = sorted(int(key) for key in tree if key.isdecimal())
        items = [project(value[i], tree[str(i)]) for i in indices if i < len(value)]
        return [item for item in items if item is not MISSING] or MISSING
    return MISSING


def project_data(data: Any, tree: Selection) -> Any:
    """An event's `data` under `fields`: objects and lists keep the selected paths (`{}` or
    `[]` when none is there); text and JSON scalars have no paths and stay as they are."""
    if not isinstance(data, dict | list):
        return data
    picked = project(data, tree)
    return type(data)() if picked is MISSING else picked


def dotted(path: Path) -> str:
    return ".".join(path)
