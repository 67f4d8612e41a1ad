"""`$ref`s inside one OpenAPI document, and its schemas as standalone JSON Schema 2020-12.

Our own resolver rather than a library's (README, Design notes): only references into the
document itself (`#/components/...`) are followed; anything else (another file, a URL) is
refused with the place it was found, so importing a document never reads a file or the network.
Chains of references are followed at most `MAX_CHAIN` deep and a loop among them is an error.

`SchemaWriter` turns the schemas of one operation into one tool's input schema: references are
inlined, except where a schema contains itself (a tree, a linked list), which becomes a
`$defs` entry and a local `$ref` (the bridge checks inputs with such refs); OpenAPI 3.0's
dialect is translated (`nullable`, boolean `exclusiveMinimum`, `example`), a list of types
becomes an `anyOf` of single types (strict MCP clients flag type lists), and what only
OpenAPI means (`discriminator`, `xml`, `x-...`) is dropped. The output is bounded by
`MAX_SCHEMA_VALUES` and its nesting by `MAX_INLINE_DEPTH`.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import unquote

from ...errors import ManualError
from ..reader import join_path

MAX_CHAIN = 32
MAX_SCHEMA_VALUES = 20_000
MAX_INLINE_DEPTH = 48

_SCHEMA_VALUED = {"items", "additionalProperties", "not", "contains", "propertyNames", "if"}
_SCHEMA_VALUED |= {"then", "else", "unevaluatedProperties", "unevaluatedItems", "contentSchema"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_DROPPED = {"discriminator", "xml", "externalDocs", "$id", "$schema", "$anchor", "$comment"}
_DROPPED |= {"$dynamicAnchor", "$dynamicRef", "nullable", "example"}
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class Resolver:
    """Follows `$ref`s within one document; every error names the JSON path."""

    def __init__(self, root: dict[str, Any], source: str) -> None:
        self.root = root
        self.source = source

    def error(self, path: str, problem: str, hint: str) -> ManualError:
        return ManualError(f"{self.source}: {path or 'the document'}: {problem}.", hint=hint)

    def deref(self, node: Any, path: str) -> tuple[Any, str]:
        """The node a (chain of) `$ref` at `path` points to, and that node's path."""
        seen: list[str] = []
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            where = join_path(path, "$ref")
            if not isinstance(ref, str):
                raise self.error(where, "must be a string", 'Write "$ref": "#/components/...".')
            if not ref.startswith("#"):
                raise self.error(
                    where,
                    f"refers to {ref[:120]!r} outside this document, which is not fetched",
                    "Bundle the document first (e.g. `redocly bundle` or `swagger-cli bundle`), "
                    "so that every $ref starts with #/.",
                )
            if ref in seen or len(seen) >= MAX_CHAIN:
                chain = " -> ".join([*seen, ref][-4:])
                raise self.error(where, f"$ref loop ({chain})", "Break the loop of references.")
            seen.append(ref)
            node, path = self.pointer(ref, where), pointer_path(ref)
        return node, path

    def pointer(self, ref: str, where: str) -> Any:
        node: Any = self.root
        walked = "#"
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            key = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise self.error(
                    where,
                    f"$ref {ref[:120]!r} does not resolve: {walked} has no {key[:60]!r}",
                    "Point the $ref at something the document defines.",
                )
            walked += f"/{raw}"
        return node

    def mapping(self, node: Any, path: str, what: str) -> tuple[dict[str, Any], str]:
        """`node` (after its $refs) as an object, or an error saying what was expected."""
        node, path = self.deref(node, path)
        if not isinstance(node, dict):
            raise self.error(path, f"{what} must be an object, got {_kind(node)}", f"Fix {what}.")
        return node, path


def pointer_path(ref: str) -> str:
    """`#/components/schemas/Tick` as `components.schemas.Tick` (how errors show places)."""
    path = ""
    for raw in ref[1:].split("/")[1:]:
        path = join_path(path, unquote(raw).replace("~1", "/").replace("~0", "~"))
    return path


class SchemaWriter:
    """Standalone JSON Schemas for one tool; `defs` collects what could not be inlined."""

    def __init__(self, resolver: Resolver, *, openapi_30: bool) -> None:
        self.resolver = resolver
        self.openapi_30 = openapi_30
        self.defs: dict[str, Any] = {}
        self._def_names: dict[str, str] = {}  # path of a recursive schema -> its $defs name
        self._pending: list[tuple[str, Any, str]] = []
        self._left = MAX_SCHEMA_VALUES

    def schema(self, node: Any, path: str) -> Any:
        """`node` as JSON Schema 2020-12; call `finish()` after the last one."""
        return self._convert(node, path, ())

    def finish(self) -> dict[str, Any]:
        """The `$defs` the schemas written so far refer to (converted on demand)."""
        while self._pending:
            name, node, path = self._pending.pop()
            self.defs[name] = self._convert(node, path, (path,))
        return self.defs

    def _convert(self, node: Any, path: str, stack: tuple[str, ...]) -> Any:
        self._left -= 1
        if self._left < 0 or len(stack) > MAX_INLINE_DEPTH:
            raise self.resolver.error(
                path,
                "the schema is too large or too deep once its $refs are inlined "
                f"(over {MAX_SCHEMA_VALUES:,} values or {MAX_INLINE_DEPTH} levels)",
                "Simplify the schema, or describe this input more loosely.",
            )
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.resolver.error(
                path,
                f"a schema must be an object, got {_kind(node)}",
                'Use e.g. {"type": "string"}.',
            )
        if "$ref" not in node:
            return self._keywords(node, path, stack)
        target, target_path = self.resolver.deref(node, path)
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if target_path in stack:
            return {"$ref": f"#/$defs/{self._def_name(target_path, target)}"}
        converted = self._convert(target, target_path, (*stack, target_path))
        if siblings and isinstance(converted, dict):
            converted = {**converted, **self._keywords(siblings, path, stack)}
        return converted

    def _def_name(self, path: str, node: Any) -> str:
        if path not in self._def_names:
            base = _NOT_NAME.sub("_", path.rpartition(".")[2] or "schema")
            name, n = base, 2
            while name in self._def_names.values():
                name, n = f"{base}_{n}", n + 1
            self._def_names[path] = name
            self._pending.append((name, node, path))
        return self._def_names[path]

    def _keywords(self, node: dict[str, Any], path: str, stack: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            where = join_path(path, key)
            if key in _DROPPED or key.startswith("x-"):
                continue
            if key in _SCHEMA_VALUED and (isinstance(value, dict | bool)):
                out[key] = self._convert(value, where, stack)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [
                    self._convert(item, f"{where}[{i}]", stack) for i, item in enumerate(value)
                ]
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {
                    name: self._convert(item, join_path(where, name), stack)
                    for name, item in value.items()
                }
            else:
                out[key] = copy.deepcopy(value)
        if "example" in node and "examples" not in node:
            out["examples"] = [copy.deepcopy(node["example"])]
        if self.openapi_30:
            _from_openapi_30(node, out)
        _single_types(out)
        return out


def _single_types(out: dict[str, Any]) -> None:
    """A list of types (3.1's `["number", "null"]`, or 3.0's `nullable`) as an `anyOf` of single
    types, which strict MCP clients take (`manual/portability.py`); the other keywords stay
    beside it, where they still constrain only values of their own type."""
    kind = out.get("type")
    if not isinstance(kind, list) or not all(isinstance(item, str) for item in kind):
        return
    kinds = list(dict.fromkeys(kind))
    if not isinstance(out.get("allOf", []), list):
        return  # a broken allOf: left for the reader to report
    if len(kinds) == 1:
        out["type"] = kinds[0]
        return
    del out["type"]
    branches = [{"type": item} for item in kinds]
    if "anyOf" in out:  # both must hold: the schema's own anyOf and one of the types
        out["allOf"] = [*out.get("allOf", []), {"anyOf": branches}]
    else:
        out["anyOf"] = branches


def _from_openapi_30(node: dict[str, Any], out: dict[str, Any]) -> None:
    """OpenAPI 3.0's schema dialect, in 2020-12 terms."""
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), "a number")
