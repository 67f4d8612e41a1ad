"""The JSON schema of a `summary` (part of the tools' output schema, `server.BATCH_SCHEMA`).

Every node carries a validation keyword (`type`), so a strict host checks all of it.
"""

from __future__ import annotations

from typing import Any

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_MOMENT: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
}
_FIELD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": _COUNT,
        "number": {
            "type": "object",
            "properties": {
                "count": _COUNT,
                "min": {"type": "number"},
                "max": {"type": "number"},
                "mean": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "last": {"type": "number"},
            },
        },
        "string": {
            "type": "object",
            "properties": {
                "count": _COUNT,
                "distinct": _COUNT,
                "distinct_capped": {"type": "boolean"},
                "top": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"value": {"type": "string"}, "count": _COUNT},
                    },
                },
            },
        },
        "boolean": {"type": "object", "properties": {"true": _COUNT, "false": _COUNT}},
        "null": _COUNT,
        "other": _COUNT,
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "only with summary: aggregates over every event the call accepted",
    "properties": {
        "count": _COUNT,
        "by_event": {"type": "object", "additionalProperties": _COUNT},
        "first": _MOMENT,
        "last": _MOMENT,
        "fields": {"type": "object", "additionalProperties": _FIELD},
        "values": {**_FIELD, "description": "the data that is not a JSON object, as one field"},
        "text": {**_COUNT, "description": "events whose data is a string"},
        "fields_capped": {"type": "boolean"},
        "fields_over_budget": {**_COUNT, "description": "fields left out to fit max_bytes"},
        "limit_reached": {"type": "boolean"},
    },
}
