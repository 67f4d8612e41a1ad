"""What a `text/event-stream` response says about its events (OpenAPI 3.2's `itemSchema`).

In 3.2 the media type's `itemSchema` describes one event: an object with `event`, `data`, `id`
and `retry` properties, often a `oneOf` of variants that each fix `event` with `const` (or an
`enum`) and describe `data` with `contentMediaType` / `contentSchema`. We read which event
types are declared and the fields of each one's data, for the tool's description and its
`event_type`. Without `itemSchema` (3.0, 3.1) nothing is known about the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..reader import join_path
from .refs import Resolver

MAX_VARIANTS = 64


@dataclass
class EventInfo:
    types: dict[str, list[str]] = field(default_factory=dict)  # type -> its data's fields
    open: bool = False  # some variant does not fix its type: others may come
    fields: list[str] = field(default_factory=list)  # the data's fields, when no type is fixed
    terminator: str | None = None  # a constant data such as "[DONE]"

    def only_type(self) -> str | None:
        return next(iter(self.types)) if len(self.types) == 1 and not self.open else None

    def describe(self) -> str:
        text = ""
        if self.types:
            parts = [
                f"{name} (fields: {', '.join(f)})" if f else name for name, f in self.types.items()
            ]
            text = f"Event types: {'; '.join(parts)}."
        elif self.fields:
            text = f"Each event's data has the fields: {', '.join(self.fields)}."
        if self.terminator is not None:
            text += f" The stream ends with the data {self.terminator!r}."
        return text.strip()


def event_info(resolver: Resolver, media: dict[str, Any], path: str) -> EventInfo:
    info = EventInfo()
    if "itemSchema" not in media:
        return info
    schema, spath = resolver.deref(media["itemSchema"], join_path(path, "itemSchema"))
    variants = _variants(resolver, schema, spath)
    for variant, vpath in variants:
        _read_variant(resolver, variant, vpath, schema, info)
    return info


def _variants(resolver: Resolver, schema: Any, path: str) -> list[tuple[dict[str, Any], str]]:
    if not isinstance(schema, dict):
        return []
    found: list[tuple[dict[str, Any], str]] = []
    for key in ("oneOf", "anyOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for i, branch in enumerate(branches[:MAX_VARIANTS]):
                node, bpath = resolver.deref(branch, f"{join_path(path, key)}[{i}]")
                if isinstance(node, dict):
                    found.append((node, bpath))
    return found or [(schema, path)]


def _read_variant(
    resolver: Resolver, variant: dict[str, Any], path: str, parent: Any, info: EventInfo
) -> None:
    properties = _properties(resolver, variant, path)
    if variant is not parent and isinstance(parent, dict):
        properties = {**_properties(resolver, parent, path), **properties}
    names = _constants(resolver, properties.get("event"), path)
    fields, terminator_only = _data(resolver, properties.get("data"), path, info)
    if not names:
        info.open = info.open or not terminator_only
        info.fields = info.fields or fields
        return
    for name in names:
        info.types.setdefault(name, fields)


def _data(resolver: Resolver, node: Any, path: str, info: EventInfo) -> tuple[list[str], bool]:
    """The fields of the data's JSON (`contentSchema`), and whether it is only a terminator.

    A constant string among the data's alternatives (OpenAI's `[DONE]`) is the terminator.
    """
    data, dpath = resolver.deref(node, join_path(path, "properties.data"))
    if not isinstance(data, dict):
        return [], False
    alternatives = [(data, dpath)]
    for key in ("oneOf", "anyOf"):
        if isinstance(data.get(key), list):
            for i, branch in enumerate(data[key][:MAX_VARIANTS]):
                alternatives.append(resolver.deref(branch, f"{join_path(dpath, key)}[{i}]"))
    fields: list[str] = []
    constants = 0
    for alternative, apath in alternatives:
        if not isinstance(alternative, dict):
            continue
        if isinstance(alternative.get("const"), str):
            info.terminator = alternative["const"]
            constants += 1
        content, cpath = resolver.deref(
            alternative.get("contentSchema"), join_path(apath, "contentSchema")
        )
        if isinstance(content, dict) and not fields:
            fields = list(_properties(resolver, content, cpath))[:32]
    return fields, constants > 0 and not fields


def _properties(resolver: Resolver, schema: dict[str, Any], path: str) -> dict[str, Any]:
    properties, _ = resolver.deref(schema.get("properties"), join_path(path, "properties"))
    return properties if isinstance(properties, dict) else {}


def _constants(resolver: Resolver, schema: Any, path: str) -> list[str]:
    node, _ = resolver.deref(schema, join_path(path, "properties.event"))
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("const"), str):
        return [node["const"]]
    values = node.get("enum")
    if isinstance(values, list) and all(isinstance(v, str) for v in values):
        return list(values)[:MAX_VARIANTS]
    return []
