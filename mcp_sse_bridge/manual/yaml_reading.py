"""YAML text (OpenAPI documents are usually YAML) to the JSON values a manual is made of.

PyYAML's `safe_load` builds no objects but plain data, and its scanner bounds the nesting. What
it still lets through is handled here: aliases can make a small text expand to billions of
values (each alias is the same object again), so the copy made here counts every value it
writes and stops at `MAX_VALUES`; keys that YAML reads as numbers or booleans (`200:`, `on:`)
become the strings JSON would have; dates become ISO text; what JSON cannot hold (NaN, binary,
sets) is an error naming the path. Every error is a `ManualError` naming the source.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import yaml

from ..errors import ManualError
from .reader import join_path, sendable_text

MAX_VALUES = 2_000_000
MAX_DEPTH = 64

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when built


def decode_yaml(text: str | bytes, source: str) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManualError(
                f"{source}: the document is not UTF-8 text (at byte offset {exc.start}).",
                hint="Save the file as UTF-8.",
            ) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a safe loader: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManualError(
            f"{source}: invalid YAML{where}: {exc.problem or exc.context}.",
            hint="Fix the YAML there (often the indentation or an unquoted ': ').",
        ) from None
    except yaml.YAMLError as exc:
        raise ManualError(f"{source}: invalid YAML: {exc}.", hint="Fix the YAML.") from None
    except RecursionError:
        raise ManualError(
            f"{source}: the YAML is nested too deeply.",
            hint=f"Keep nesting under {MAX_DEPTH} levels.",
        ) from None
    return _Copy(source).value(data, "", 0)


class _Copy:
    """A JSON-compatible copy of loaded YAML, bounded in size and depth."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.left = MAX_VALUES

    def value(self, item: Any, path: str, depth: int) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ManualError(
                f"{self.source}: the document expands to more than {MAX_VALUES:,} values "
                "(YAML aliases repeating each other?).",
                hint="Write the document without nested aliases, or as JSON.",
            )
        if depth > MAX_DEPTH:
            raise ManualError(
                f"{self.source}: {path or 'the document'}: nested more than {MAX_DEPTH} levels "
                "deep.",
                hint="Flatten this part of the document.",
            )
        if isinstance(item, dict):
            copy: dict[str, Any] = {}
            for key, child in item.items():
                name = _key(key, path, self.source)
                copy[name] = self.value(child, join_path(path, name), depth + 1)
            return copy
        if isinstance(item, list):
            return [self.value(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item)]
        if isinstance(item, str):
            return sendable_text(item, path, self.source)
        if isinstance(item, float) and not math.isfinite(item):
            raise _not_json(self.source, path, "a NaN or infinite number")
        if item is None or isinstance(item, bool | int | float):
            return item
        if isinstance(item, datetime.date):
            return item.isoformat()
        raise _not_json(self.source, path, f"a {type(item).__name__} value")


def _key(key: Any, path: str, source: str) -> str:
    if isinstance(key, str):
        return sendable_text(key, path, source)
    if isinstance(key, bool) or key is None:
        return "null" if key is None else str(key).lower()
    if isinstance(key, int | float | datetime.date):
        return key.isoformat() if isinstance(key, datetime.date) else str(key)
    raise _not_json(source, path, f"a key of type {type(key).__name__}")


def _not_json(source: str, path: str, what: str) -> ManualError:
    return ManualError(
        f"{source}: {path or 'the document'}: {what}, which JSON cannot hold.",
        hint="Use strings, numbers, booleans, null, lists and mappings only.",
    )
