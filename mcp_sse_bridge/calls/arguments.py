"""A call's arguments: the control arguments' schemas, and their validation into a plan.

Control arguments above the server's ceilings are refused with the ceiling in the message, not
clamped: a caller asking for 5000 events should learn that it gets at most 1000. An argument
the manual's inputs do not declare is refused (UTCP would send it as a query parameter),
unless the schema itself allows extra properties. The manual's `event_type` is the tool's own
filter; `event_types` may only narrow it. The shaping arguments (`fields`, `latest_per`,
`summary`, `format`) become a `shaping.Shaping` (`plan_shaping`, also for other tools that
shape a batch).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from ..errors import ArgumentError, ManualError
from ..manual import RESERVED_ARGUMENTS, ToolSpec
from ..shaping import Path, Shaping
from ..shaping.paths import MAX_PATH_CHARS, MAX_PATH_SEGMENTS
from .filters import Bounds

_ID_BREAKS = re.compile("[\r\n\x00\ud800-\udfff]")  # and lone surrogates: not UTF-8
# Input schemas that allow or define arguments beyond `properties`: no undeclared-argument check.
_OPEN_SCHEMA_KEYS = {
    "additionalProperties",
    "patternProperties",
    "unevaluatedProperties",
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "dependentSchemas",
}


@dataclass(frozen=True)
class Limits:
    """Server-side defaults and hard ceilings for the control arguments."""

    default_max_events: int = 10
    max_max_events: int = 1000
    default_max_seconds: float = 15.0
    max_max_seconds: float = 300.0
    idle_seconds: float | None = None
    max_bytes: int | None = 256 * 1024
    connect_timeout: float = 10.0
    max_connections: int = 1024  # open upstream streams at once, across all calls
    max_summary_events: int = 100_000  # events one `summary` aggregates at most


@dataclass(frozen=True)
class CallPlan:
    """A validated call: the manual's arguments and the parsed control arguments."""

    arguments: dict[str, Any]
    bounds: Bounds
    event_types: frozenset[str] | None
    match: dict[str, Any] | None
    last_event_id: str
    shaping: Shaping


def plan_call(
    name: str,
    spec: ToolSpec,
    validator: Validator,
    limits: Limits,
    arguments: Mapping[str, Any],
) -> CallPlan:
    """Validate one call's arguments: the manual's against its schema, the control ones here."""
    if not isinstance(arguments, Mapping):
        raise ArgumentError(
            f"Tool {name!r} takes an object of arguments, not {type(arguments).__name__}.",
            hint="Pass the arguments as a JSON object.",
        )
    manual_args = {k: v for k, v in arguments.items() if k not in RESERVED_ARGUMENTS}
    _check_manual_arguments(name, spec, validator, manual_args)
    types = _strings(arguments, "event_types")
    declared = spec.template.event_type
    if types is not None and declared is not None and declared not in types:
        raise ArgumentError(
            f"Tool {name!r} only returns events of type {declared!r}; event_types "
            f"{sorted(types)} excludes it.",
            argument="event_types",
            hint=f"Leave event_types out, or include {declared!r}.",
        )
    bounds = Bounds(
        max_events=_number(
            arguments, "max_events", limits.default_max_events, limits.max_max_events, int
        ),
        max_seconds=_number(
            arguments, "max_seconds", limits.default_max_seconds, limits.max_max_seconds, float
        ),
        idle_seconds=limits.idle_seconds,
        max_bytes=limits.max_bytes,
        until_event=_text(arguments, "until_event"),
        summary_events=limits.max_summary_events,
    )
    return CallPlan(
        arguments=manual_args,
        bounds=bounds,
        event_types=types,
        match=_match(arguments),
        last_event_id=_last_event_id(arguments),
        shaping=plan_shaping(arguments),
    )


def _check_manual_arguments(
    name: str, spec: ToolSpec, validator: Validator, manual_args: dict[str, Any]
) -> None:
    """The manual's own arguments against its inputs schema (undeclared ones refused first)."""
    _refuse_undeclared(name, spec.inputs, manual_args)
    try:
        error = best_match(validator.iter_errors(manual_args))
    except Unresolvable as exc:  # `parse_manual` refuses these; a Manual built in code may not
        raise ManualError(
            f"Tool {name!r}: the $ref {exc.ref!r} in its inputs schema cannot be resolved.",
            hint="Fix the $ref in the manual's inputs; only refs inside them are followed.",
        ) from None
    except RecursionError:  # a recursive schema and arguments nested thousands deep
        raise ArgumentError(
            f"Tool {name!r}: the arguments are nested too deeply to be validated.",
            hint="Pass arguments nested less deeply.",
        ) from None
    if error is not None:
        raise _schema_error(name, error)


def control_schema(limits: Limits, declared: str | None) -> dict[str, dict[str, Any]]:
    """The control arguments' JSON schemas, with this server's ceilings and defaults."""
    types = "Only return events of these types ('message' for unnamed events)."
    if declared is not None:
        types = f"This tool returns only {declared!r} events; " + types[0].lower() + types[1:]
    schema: dict[str, dict[str, Any]] = {
        "max_events": {
            "type": "integer",
            "minimum": 1,
            "maximum": limits.max_max_events,
            "default": limits.default_max_events,
            "description": "Return once this many matching events have arrived.",
        },
        "max_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": limits.max_max_seconds,
            "default": limits.default_max_seconds,
            "description": "Wait at most this long; what arrived by then is returned "
            "(not an error).",
        },
        "last_event_id": {
            "type": "string",
            "description": "Resume after this event: pass the last_event_id of the previous "
            "result (sent upstream as Last-Event-ID).",
        },
        "until_event": {
            "type": "string",
            "minLength": 1,
            "description": "Stop after the first event of this type; it is included even "
            "if the filters would drop it.",
        },
        "event_types": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "description": types,
        },
        "match": {
            "type": "object",
            "description": "Only return events whose JSON data has these values at these "
            'dotted paths, e.g. {"symbol": "AAPL", "quote.venue": "X"}.',
        },
        **SHAPING_SCHEMA,
    }
    return {name: schema[name] for name in RESERVED_ARGUMENTS}


MAX_FIELDS = 50  # paths in one `fields`
SHAPING_SCHEMA: dict[str, dict[str, Any]] = {
    "fields": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "maxItems": MAX_FIELDS,
        "description": "Keep only these dotted paths of each event's JSON data, e.g. "
        '["symbol", "quote.price"] (nested shape kept, missing paths left out; text data is '
        "returned as it is). With summary, only these fields are aggregated.",
    },
    "latest_per": {
        "type": "string",
        "minLength": 1,
        "description": "Return only the newest event per distinct value at this dotted path of "
        'the JSON data, e.g. "symbol": the current state of the feed. Collects until '
        "max_seconds, until_event or the end of the stream; max_events caps the keys kept.",
    },
    "summary": {
        "type": "boolean",
        "default": False,
        "description": "Return aggregates over every event until the call ends (counts per "
        "type, first/last id and time, per field min/max/mean/last, top strings, true/false "
        "counts) instead of the events; events then holds the last max_events as samples.",
    },
    "format": {
        "type": "string",
        "enum": ["json", "lines"],
        "default": "json",
        "description": 'The text content: "json" (the batch as JSON) or "lines" (a header line '
        "and one compact line per event, fewer tokens); structuredContent is the same either way.",
    },
}


def plan_shaping(arguments: Mapping[str, Any]) -> Shaping:
    """The shaping arguments of a call, validated (names, types, paths); null is absent, as
    for every optional control argument."""
    fields = arguments.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not fields or len(fields) > MAX_FIELDS:
            raise ArgumentError(
                f"fields must be a list of 1 to {MAX_FIELDS} dotted paths, got {_got(fields)}.",
                argument="fields",
                hint='Pass e.g. fields=["symbol", "quote.price"]; leave it out to keep all.',
            )
        fields = tuple(_path(item, "fields") for item in fields)
    latest = arguments.get("latest_per")
    summary = arguments.get("summary")
    summary = False if summary is None else summary
    if not isinstance(summary, bool):
        raise ArgumentError(
            f"summary must be true or false, got {_got(summary)}.",
            argument="summary",
            hint="Pass summary=true for aggregates instead of events, or leave it out.",
        )
    form = arguments.get("format")
    form = "json" if form is None else form
    if form not in ("json", "lines"):
        raise ArgumentError(
            f'format must be "json" or "lines", got {_got(form)}.',
            argument="format",
            hint='Pass format="lines" for one line per event, or leave it out for JSON.',
        )
    return Shaping(
        fields=fields,
        latest_per=None if latest is None else _path(latest, "latest_per"),
        summary=summary,
        format=form,
    )


def _path(value: Any, name: str) -> Path:
    """A dotted path: a non-empty string whose segments are not empty, bounded in length."""
    if not isinstance(value, str) or not value or "" in (path := tuple(value.split("."))):
        raise ArgumentError(
            f'{name} takes dotted paths like "quote.price", got {_got(value)}.',
            argument=name,
            hint="Name a key of the events' JSON data; separate nested keys with dots, and use "
            "a number for a list item (items.0.id).",
        )
    if len(value) > MAX_PATH_CHARS or len(path) > MAX_PATH_SEGMENTS:
        raise ArgumentError(
            f"{name}: the path {_got(value)} has {len(value):,} characters and {len(path):,} "
            f"segments; a path has at most {MAX_PATH_CHARS} and {MAX_PATH_SEGMENTS}.",
            argument=name,
            hint="Name a shorter path into the events' JSON data.",
        )
    return path


def argument_validator(inputs: dict[str, Any]) -> Validator:
    """The tool's argument validator; its empty registry means no `$ref` is ever fetched."""
    return validator_for(inputs, default=Draft202012Validator)(inputs, registry=Registry())


def _refuse_undeclared(tool: str, inputs: dict[str, Any], arguments: Mapping[str, Any]) -> None:
    """An argument the manual does not declare is a typo far more often than a wish to send an
    extra query parameter, so it is refused unless the schema says what extra ones may be."""
    if _OPEN_SCHEMA_KEYS & inputs.keys():
        return
    declared = inputs.get("properties", {})
    for key in arguments:
        if key not in declared:
            known = ", ".join([*declared, *RESERVED_ARGUMENTS])
            raise ArgumentError(
                f"Tool {tool!r} has no argument {_short(key, 60)!r}.",
                argument=_short(key, 60),
                hint=f"Its arguments are: {known}.",
            )


def _schema_error(tool: str, error: ValidationError) -> ArgumentError:
    """Name the argument (as a path) and say what is wrong with it and what is expected."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    path = path.lstrip(".")
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        name = f"{path}.{missing[0]}" if path else missing[0]
        expected = error.schema.get("properties", {}).get(missing[0], {})
        return ArgumentError(
            f"Tool {tool!r}: missing required argument {name!r}.",
            argument=name,
            hint=f"Pass {name!r}" + (f" ({_short(expected)})." if expected else "."),
        )
    where = f"argument {path!r}" if path else "the arguments"
    return ArgumentError(
        f"Tool {tool!r}: {where} is invalid: {_short(error.message)}.",
        argument=path or None,
        hint=f"Expected: {_short(error.schema)}.",
    )


def _short(value: Any, limit: int = 200) -> str:
    """`value` as JSON (strings as they are), cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _got(value: Any) -> str:
    """A caller's value quoted as JSON, so that "5" and 5 look different."""
    return _short(json.dumps(value, default=str), 60)


def _number(
    arguments: Mapping[str, Any], name: str, default: float, ceiling: float, kind: type
) -> Any:
    """A control number: the default when absent, refused (not clamped) outside its range."""
    value = arguments.get(name)
    if value is None:
        return default
    whole = kind is int
    allowed = f"{'a whole number from 1' if whole else 'a number above 0'} up to {ceiling:g}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (whole and value != int(value))
    ):
        raise ArgumentError(
            f"{name} must be {allowed}, got {_got(value)}.",
            argument=name,
            hint=f"Pass {allowed}.",
        )
    if value > ceiling:
        raise ArgumentError(
            f"{name}={value:g} is above this server's ceiling of {ceiling:g}.",
            argument=name,
            hint=f"Pass at most {ceiling:g} (the server's operator sets this ceiling).",
        )
    if value < 1 if whole else value <= 0:
        raise ArgumentError(
            f"{name}={value:g} is too small.", argument=name, hint=f"Pass {allowed}."
        )
    return kind(value)


def _text(arguments: Mapping[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ArgumentError(
            f"{name} must be a non-empty string, got {_got(value)}.",
            argument=name,
            hint=f"Pass an event type, e.g. {name}='done'.",
        )
    return value


def _strings(arguments: Mapping[str, Any], name: str) -> frozenset[str] | None:
    value = arguments.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ArgumentError(
            f"{name} must be a non-empty list of event types, got {_got(value)}.",
            argument=name,
            hint=f'Pass e.g. {name}=["price_update"]; leave it out to keep every type.',
        )
    return frozenset(value)


def _match(arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    value = arguments.get("match")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ArgumentError(
            f"match must be an object of dotted paths to values, got {_got(value)}.",
            argument="match",
            hint='Pass e.g. match={"symbol": "AAPL", "quote.venue": "X"}.',
        )
    if len(value) > MAX_FIELDS:
        raise ArgumentError(
            f"match has {len(value):,} paths; at most {MAX_FIELDS}.",
            argument="match",
            hint="Match on fewer paths.",
        )
    for key in value:
        if len(key) > MAX_PATH_CHARS or key.count(".") >= MAX_PATH_SEGMENTS:
            raise ArgumentError(
                f"match: the path {_got(key)} has {len(key):,} characters and "
                f"{key.count('.') + 1:,} segments; a path has at most {MAX_PATH_CHARS} and "
                f"{MAX_PATH_SEGMENTS}.",
                argument="match",
                hint="Name a shorter path into the events' JSON data.",
            )
    return value


def _last_event_id(arguments: Mapping[str, Any]) -> str:
    """Any text an event stream can give as an id: everything but CR, LF and NUL (the parser
    never yields those), sent on as UTF-8, so no lone surrogate either."""
    value = arguments.get("last_event_id")
    if value is None:
        return ""
    if not isinstance(value, str) or _ID_BREAKS.search(value):
        raise ArgumentError(
            "last_event_id must be a single-line string without NUL, as a previous result "
            "returned it.",
            argument="last_event_id",
            hint="Pass the last_event_id of the previous result unchanged, or leave it out.",
        )
    return value
