"""The four subscription tools: subscribe, read_subscription, list_subscriptions, unsubscribe.

Thin MCP handlers over `subscriptions.Registry`. Their names are fixed, so a manual tool with
one of them is refused at load (`check_names`). Results have the call tools' batch shape plus
where the reader stands (`cursor`, `has_more`, `dropped`, `truncated`, `state`, `reason`), names
taken from the MCP triggers-and-events draft (`events/poll`), as JSON text and structured.
Arguments are checked against the tools' own input schemas, which refuse unknown names.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..calls.arguments import SHAPING_SCHEMA, plan_shaping
from ..calls.bridge import Bridge
from ..errors import ArgumentError, ManualError
from ..shaping import Shaper, Shaping
from ..subscriptions.registry import Read, Registry, summary

SUBSCRIBE, READ, LIST, UNSUBSCRIBE = (
    "subscribe",
    "read_subscription",
    "list_subscriptions",
    "unsubscribe",
)
NAMES = (SUBSCRIBE, READ, LIST, UNSUBSCRIBE)
Result = tuple[dict[str, Any], str, "str | None"]  # structured result, text style, shaping note

ANY_JSON: dict[str, Any] = {
    "anyOf": [
        {"type": "object"},
        {"type": "array"},
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "description": "event type ('message' if unnamed)"},
        "id": {"type": "string", "description": "the stream's last event id"},
        "data": {**ANY_JSON, "description": "decoded JSON when the data is JSON, else the text"},
        "received_at": {"type": "string", "description": "when the bridge got it (UTC, ms)"},
        "gap": {
            "type": "boolean",
            "description": "first event after a reconnect: events sent meanwhile may be missing",
        },
    },
    "required": ["event", "id", "data", "received_at"],
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subscription": {"type": "string"},
        "tool": {"type": "string"},
        "arguments": {"type": "object"},
        "event_types": {"type": "array", "items": {"type": "string"}},
        "match": {"type": "object"},
        "state": {"type": "string", "enum": ["connecting", "live", "reconnecting", "ended"]},
        "reason": {"type": "string", "description": "why it ended"},
        "buffered": {"type": "integer", "minimum": 0},
        "buffer_events": {"type": "integer", "minimum": 1},
        "dropped": {"type": "integer", "minimum": 0},
        "reconnects": {"type": "integer", "minimum": 0},
        "pinned": {"type": "boolean"},
        "age_s": {"type": "number"},
        "idle_s": {"type": "number", "description": "since the last read"},
        "expires_in_s": {"type": "number", "description": "when unread that long it ends"},
    },
    "required": ["subscription", "tool", "arguments", "state", "buffered", "dropped"],
}


READ_SHAPING_SCHEMA: dict[str, Any] = {
    **SHAPING_SCHEMA,
    "latest_per": {
        **SHAPING_SCHEMA["latest_per"],
        "description": "Return only the newest event per distinct value at this dotted path of "
        'the JSON data, e.g. "symbol", over everything buffered after the cursor: the current '
        "state of the feed; max_events caps the keys kept.",
    },
    "summary": {
        **SHAPING_SCHEMA["summary"],
        "description": "Return aggregates over everything buffered after the cursor (counts "
        "per type, first/last id and time, per field min/max/mean/last, top strings, true/false "
        "counts) instead of the events; events then holds the last max_events as samples.",
    },
}
"""The call tools' shaping arguments, described for a read of the buffer."""


def check_names(bridge: Bridge) -> None:
    """A manual tool named like a subscription tool would be shadowed: refuse it at load."""
    for name in NAMES:
        if name in bridge.tools:
            tool = bridge.tools[name]
            raise ManualError(
                f"{tool.manual.source}: tool {tool.spec.name!r} has the MCP name {name!r}, "
                "which the bridge's subscription tools use.",
                hint="Prefix the manual's tools by loading it as --manual NAME=PATH (together "
                "with another manual), or turn the subscription tools off with "
                "--no-subscriptions.",
            )


def describe_tools(registry: Registry) -> list[types.Tool]:
    """The four tools, with this bridge's tool names, ceilings and defaults in their schemas."""
    bridge, limits = registry.bridge, registry.limits
    call = bridge.limits
    annotations = types.ToolAnnotations(open_world_hint=True)
    return [
        types.Tool(
            name=SUBSCRIBE,
            title="Subscribe to a live feed",
            description="Keep a tool's upstream feed open in the background and buffer its "
            "events, so nothing is lost between reads. Connects before answering (errors are "
            "reported at once). The same tool, arguments and filters share one subscription. "
            "Then call read_subscription with the returned subscription id.",
            input_schema=_subscribe_input(registry),
            output_schema=_object(
                SUMMARY_SCHEMA,
                cursor={"type": "string", "description": "pass it to read_subscription"},
                joined={"type": "boolean", "description": "it already existed"},
            ),
            annotations=annotations,
        ),
        types.Tool(
            name=READ,
            title="Read a subscription",
            description="The events a subscription buffered since the cursor (default: where "
            "the previous read ended). dropped/truncated say whether the buffer overwrote any "
            "before they were read; has_more says more is buffered than was returned.",
            input_schema=_closed(
                {
                    "subscription": {"type": "string", "description": "the subscription id"},
                    "cursor": {"type": "string", "description": "from an earlier read"},
                    "max_events": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": call.max_max_events,
                        "default": call.default_max_events,
                    },
                    "wait_seconds": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": call.max_max_seconds,
                        "default": 0,
                        "description": "when nothing new is buffered, wait this long for it",
                    },
                    **READ_SHAPING_SCHEMA,
                },
                required=["subscription"],
            ),
            output_schema=read_output_schema(),
            annotations=annotations,
        ),
        types.Tool(
            name=LIST,
            title="List subscriptions",
            description="Every subscription: tool, arguments, state, buffered and dropped "
            f"counts, reconnects, age and idle time (unread for {limits.ttl_seconds:g} s, an "
            "unpinned one ends).",
            input_schema=_closed({}),
            output_schema={
                "type": "object",
                "properties": {
                    "subscriptions": {"type": "array", "items": SUMMARY_SCHEMA},
                    "count": {"type": "integer", "minimum": 0},
                },
                "required": ["subscriptions", "count"],
            },
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name=UNSUBSCRIBE,
            title="Unsubscribe",
            description="End a subscription and close its upstream connection.",
            input_schema=_closed({"subscription": {"type": "string"}}, required=["subscription"]),
            output_schema=SUMMARY_SCHEMA,
            annotations=types.ToolAnnotations(idempotent_hint=True),
        ),
    ]


def _subscribe_input(registry: Registry) -> dict[str, Any]:
    limits = registry.limits
    return _closed(
        {
            "tool": {
                "type": "string",
                "enum": list(registry.bridge.tools),
                "description": "the tool whose feed to follow",
            },
            "arguments": {"type": "object", "description": "the tool's own arguments"},
            "event_types": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "description": "keep only these types, as on a call",
            },
            "match": {
                "type": "object",
                "description": "keep events with these values, as on a call",
            },
            "buffer_events": {
                "type": "integer",
                "minimum": 1,
                "maximum": limits.max_buffer_events,
                "default": min(limits.default_buffer_events, limits.max_buffer_events),
                "description": "how many events to keep; the oldest go first (counted)",
            },
        },
        required=["tool"],
    )


def read_output_schema() -> dict[str, Any]:
    """The call tools' batch schema, with the reader's place added."""
    from .tools import BATCH_SCHEMA, STOP_REASONS  # here: tools.py imports this module

    batch = dict(BATCH_SCHEMA["properties"])
    batch["events"] = {"type": "array", "items": EVENT_SCHEMA}
    batch["stop_reason"] = {"type": "string", "enum": [*STOP_REASONS, "caught_up"]}
    base = {"type": "object", "properties": batch, "required": BATCH_SCHEMA["required"]}
    return _object(
        base,
        subscription={"type": "string"},
        cursor={"type": "string", "description": "pass it back to continue after this read"},
        has_more={"type": "boolean"},
        dropped={"type": "integer", "minimum": 0},
        truncated={"type": "boolean"},
        state={"type": "string"},
        reason={"type": "string"},
        hint={"type": "string"},
    )


def _object(base: dict[str, Any], **extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with more properties, all of them required except `reason` and `hint`."""
    optional = {"reason", "hint"}
    return {
        "type": "object",
        "properties": {**base["properties"], **extra},
        "required": [*base["required"], *(k for k in extra if k not in optional)],
    }


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


class SubscriptionTools:
    """Dispatches the four tools; `call` returns the structured result or raises BridgeError."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.tools = describe_tools(registry)
        self._validators = {
            tool.name: Draft202012Validator(tool.input_schema) for tool in self.tools
        }
        self._optional = {
            tool.name: set(tool.input_schema["properties"])
            - set(tool.input_schema.get("required", ()))
            for tool in self.tools
        }

    async def call(self, name: str, arguments: Mapping[str, Any]) -> Result:
        """The structured result, the text style (`format`) and the shaping note.

        Null is absent for an optional argument, as for a call's control arguments (hosts send
        null for what a model left empty); a required one still has to be given."""
        optional = self._optional[name]
        arguments = {k: v for k, v in arguments.items() if v is not None or k not in optional}
        if name != READ:
            self._check(name, arguments)
            return await self._answer(name, arguments), "json", None
        shaping = plan_shaping(arguments)  # before the schema: its errors say how to fix them
        self._check(name, arguments)
        return await self._read(arguments, shaping)
        return await self._answer(name, arguments), "json", None

    async def _answer(self, name: str, arguments: Mapping[str, Any]) -> Any:
        registry = self.registry
        if name == SUBSCRIBE:
            joined = await registry.subscribe(
                arguments["tool"],
                arguments.get("arguments", {}),
                event_types=arguments.get("event_types"),
                match=arguments.get("match"),
                buffer_events=arguments.get("buffer_events"),
            )
            item = self._summary(joined.record)
            return {**item, "cursor": joined.cursor, "joined": joined.joined}
        if name == LIST:
            items = [self._summary(record) for record in await registry.records()]
            return {"subscriptions": items, "count": len(items)}
        return self._summary(await registry.unsubscribe(arguments["subscription"]))

    async def _read(self, arguments: Mapping[str, Any], shaping: Shaping) -> Result:
        """A read, shaped like a call's batch: `latest_per` and `summary` fold everything
        buffered after the cursor (`max_events` then caps the keys or samples, and `max_bytes`
        applies to the shaped result); `fields` projects the events of a plain read. A read
        that shaping refuses moves no cursor."""
        registry, call = self.registry, self.registry.bridge.limits
        max_events = arguments.get("max_events", call.default_max_events)
        redact = registry.bridge.secrets.redact
        taken = max_events  # events the read takes, so the cursor moves past just those
        if shaping.reduces:  # all buffered, but no more than a summary aggregates
            taken = registry.limits.max_buffer_events
            if shaping.summary:
                taken = min(taken, call.max_summary_events)

        def shape(read: Read) -> None:
            shaper = Shaper(shaping, max_events=max_events, summary_limit=call.max_summary_events)
            for event in read.events:
                shaper.feed([event], _epoch(event["received_at"]))
            shaped = shaper.result(call.max_bytes if shaping.reduces else None)
            read.events, read.note = shaped.events, redact(shaped.note)  # may echo an argument
            if shaped.folded is not None:
                read.shaped["folded"] = shaped.folded
            if shaped.summary is not None:
                read.shaped["summary"] = shaped.summary
            read.skipped["filtered"] += shaped.filtered
            read.skipped.update(shaped.skipped)

        read = await registry.read(
            arguments["subscription"],
            cursor=arguments.get("cursor"),
            max_events=taken,
            max_bytes=None if shaping.reduces else call.max_bytes,
            wait_seconds=arguments.get("wait_seconds", 0),
            shape=shape if shaping.shapes else None,
        )
        return read.to_dict(), shaping.format, read.note

    def _summary(self, record: Any) -> dict[str, Any]:
        return summary(
            record, self.registry.limits.ttl_seconds, self.registry.bridge.secrets.redact
        )

    def _check(self, name: str, arguments: Mapping[str, Any]) -> None:
        error = best_match(self._validators[name].iter_errors(dict(arguments)))
        if error is None:
            return
        path = ".".join(str(part) for part in error.absolute_path) or None
        where = f"argument {path!r}" if path else "the arguments"
        ceiling = {
            "buffer_events": "--subscription-buffer-limit",
            "max_events": "--max-events-limit",
            "wait_seconds": "--max-seconds-limit",
        }.get(path or "")
        hint = "See the tool's input schema."
        if error.validator == "maximum" and ceiling:
            hint = f"Pass at most {error.validator_value} (the operator's {ceiling})."
        elif error.validator == "enum" and path == "tool":
            hint = f"Subscribe to one of: {', '.join(self.registry.bridge.tools)}."
        message = error.message if len(error.message) <= 200 else error.message[:199] + "…"
        raise ArgumentError(
            f"Tool {name!r}: {where} is invalid: {message}.", argument=path, hint=hint
        )


def _epoch(received_at: str) -> float:
    """A buffered event's `received_at` (UTC, ISO 8601) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(received_at).timestamp()
