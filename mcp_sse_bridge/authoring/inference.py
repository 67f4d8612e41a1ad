"""A JSON schema inferred from sample values: the shape of an event type's data, as seen.

`Sketch` takes samples one at a time and keeps only what the schema needs, so its memory is
bounded whatever the stream sends: at most `MAX_PROPERTIES` keys per object, `MAX_DEPTH` levels
(deeper values are any value), and a handful of distinct short strings per place (for enums).
The schema says what was seen, not what the API promises: `required` holds the keys present in
every sampled object, and a string is an `enum` only when few distinct values came often.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 8
MAX_PROPERTIES = 64
ENUM_MAX = 5  # distinct values at most, for a string to become an enum
ENUM_MIN_SAMPLES = 3
ENUM_MAX_LENGTH = 40  # longer strings are text, not a code

_ORDER = ("null", "boolean", "integer", "number", "string", "array", "object")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Sketch:
    """What the samples at one place of the data had in common."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.types: set[str] = set()
        self.objects = 0  # how many samples were objects
        self.present: dict[str, int] = {}  # key -> in how many of those objects
        self.properties: dict[str, Sketch] = {}
        self.more_keys = False  # keys beyond MAX_PROPERTIES were seen
        self.items: Sketch | None = None
        self.strings = 0
        self.distinct: set[str] | None = set()  # None once too many or too long

    def add(self, value: Any) -> None:
        kind = json_type(value)
        self.types.add(kind)
        if self.depth >= MAX_DEPTH:
            return
        if kind == "object":
            self._add_object(value)
        elif kind == "array":
            if self.items is None:
                self.items = Sketch(self.depth + 1)
            for item in value:
                self.items.add(item)
        elif kind == "string":
            self.strings += 1
            if self.distinct is not None:
                self.distinct.add(value)
                if len(value) > ENUM_MAX_LENGTH or len(self.distinct) > ENUM_MAX:
                    self.distinct = None

    def _add_object(self, value: dict[str, Any]) -> None:
        self.objects += 1
        for key, item in value.items():
            sketch = self.properties.get(key)
            if sketch is None:
                if len(self.properties) >= MAX_PROPERTIES:
                    self.more_keys = True
                    continue
                sketch = self.properties[key] = Sketch(self.depth + 1)
            self.present[key] = self.present.get(key, 0) + 1
            sketch.add(item)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of everything added (`{}` before the first sample)."""
        types = [kind for kind in _ORDER if kind in self.types]
        if "integer" in types and "number" in types:
            types.remove("integer")
        if not types:
            return {}
        schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        if self.depth >= MAX_DEPTH:
            return schema
        if self.properties:
            schema["properties"] = {key: s.schema() for key, s in self.properties.items()}
            required = [key for key, n in self.present.items() if n == self.objects]
            if required:
                schema["required"] = required
        if self.items is not None and self.items.types:
            schema["items"] = self.items.schema()
        if self._is_enum():
            schema["enum"] = sorted(self.distinct or ())
        return schema

    def _is_enum(self) -> bool:
        if self.types != {"string"} or not self.distinct:
            return False
        return self.strings >= ENUM_MIN_SAMPLES and len(self.distinct) <= self.strings // 2

    def fields(self) -> str:
        """The top-level keys of object data as `name (type)`, for a tool description."""
        parts = []
        for key, sketch in self.properties.items():
            types = sketch.schema().get("type", "any")
            parts.append(f"{key} ({'|'.join(types) if isinstance(types, list) else types})")
        if self.more_keys:
            parts.append("...")
        return ", ".join(parts)
