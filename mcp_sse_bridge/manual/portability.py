"""What strict MCP clients flag in an input schema, so that a manual's author hears of it at load.

The rules are MCP Inspector 2.x's (`tools/list --strict`, its `core/json/schemaLint.ts`). Such a
schema is valid and the bridge advertises and enforces it as written (README, "Design notes"),
but clients that map tool schemas onto a narrower dialect (the OpenAPI subset of Gemini's
function declarations, strict function calling) may drop its constraint or refuse the tool:

- a bare `true` or `false` where a schema object is expected (anywhere but as the value of
  `additionalProperties`, `unevaluatedProperties`, `additionalItems`, `unevaluatedItems`);
- a schema with no validation keyword (only `description`, `title`, `default`, ...) accepts any
  value; a schema directly under `not` is exempt, and `if` counts only with `then` or `else`;
- `type` given as a list of types, where an `anyOf` of single types is portable;
- a `$ref` outside the document while no schema in it declares an `$id`.

Like the Inspector, the walk stops 64 levels down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

KeyPath = tuple[str | int, ...]

_BOOLEAN_ALLOWED = {"additionalProperties", "unevaluatedProperties"}
_BOOLEAN_ALLOWED |= {"additionalItems", "unevaluatedItems"}
# Keywords whose value is a schema, an array of schemas, or an object of schemas.
_ONE = ["items", "contains", "not", "propertyNames", "if", "then", "else", "contentSchema"]
_ONE += sorted(_BOOLEAN_ALLOWED)
_MANY = ["allOf", "anyOf", "oneOf", "prefixItems"]
_NAMED = ["properties", "patternProperties", "dependentSchemas", "dependencies"]
_NAMED += ["$defs", "definitions"]
# Keywords that constrain the value: the assertions, the references, and every applicator but
# `$defs` (which applies nothing) and `if`/`then`/`else` (which constrain only as a pair).
_CONSTRAINING = {"type", "enum", "const", "required", "dependentRequired", "format"}
_CONSTRAINING |= {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
_CONSTRAINING |= {"maxLength", "minLength", "pattern", "contentMediaType", "contentEncoding"}
_CONSTRAINING |= {"maxItems", "minItems", "uniqueItems", "maxContains", "minContains"}
_CONSTRAINING |= {"maxProperties", "minProperties", "$ref", "$dynamicRef", "$recursiveRef"}
_CONSTRAINING |= {*_ONE, *_MANY, *_NAMED} - {"if", "then", "else", "$defs", "definitions"}
_TYPES = {"null", "boolean", "object", "array", "number", "string", "integer"}
_MAX_DEPTH = 64
_DECLARE = 'declare what the value is, e.g. "type": "string"'


class Unportable(NamedTuple):
    """What is wrong at `path` (JSON keys from the schema's root), and what to write instead."""

    path: KeyPath
    problem: str
    hint: str


def strict_problems(schema: Any) -> list[Unportable]:
    """Each place in `schema` that a strict client flags, in document order."""
    found: list[Unportable] = []
    ids = _declares_id(schema)

    def walk(node: Any, path: KeyPath, keyword: str | None, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(node, bool):
            if keyword not in _BOOLEAN_ALLOWED:
                found.append(Unportable(path, *_boolean(node)))
        elif isinstance(node, dict):
            found.extend(
                Unportable(path, *problem) for problem in _node_problems(node, keyword, ids)
            )
            for child, child_path, key in _children(node, path):
                walk(child, child_path, key, depth + 1)

    walk(schema, (), None, 0)
    return found


def _node_problems(
    node: dict[str, Any], keyword: str | None, ids: bool
) -> Iterator[tuple[str, str]]:
    kind = node.get("type")
    portable = isinstance(kind, list) and all(isinstance(t, str) and t in _TYPES for t in kind)
    if portable and kind and len(set(kind)) == len(kind):
        branches = ", ".join(f'{{"type": "{t}"}}' for t in kind)
        yield "gives a list as its type", f'write "anyOf": [{branches}] instead'
    ref = node.get("$ref")
    if isinstance(ref, str) and ref and not ref.startswith("#") and not ids:
        yield f"has a $ref outside the schema ({ref[:80]!r})", 'copy that schema under "$defs"'
    constrains = not _CONSTRAINING.isdisjoint(node) or (
        "if" in node and ("then" in node or "else" in node)
    )
    if not constrains and keyword != "not":
        yield "has no validation keyword (it accepts any value)", _DECLARE


def _boolean(value: bool) -> tuple[str, str]:
    if value:
        return "is a bare true where a schema object is expected", _DECLARE
    return "is a bare false where a schema object is expected", 'write {"not": {}}'


def _children(node: dict[str, Any], path: KeyPath) -> Iterator[tuple[Any, KeyPath, str]]:
    for key in _NAMED:
        if isinstance(named := node.get(key), dict):
            yield from ((child, (*path, key, name), key) for name, child in named.items())
    for key in _MANY:
        if isinstance(many := node.get(key), list):
            yield from ((child, (*path, key, i), key) for i, child in enumerate(many))
    for key in _ONE:
        if key not in node:
            continue
        if key == "items" and isinstance(node[key], list):
            yield from ((child, (*path, key, i), key) for i, child in enumerate(node[key]))
        else:
            yield node[key], (*path, key), key


def _declares_id(node: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return False
    if isinstance(node.get("$id"), str) and node["$id"]:
        return True
    return any(_declares_id(child, depth + 1) for child, _, _ in _children(node, ()))
