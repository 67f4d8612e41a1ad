"""Every tool schema the bridge lists passes the checks of MCP Inspector's `tools/list --strict`.

`strict_findings` below restates the Inspector's rules (2.12.0, `core/json/schemaLint.ts`, read
in node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js) independently of
`mcp_sse_bridge.manual.portability`, and the table of cases pins both to what the Inspector
reports; `.ci/inspector-strict` runs the Inspector itself over stdio in both protocol eras.
The tools are listed through a real MCP client, in both eras too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import mcp
import pytest
from jsonschema import Draft202012Validator

from mcp_sse_bridge.calls.bridge import Bridge, Limits
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, Manual, load_manual, parse_manual
from mcp_sse_bridge.manual.portability import strict_problems
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.subscription_tools import NAMES as SUBSCRIPTION_TOOLS
from mcp_sse_bridge.server.tools import BATCH_SCHEMA, build_server

pytestmark = pytest.mark.anyio
MODES = pytest.mark.parametrize("mode", ["legacy", "auto"])
MANUALS = sorted((Path(__file__).parent.parent / "manuals").glob("*.json"))

KeyPath = tuple[str | int, ...]

# -- the Inspector's rules ----------------------------------------------------------------------

BOOLEAN_OK = {
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
}
ONE = {"items", "contains", "not", "propertyNames", "if", "then", "else", "contentSchema"}
ONE |= BOOLEAN_OK
MANY = {"allOf", "anyOf", "oneOf", "prefixItems"}
NAMED = {"properties", "patternProperties", "dependentSchemas", "dependencies", "$defs"}
NAMED |= {"definitions"}
ASSERTIONS = {"type", "enum", "const", "format", "required", "dependentRequired"}
ASSERTIONS |= {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
ASSERTIONS |= {"maxLength", "minLength", "pattern", "contentMediaType", "contentEncoding"}
ASSERTIONS |= {"maxItems", "minItems", "uniqueItems", "maxContains", "minContains"}
ASSERTIONS |= {"maxProperties", "minProperties", "$ref", "$dynamicRef", "$recursiveRef"}
CONSTRAINING = ASSERTIONS | (ONE | MANY | NAMED) - {"if", "then", "else", "$defs", "definitions"}
JSON_TYPES = {"null", "boolean", "object", "array", "number", "string", "integer"}


def strict_findings(schema: Any) -> list[tuple[KeyPath, str]]:
    """(path, rule) for each finding of the Inspector's schema lint, errors and warnings alike."""
    with_ids = any(isinstance(n, dict) and n.get("$id") for n, _, _ in nodes(schema))
    found = []
    for node, path, keyword in nodes(schema):
        if isinstance(node, bool):
            if keyword not in BOOLEAN_OK:
                found.append((path, "boolean-schema"))
            continue
        kind = node.get("type")
        if (
            isinstance(kind, list)
            and kind
            and all(isinstance(t, str) and t in JSON_TYPES for t in kind)
            and len(set(kind)) == len(kind)
        ):
            found.append((path, "type-union"))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref and not ref.startswith("#") and not with_ids:
            found.append((path, "remote-ref"))
        paired_if = "if" in node and ("then" in node or "else" in node)
        if not (CONSTRAINING & node.keys() or paired_if) and keyword != "not":
            found.append((path, "untyped-schema"))
    return found


def nodes(
    node: Any, path: KeyPath = (), keyword: str | None = None, depth: int = 0
) -> Iterator[tuple[Any, KeyPath, str | None]]:
    """(schema, path, the keyword it sits under): objects and booleans, 64 levels deep at most."""
    if depth > 64 or not isinstance(node, dict | bool):
        return
    yield node, path, keyword
    if isinstance(node, bool):
        return
    for key, value in node.items():
        if key in NAMED and isinstance(value, dict):
            children = [((*path, key, name), sub) for name, sub in value.items()]
        elif (key in MANY or key == "items") and isinstance(value, list):
            children = [((*path, key, i), sub) for i, sub in enumerate(value)]
        elif key in ONE:
            children = [((*path, key), value)]
        else:
            continue
        for child_path, child in children:
            yield from nodes(child, child_path, key, depth + 1)


# What the Inspector reports for each schema (checked against its own lint code, 2.12.0).
CASES: list[tuple[dict[str, Any], list[tuple[KeyPath, str]]]] = [
    ({"type": "object", "properties": {"a": {"type": "string"}}}, []),
    ({"description": "anything"}, [((), "untyped-schema")]),
    (
        {"properties": {"a": {"description": "x", "default": 1}}},
        [(("properties", "a"), "untyped-schema")],
    ),
    (
        {"properties": {"a": True, "b": False}},
        [(("properties", "a"), "boolean-schema"), (("properties", "b"), "boolean-schema")],
    ),
    ({"type": "object", "additionalProperties": True, "unevaluatedProperties": False}, []),
    ({"type": "array", "items": True}, [(("items",), "boolean-schema")]),
    (
        {"type": "array", "prefixItems": [{"type": "string"}, {}]},
        [(("prefixItems", 1), "untyped-schema")],
    ),
    ({"not": {}}, []),
    ({"if": {"type": "string"}}, [((), "untyped-schema")]),
    ({"if": {"type": "string"}, "then": {"minLength": 1}}, []),
    ({"anyOf": [{"type": "string"}, {"title": "t"}]}, [(("anyOf", 1), "untyped-schema")]),
    ({"type": ["string", "null"]}, [((), "type-union")]),
    ({"type": ["string", "string"]}, []),
    ({"anyOf": [{"type": t} for t in ("string", "null")]}, []),
    ({"$defs": {"d": {}}, "$ref": "#/$defs/d"}, [(("$defs", "d"), "untyped-schema")]),
    ({"$ref": "https://example.com/s.json"}, [((), "remote-ref")]),
    ({"$id": "https://example.com/root", "$ref": "other.json"}, []),
    (
        {"type": "object", "dependencies": {"a": ["b"], "c": {"x-note": 1}}},
        [(("dependencies", "c"), "untyped-schema")],
    ),
    ({"type": "string", "contentSchema": {}}, [(("contentSchema",), "untyped-schema")]),
]


@pytest.mark.parametrize(("schema", "expected"), CASES, ids=[json.dumps(s) for s, _ in CASES])
def test_the_rules_flag_what_the_inspector_flags_and_the_bridge_warns_of_the_same(
    schema: dict[str, Any], expected: list[tuple[KeyPath, str]]
) -> None:
    assert sorted(strict_findings(schema)) == sorted(expected)
    assert sorted(p.path for p in strict_problems(schema)) == sorted(path for path, _ in expected)


def test_the_rules_stop_sixty_four_levels_down_as_the_inspector_does() -> None:
    deep: dict[str, Any] = {}
    for _ in range(65):
        deep = {"type": "array", "items": deep}
    assert strict_findings(deep) == strict_problems(deep) == []
    assert strict_findings(deep["items"]) == [(("items",) * 64, "untyped-schema")]


# -- the schemas the bridge lists ---------------------------------------------------------------


def shipped_manuals() -> list[Manual]:
    packaged = resources.files("mcp_sse_bridge.demo").joinpath("demo.json")
    with resources.as_file(packaged) as demo:
        return [load_manual(str(path)) for path in [*MANUALS, demo]]


async def listed(bridge: Bridge, mode: str) -> list[Any]:
    async with mcp.Client(build_server(bridge), mode=mode) as client:  # type: ignore[arg-type]
        return (await client.list_tools()).tools


@MODES
async def test_every_tool_of_every_shipped_manual_lists_strict_input_and_output_schemas(
    mode: str,
) -> None:
    manuals = shipped_manuals()
    tools = await listed(Bridge(manuals, variables=Variables(environ={})), mode)
    assert len(tools) == sum(len(m.tools) for m in manuals) + len(SUBSCRIPTION_TOOLS) >= 12
    for tool in tools:
        assert strict_findings(tool.input_schema) == [], tool.name
        assert strict_findings(tool.output_schema) == [], tool.name
        if tool.name not in SUBSCRIPTION_TOOLS:
            assert set(RESERVED_ARGUMENTS) <= set(tool.input_schema["properties"])


def control_manual() -> Manual:
    """One tool with inputs and no event type, one with an event type and no inputs at all."""
    template = {"call_template_type": "sse", "url": "https://feed.example/ticks"}
    doc = {
        "utcp_version": "1.0.1",
        "manual_version": "1.0.0",
        "tools": [
            {
                "name": "ticks",
                "description": "Ticks.",
                "inputs": {"type": "object", "properties": {"symbol": {"type": "string"}}},
                "tool_call_template": template,
            },
            {"name": "jobs", "tool_call_template": {**template, "event_type": "progress"}},
        ],
    }
    return parse_manual(json.dumps(doc), name="m", source="m.json", trusted=True)


@MODES
@pytest.mark.parametrize(
    "limits",
    [
        Limits(),
        Limits(default_max_events=1, max_max_events=1, default_max_seconds=0.5),
        Limits(max_max_seconds=3600, idle_seconds=2, max_bytes=None),
    ],
    ids=["default", "tight", "loose"],
)
async def test_the_generated_control_arguments_are_strict_whatever_the_limits_and_event_type(
    mode: str, limits: Limits
) -> None:
    bridge = Bridge([control_manual()], variables=Variables(environ={}), limits=limits)
    tools = await listed(bridge, mode)
    assert [tool.name for tool in tools] == ["ticks", "jobs", *SUBSCRIPTION_TOOLS]
    for tool in tools:
        if tool.name not in SUBSCRIPTION_TOOLS:
            assert set(RESERVED_ARGUMENTS) <= set(tool.input_schema["properties"])
        assert strict_findings(tool.input_schema) == [], tool.name
        assert strict_findings(tool.output_schema) == [], tool.name


SAMPLES = [{"a": [1, {"b": None}]}, [], ["x", 2], "text", "", 0, -(2**70), 1.5, True, False, None]


def test_event_data_is_declared_as_any_json_value_without_a_list_of_types() -> None:
    data = BATCH_SCHEMA["properties"]["events"]["items"]["properties"]["data"]
    assert "type" not in data
    assert all(set(branch) == {"type"} for branch in data["anyOf"])
    events = [{"event": "message", "id": str(i), "data": value} for i, value in enumerate(SAMPLES)]
    batch = {
        "events": events,
        "count": len(events),
        "stop_reason": "closed",
        "last_event_id": str(len(events) - 1),
        "elapsed_s": 0.1,
        "reconnects": 0,
        "skipped": {"filtered": 0, "oversized": 0},
    }
    Draft202012Validator(BATCH_SCHEMA).validate(batch)
    for value in SAMPLES:
        Draft202012Validator(data).validate(value)


# -- manual inputs: served as written, with a warning at load -----------------------------------


def loose_manual(properties: dict[str, Any]) -> Manual:
    inputs = {"type": "object", "properties": properties}
    tool = {
        "name": "loose",
        "inputs": inputs,
        "tool_call_template": {"call_template_type": "sse", "url": "https://feed.example/e"},
    }
    doc = {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [tool]}
    return parse_manual(json.dumps(doc), name="loose", source="loose.json", trusted=True)


@MODES
async def test_a_manual_with_untyped_inputs_warns_at_load_and_is_served_as_written(
    mode: str,
) -> None:
    properties = {"q": {"description": "any query"}, "n": {"type": ["integer", "null"]}}
    manual = loose_manual(properties)
    assert manual.warnings == [
        "loose.json: tools[0].inputs.properties.q has no validation keyword (it accepts any "
        'value), which strict MCP clients flag: declare what the value is, e.g. "type": "string"',
        "loose.json: tools[0].inputs.properties.n gives a list as its type, which strict MCP "
        'clients flag: write "anyOf": [{"type": "integer"}, {"type": "null"}] instead',
    ]
    tool, *others = await listed(Bridge([manual], variables=Variables(environ={})), mode)
    assert [other.name for other in others] == list(SUBSCRIPTION_TOOLS)
    assert {name: tool.input_schema["properties"][name] for name in properties} == properties
    assert strict_findings(tool.input_schema) == [
        (("properties", "q"), "untyped-schema"),
        (("properties", "n"), "type-union"),
    ]


def test_past_three_places_one_warning_counts_the_rest() -> None:
    manual = loose_manual({name: {} for name in "abcde"})
    assert len(manual.warnings) == 4
    assert manual.warnings[:3] == [
        f"loose.json: tools[0].inputs.properties.{name} has no validation keyword (it accepts "
        'any value), which strict MCP clients flag: declare what the value is, e.g. "type": '
        '"string"'
        for name in "abc"
    ]
    assert manual.warnings[3] == (
        "loose.json: tools[0].inputs: 2 more places in these inputs that strict MCP clients flag"
    )
