"""What a tool's input schema must not hold, beyond JSON Schema's own meta-validation.

A schema can be valid JSON Schema and still break every call of its tool, or block the server:

- a `$ref` that does not resolve: dangling, remote (nothing is ever fetched: a manual must not
  make the bridge reach out to hosts it names), or one that loops back to itself without
  descending into the value (`{"$defs": {"a": {"$ref": "#/$defs/a"}}}` recurses forever);
- a `pattern` (or a `patternProperties` name) that backtracks catastrophically: Python's `re`
  cannot be interrupted, so `^(a+)+$` against a 40-character argument blocks the event loop for
  hours. A quantified group whose body has a variable length is refused unless every iteration
  must consume a delimiter nothing else in the body can match: `^(a+)+$`, `(\\w+\\s?)+` and
  `(a|aa)+` are refused, while `^[A-Z]+(,[A-Z]+)*$` and `^([a-z0-9]+\\.)+[a-z]+$` pass.
  Polynomial patterns without nesting (`a*a*a*b`) are not detected.

`check_schema` raises `SchemaProblem` with the path of the offending keyword; `manual.py` turns
it into a `ManualError` naming the file and the tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from re import _constants as sre  # the parser of `re` itself: no second regex grammar to trust
from re import _parser as sre_parse
from typing import TYPE_CHECKING, Any

from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from referencing._core import Resolver  # public as `Registry.resolver()`'s type only

KeyPath = tuple[str | int, ...]

# Keywords applied to the very value their schema is applied to: a cycle through them never ends.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
# Keywords whose value is a schema, an array of schemas, or an object of schemas.
_OBJECT_ONE = ("additionalProperties", "unevaluatedProperties", "propertyNames")
_ARRAY_ONE = ("items", "additionalItems", "unevaluatedItems", "contains")
_ONE = (*_IN_PLACE_ONE, *_OBJECT_ONE, *_ARRAY_ONE)
_MANY = (*_IN_PLACE_MANY, "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


class SchemaProblem(ValueError):
    """`path` (JSON keys from the schema's root) holds `problem`; `hint` says what to do."""

    def __init__(self, path: KeyPath, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem
        self.hint = hint


def check_schema(schema: dict[str, Any]) -> None:
    """Raise `SchemaProblem` for the first unusable `$ref` or catastrophic pattern."""
    root = Resource.from_contents(schema, default_specification=DRAFT202012)
    seen: set[int] = set()  # schemas checked
    safe: set[int] = set()  # schemas from which no in-place loop starts
    work: list[tuple[Any, Resolver[Any], KeyPath]] = [
        (schema, SPECIFICATIONS.resolver_with_root(root), ())
    ]
    while work:
        node, resolver, path = work.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        _check_patterns(node, path)
        if isinstance(ref := node.get("$ref"), str):
            target, target_resolver = _lookup(ref, resolver, path)
            _check_loop(node, resolver, path, safe)
            work.append((target, target_resolver, (*path, "$ref")))
        work.extend(
            (child, _rebased(child, resolver), child_path)
            for child, child_path in _children(node, path)
        )


def catastrophic(pattern: str) -> bool:
    """Whether `pattern` has a repeated group that can split one text in many ways."""
    return _risky(sre_parse.parse(pattern))


# -- $ref -----------------------------------------------------------------------------------


def _lookup(ref: str, resolver: Resolver[Any], path: KeyPath) -> tuple[Any, Resolver[Any]]:
    """The schema `ref` points at, and the resolver for the refs inside it."""
    try:
        resolved = resolver.lookup(ref)
    except Unresolvable:
        raise SchemaProblem(
            (*path, "$ref"),
            f"$ref {ref!r} cannot be resolved",
            'Point it at a schema inside the inputs, e.g. "#/$defs/name"; remote schemas are '
            "never fetched, so copy them under $defs.",
        ) from None
    return resolved.contents, resolved.resolver


def _check_loop(
    start: dict[str, Any], resolver: Resolver[Any], path: KeyPath, safe: set[int]
) -> None:
    """Follow the in-place applicators from `start`; coming back to a schema on the way is a
    loop that validation would follow until the stack overflows. `safe` remembers the schemas
    already explored, so shared `$defs` are walked once."""
    stack: list[int] = []

    def visit(node: Any, resolver: Resolver[Any]) -> None:
        if not isinstance(node, dict) or id(node) in safe:
            return
        if id(node) in stack:
            raise SchemaProblem(
                (*path, "$ref"),
                f"$ref {start['$ref']!r} loops back to itself without descending into the value",
                "Make the chain of $ref / allOf / anyOf / oneOf end at a schema of its own.",
            )
        stack.append(id(node))
        if isinstance(ref := node.get("$ref"), str):
            visit(*_lookup(ref, resolver, path))
        children = [node.get(key) for key in _IN_PLACE_ONE]
        children += [child for key in _IN_PLACE_MANY for child in node.get(key) or ()]
        children += (node.get("dependentSchemas") or {}).values()
        for child in children:
            visit(child, _rebased(child, resolver))
        stack.pop()
        safe.add(id(node))

    visit(start, resolver)


def _rebased(node: Any, resolver: Resolver[Any]) -> Resolver[Any]:
    """The resolver inside `node`: an `$id` there changes the base of relative refs."""
    if not isinstance(node, dict) or "$id" not in node:
        return resolver
    return resolver.in_subresource(Resource.from_contents(node, DRAFT202012))


def _children(node: dict[str, Any], path: KeyPath) -> Iterator[tuple[Any, KeyPath]]:
    for key in _ONE:
        if key in node:
            yield node[key], (*path, key)
    for key in _MANY:
        if isinstance(node.get(key), list):
            yield from ((child, (*path, key, i)) for i, child in enumerate(node[key]))
    for key in _NAMED:
        if isinstance(node.get(key), dict):
            yield from ((child, (*path, key, name)) for name, child in node[key].items())


# -- patterns -------------------------------------------------------------------------------


def _check_patterns(node: dict[str, Any], path: KeyPath) -> None:
    found: list[tuple[str, KeyPath]] = []
    if isinstance(pattern := node.get("pattern"), str):
        found.append((pattern, (*path, "pattern")))
    if isinstance(named := node.get("patternProperties"), dict):
        found += [(name, (*path, "patternProperties", name)) for name in named]
    for pattern, where in found:
        try:
            risky = catastrophic(pattern)
        except (re.error, RecursionError, OverflowError):
            continue  # meta-validation reports an invalid pattern; this is not our check
        if risky:
            raise SchemaProblem(
                where,
                f"the pattern {pattern[:80]!r} can backtrack catastrophically (a repeated group "
                "whose body can match in several ways): one long argument would hang the server",
                'Rewrite it without a quantifier inside a repeated group, e.g. "^a+$" instead of '
                '"^(a+)+$", or start each repetition with a delimiter, e.g. "^\\\\w+(,\\\\w+)*$".',
            )


def _risky(items: Any) -> bool:
    for op, av in items:
        if op in _REPEATS:
            _, high, body = av
            if high > 1 and _ambiguous(body):
                return True
        if any(_risky(sub) for sub in _subpatterns(op, av) or ()):
            return True
    return False


def _ambiguous(body: Any) -> bool:
    """A repeated body of variable length, with no delimiter: a literal character that must
    occur in every repetition and that nothing else in the body can match."""
    low, high = body.getwidth()
    if low == high:
        return False
    items = list(body)
    while len(items) == 1 and items[0][0] is sre.SUBPATTERN:  # (group) around the whole body
        items = list(items[0][1][3])
    for i, (op, av) in enumerate(items):
        if op is sre.LITERAL:
            others = items[:i] + items[i + 1 :]
            char = chr(av)
            if not _can_match(others, {char, char.lower(), char.upper()}):
                return False
    return True


def _can_match(items: Any, chars: set[str]) -> bool:
    """Whether some character position in `items` may match one of `chars` (when unsure: yes)."""
    for op, av in items:
        if op is sre.AT:
            continue
        if op is sre.LITERAL:
            hit = chr(av) in chars
        elif op is sre.NOT_LITERAL:
            hit = bool(chars - {chr(av)})
        elif op is sre.IN:
            hit = any(_in_set(av, char) for char in chars)
        elif (subs := _subpatterns(op, av)) is not None:
            hit = any(_can_match(sub, chars) for sub in subs)
        else:  # ANY, back-references and anything this check does not model
            hit = True
        if hit:
            return True
    return False


def _in_set(items: Any, char: str) -> bool:
    negate = matched = False
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            matched |= char == chr(av)
        elif op is sre.RANGE:
            matched |= av[0] <= ord(char) <= av[1]
        elif op is sre.CATEGORY and str(av) in _CATEGORIES:
            matched |= re.fullmatch(_CATEGORIES[str(av)], char) is not None
        else:
            return True
    return matched != negate


def _subpatterns(op: Any, av: Any) -> list[Any] | None:
    """The nested patterns of one parsed item; None for an item that holds none."""
    if op in _REPEATS or op is sre.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is sre.SUBPATTERN:
        return [av[3]]
    if op is sre.BRANCH:
        return list(av[1])
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [av[1]]
    if op is sre.ATOMIC_GROUP:
        return [av]
    if op is sre.GROUPREF_EXISTS:
        return [sub for sub in av[1:] if sub is not None]
    return None
