"""Manual loading: the UTCP 1.x and 0.x shapes, every error message, URLs, tool names."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sse_bridge.errors import ManualError
from mcp_sse_bridge.manual import (
    RESERVED_ARGUMENTS,
    ApiKeyAuth,
    Manual,
    OAuth2Auth,
    ToolSpec,
    load_manual,
    parse_manual,
    tool_names,
)
from mcp_sse_bridge.manual import loading as manual_module
from tests.sse_server import Request, Response, serve_in_thread, wait_disconnect

MANUALS = Path(__file__).resolve().parent.parent / "manuals"
SOURCE = "manuals/x.json"


def template(**fields: Any) -> dict[str, Any]:
    return {"call_template_type": "sse", "url": "https://api.example.com/events", **fields}


def tool(name: str = "events", **fields: Any) -> dict[str, Any]:
    return {"name": name, "tool_call_template": template(), **fields}


def document(*tools: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": list(tools), **fields}


def parse(data: Any, *, trusted: bool = True) -> Manual:
    text = data if isinstance(data, str | bytes) else json.dumps(data)
    return parse_manual(text, name="x", source=SOURCE, trusted=trusted)


def error(data: Any) -> str:
    with pytest.raises(ManualError) as info:
        parse(data)
    return str(info.value)


# -- the example manuals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "tool_name", "event_type"),
    [
        ("stocks.json", "stream_stock_prices", "price_update"),
        ("logs.json", "monitor_logs", "log_entry"),
        ("metrics.json", "stream_metrics", "metric_update"),
        ("notifications.json", "stream_notifications", "notification"),
    ],
)
def test_example_manuals_load_cleanly(file: str, tool_name: str, event_type: str) -> None:
    manual = load_manual(str(MANUALS / file))
    assert manual.name == Path(file).stem
    assert manual.trusted
    assert manual.warnings == []
    (spec,) = manual.tools
    assert spec.name == tool_name
    assert spec.template.event_type == event_type
    assert spec.template.reconnect is True


def test_example_manuals_keep_the_documented_fields() -> None:
    logs = load_manual(str(MANUALS / "logs.json")).tools[0].template
    assert (logs.body_field, logs.header_fields, logs.retry_timeout) == (
        "filter_config",
        ["level"],
        45000,
    )
    assert logs.auth == ApiKeyAuth(api_key="${LOG_API_KEY}", var_name="X-API-Key")
    metrics = load_manual(str(MANUALS / "metrics.json")).tools[0].template
    assert isinstance(metrics.auth, OAuth2Auth)
    assert metrics.auth.scope == "metrics:read"
    notifications = load_manual(str(MANUALS / "notifications.json")).tools[0].template
    assert isinstance(notifications.auth, ApiKeyAuth)
    assert notifications.auth.api_key == "Bearer ${ACCESS_TOKEN}"


# -- the 1.x shape and UTCP's defaults -------------------------------------------------------


def test_defaults_are_utcps() -> None:
    manual = parse(document(tool()))
    spec = manual.tools[0]
    assert spec.description == ""
    assert spec.inputs == {"type": "object", "properties": {}}
    assert spec.outputs is None
    assert spec.tags == []
    assert spec.average_response_size is None
    t = spec.template
    assert (t.event_type, t.reconnect, t.retry_timeout) == (None, True, 30000)
    assert (t.headers, t.body_field, t.header_fields, t.auth) == (None, None, None, None)
    assert manual.warnings == []


def test_every_field_is_read() -> None:
    full = tool(
        description="d",
        inputs={"type": "object", "properties": {"id": {"type": "string"}}},
        outputs={"type": "object"},
        tags=["a"],
        average_response_size=100,
        tool_call_template=template(
            url="https://h/{id}",
            event_type="tick",
            reconnect=False,
            retry_timeout=5,
            headers={"X-A": "b"},
            body_field="id",
            header_fields=["id"],
            auth={"auth_type": "basic", "username": "u", "password": "p"},
        ),
    )
    spec = parse(document(full)).tools[0]
    assert spec.model_dump(by_alias=True)["tool_call_template"] == {
        "call_template_type": "sse",
        "url": "https://h/{id}",
        "event_type": "tick",
        "reconnect": False,
        "retry_timeout": 5,
        "headers": {"X-A": "b"},
        "body_field": "id",
        "header_fields": ["id"],
        "auth": {"auth_type": "basic", "username": "u", "password": "p"},
    }
    assert (spec.description, spec.tags, spec.average_response_size) == ("d", ["a"], 100)


def test_inputs_without_type_become_an_object_schema() -> None:
    spec = parse(document(tool(inputs={"properties": {"a": {"type": "string"}}}))).tools[0]
    assert spec.inputs["type"] == "object"


def test_unknown_keys_are_warnings_at_every_level() -> None:
    data = document(
        tool(
            color="red",
            tool_call_template=template(
                http_method="GET",
                auth={"auth_type": "api_key", "api_key": "k", "prefix": "Bearer"},
            ),
        ),
        extra=1,
    )
    manual = parse(data)
    assert manual.warnings == [
        "manuals/x.json: unknown key 'extra' ignored",
        "manuals/x.json: tools[0]: unknown key 'color' ignored",
        "manuals/x.json: tools[0].tool_call_template: unknown key 'http_method' ignored",
        "manuals/x.json: tools[0].tool_call_template.auth: unknown key 'prefix' ignored",
    ]
    assert manual.tools[0].template.auth == ApiKeyAuth(api_key="k")


def test_utcp_call_template_name_is_accepted_silently() -> None:
    manual = parse(document(tool(tool_call_template=template(name="provider"))))
    assert manual.warnings == []


def test_non_sse_tools_are_skipped_with_a_warning() -> None:
    http_tool = tool("get", tool_call_template={"call_template_type": "http", "url": "x"})
    manual = parse(document(http_tool, tool("events")))
    assert [t.name for t in manual.tools] == ["events"]
    assert manual.warnings == [
        "manuals/x.json: tools[0] 'get': call_template_type 'http' is not SSE; tool skipped"
    ]


def test_a_manual_with_no_sse_tool_is_an_error() -> None:
    message = error(document(tool(tool_call_template={"call_template_type": "cli"})))
    assert 'manuals/x.json: tools: no tool has call_template_type "sse"' in message


def test_legacy_shape_is_accepted_with_a_deprecation_warning() -> None:
    legacy = {
        "version": "0.1.0",
        "tools": [
            {
                "name": "events",
                "inputs": {"type": "object", "properties": {}},
                "tool_provider": {
                    "name": "feed",
                    "provider_type": "sse",
                    "url": "https://api.example.com/events",
                    "event_type": "tick",
                },
            }
        ],
    }
    manual = parse(legacy)
    assert manual.tools[0].template.event_type == "tick"
    (warning,) = manual.warnings
    assert warning.startswith("manuals/x.json: deprecated UTCP 0.x shape")
    assert '"version", "tool_provider", "provider_type"' in warning


def test_legacy_provider_type_inside_a_call_template() -> None:
    manual = parse(document(tool(tool_call_template={"provider_type": "sse", "url": "https://h"})))
    assert manual.tools[0].template.url == "https://h"
    assert "deprecated UTCP 0.x shape" in manual.warnings[0]


def test_legacy_non_sse_provider_is_skipped() -> None:
    old = {"name": "a", "tool_provider": {"provider_type": "http", "url": "https://h"}}
    manual = parse({"version": "0.1", "tools": [old, tool()]})
    assert [t.name for t in manual.tools] == ["events"]
    assert "call_template_type 'http' is not SSE" in manual.warnings[1]


def test_undeclared_url_placeholders_and_fields_are_warnings() -> None:
    spec = tool(
        inputs={"type": "object", "properties": {"id": {"type": "string"}}},
        tool_call_template=template(
            url="https://h/${HOST}/{id}/{other-id}", body_field="body", header_fields=["id", "h"]
        ),
    )
    assert parse(document(spec)).warnings == [
        "manuals/x.json: tools[0].tool_call_template.url: 'other-id' is not a declared input; "
        "add it to tools[0].inputs.properties",
        "manuals/x.json: tools[0].tool_call_template.body_field: 'body' is not a declared input; "
        "add it to tools[0].inputs.properties",
        "manuals/x.json: tools[0].tool_call_template.header_fields: 'h' is not a declared input; "
        "add it to tools[0].inputs.properties",
    ]


def test_reserved_arguments_are_the_control_arguments() -> None:
    assert RESERVED_ARGUMENTS == (
        "max_events",
        "max_seconds",
        "last_event_id",
        "until_event",
        "event_types",
        "match",
        "fields",
        "latest_per",
        "summary",
        "format",
    )


# -- errors: file, JSON path, problem and fix ------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"tools": [}', ["manuals/x.json: invalid JSON at line 1, column 12", "Fix the JSON"]),
        ("[1, 2]", ["manuals/x.json: the manual must be a JSON object, got array [1, 2]"]),
        ('{"tools": [NaN]}', ["invalid JSON: NaN is not a JSON value"]),
        (document(), ["manuals/x.json: tools: got array []", "non-empty list"]),
        ({"utcp_version": "1.0"}, ["manuals/x.json: tools: missing"]),
        (document(utcp_version=1), ["manuals/x.json: utcp_version: got number 1"]),
        (document(tool(), tool()), ["tools[1].name: duplicate tool name 'events' (also tools[0])"]),
        (document("x"), ['tools[0]: a tool must be an object, got string "x"']),
        (document({"tool_call_template": template()}), ["tools[0].name: missing", 'Add "name"']),
        (document(tool("")), ['tools[0].name: got string ""', "non-empty string"]),
        (document({"name": "a"}), ["tools[0].tool_call_template: missing", "call_template_type"]),
        (
            document(tool(tool_call_template={"url": "https://h"})),
            ["tools[0].tool_call_template.call_template_type: missing", '"sse"'],
        ),
        (
            document(tool(tool_call_template={"call_template_type": "sse"})),
            ["manuals/x.json: tools[0].tool_call_template.url: missing", 'Add "url": a URL'],
        ),
        (
            document(tool(tool_call_template=template(url="ftp://h/x"))),
            ["tools[0].tool_call_template.url: 'ftp://h/x' is not an http(s) URL"],
        ),
        (
            document(tool(tool_call_template=template(url="https://[::1/x"))),
            ["tools[0].tool_call_template.url: 'https://[::1/x' is not an http(s) URL"],
        ),
        (
            document(tool(tool_call_template=template(url="https://{tenant}.example.com/x"))),
            [
                "tools[0].tool_call_template.url: 'https://{tenant}.example.com/x' has a "
                "{placeholder} in its scheme or host",
                "path or query only",
            ],
        ),
        (
            document(tool(tool_call_template=template(retry_timeout="30000"))),
            [
                'tools[0].tool_call_template.retry_timeout: got string "30000"',
                "Use a whole number of milliseconds",
            ],
        ),
        (
            document(tool(tool_call_template=template(retry_timeout=-1))),
            ["tools[0].tool_call_template.retry_timeout: got number -1"],
        ),
        (
            document(tool(tool_call_template=template(retry_timeout=3_600_001))),
            [
                "tools[0].tool_call_template.retry_timeout: got number 3600001",
                "from 0 to 3600000 (an hour)",
            ],
        ),
        (
            '{"tools": [{"name": "a", "tool_call_template": {"call_template_type": "sse", '
            '"url": "https://h", "retry_timeout": 1' + "0" * 400 + "}}]}",
            ["tools[0].tool_call_template.retry_timeout: got number 1000", "to 3600000"],
        ),
        (
            document(tool(tool_call_template=template(url="https://h/s?n={max_events}"))),
            [
                "tools[0].tool_call_template.url: 'max_events' is one of the bridge's control "
                "arguments",
                "could never receive it",
                "Rename it here and in tools[0].inputs, e.g. to 'upstream_max_events'.",
            ],
        ),
        (
            document(tool(tool_call_template=template(header_fields=["X-A", "match"]))),
            ["tools[0].tool_call_template.header_fields: 'match' is one of the bridge's control"],
        ),
        (
            document(tool(tool_call_template=template(body_field="until_event"))),
            ["tools[0].tool_call_template.body_field: 'until_event' is one of the bridge's"],
        ),
        (
            document(tool(inputs={"properties": {"x": {"$ref": "#/$defs/nope"}}})),
            [
                """tools[0].inputs.properties.x["$ref"]: $ref '#/$defs/nope' cannot be resolved""",
                "never fetched",
            ],
        ),
        (
            document(tool(inputs={"properties": {"x": {"$ref": "https://h/x.json"}}})),
            ["""x["$ref"]: $ref 'https://h/x.json' cannot be resolved"""],
        ),
        (
            document(
                tool(
                    inputs={
                        "properties": {"x": {"$ref": "#/$defs/a"}},
                        "$defs": {"a": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/a"}]}},
                    }
                )
            ),
            ["$ref '#/$defs/a' loops back to itself", "end at a schema of its own"],
        ),
        (
            document(tool(inputs={"properties": {"p": {"type": "string", "pattern": "^(a+)+$"}}})),
            [
                "tools[0].inputs.properties.p.pattern: the pattern '^(a+)+$' can backtrack "
                "catastrophically",
                '"^a+$" instead of "^(a+)+$"',
            ],
        ),
        (
            document(tool(inputs={"patternProperties": {"^(\\w+\\s?)+$": {}}})),
            ["""tools[0].inputs.patternProperties["^(\\\\w+\\\\s?)+$"]: the pattern"""],
        ),
        (
            document(tool(tool_call_template=template(reconnect="yes"))),
            ['tools[0].tool_call_template.reconnect: got string "yes"', "Use true or false"],
        ),
        (
            document(tool(tool_call_template=template(headers={"X-A": 1}))),
            ['tools[0].tool_call_template.headers["X-A"]: got number 1', "string values"],
        ),
        (
            document(tool(tool_call_template=template(header_fields="user"))),
            ['tools[0].tool_call_template.header_fields: got string "user"', '["user_id"]'],
        ),
        (
            document(tool(tool_call_template=template(auth={"auth_type": "bearer"}))),
            [
                'tools[0].tool_call_template.auth.auth_type: unknown auth_type "bearer"',
                "Use one of 'api_key', 'basic' or 'oauth2'",
            ],
        ),
        (
            document(tool(tool_call_template=template(auth={"api_key": "k"}))),
            ["tools[0].tool_call_template.auth.auth_type: missing", "'api_key', 'basic'"],
        ),
        (
            document(tool(tool_call_template=template(auth={"auth_type": "api_key"}))),
            ["tools[0].tool_call_template.auth.api_key: missing", '"${API_KEY}"'],
        ),
        (
            document(
                tool(
                    tool_call_template=template(
                        auth={"auth_type": "api_key", "api_key": "k", "location": "body"}
                    )
                )
            ),
            ['tools[0].tool_call_template.auth.location: got string "body"', '"header", "query"'],
        ),
        (
            document(tool(tool_call_template=template(auth="key"))),
            ['tools[0].tool_call_template.auth: got string "key"', "auth_type"],
        ),
        (
            document(tool(tool_call_template=[1])),
            ["tools[0].tool_call_template: got array [1]", '"call_template_type": "sse"'],
        ),
        (
            {"version": "0.1", "tools": [{"name": "a", "tool_provider": 5}]},
            ["tools[0].tool_provider: got number 5", '"call_template_type": "sse"'],
        ),
        (
            document(tool(tags="a", description=3)),
            ["tools[0].description: got number 3", "(1 more problem(s) in this tool.)"],
        ),
        (
            document(tool(inputs={"type": "object", "properties": {"a": {"type": "strin"}}})),
            ["tools[0].inputs.properties.a.type: not a valid JSON schema", "draft 2020-12"],
        ),
        (
            document(tool(inputs={"type": "string"})),
            ['tools[0].inputs.type: got string "string"', '"type": "object"'],
        ),
        (
            document(tool(inputs={"type": "object", "properties": {"max_events": {}}})),
            [
                "tools[0].inputs.properties.max_events: 'max_events' is reserved",
                "Rename this input",
            ],
        ),
        ('{"tools": ["\\ud800"]}', ["tools[0]: contains an unpaired UTF-16 surrogate"]),
        ('{"tools": [{"na\\udc00": 1}]}', ['tools[0]["na\\udc00"]: contains an unpaired']),
        (b'{"tools": "\xff"}', ["manuals/x.json: the manual is not UTF-8 text (byte 0xff"]),
    ],
)
def test_errors_name_file_path_and_fix(data: Any, expected: list[str]) -> None:
    message = error(data)
    assert message.startswith(SOURCE)
    for part in expected:
        assert part in message
    assert "pydantic" not in message and "validation error" not in message


NODE = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
GOOD_REFS = {
    "recursive": {"properties": {"tree": {"$ref": "#/$defs/node"}}, "$defs": {"node": NODE}},
    "chain": {
        "properties": {"x": {"$ref": "#/$defs/a"}},
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "string"}},
    },
    "relative-id": {
        "$id": "https://h/in.json",
        "properties": {"x": {"$ref": "s.json"}},
        "$defs": {"s": {"$id": "s.json", "type": "string"}},
    },
    "meta-schema": {"properties": {"x": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}},
}


@pytest.mark.parametrize("inputs", GOOD_REFS.values(), ids=GOOD_REFS.keys())
def test_refs_that_resolve_and_descend_are_accepted(inputs: dict[str, Any]) -> None:
    parse(document(tool(inputs=inputs)))


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        ("^(a+)+$", True),
        ("(a*)*", True),
        ("^(\\w+\\s?)+$", True),
        ("^(a|aa)+$", True),
        ("(.*a){10}", True),
        ("^(\\d+\\.?)+$", True),
        ("^[A-Z]+(,[A-Z]+)*$", False),  # a delimiter starts every repetition
        ("^([a-z0-9]+(-[a-z0-9]+)*\\.)+[a-z]{2,}$", False),
        ("^[^,]+(,[^,]+)*$", False),
        ("^(\\d{3}-)+\\d{4}$", False),  # fixed-length repetitions
        ("^(foo|bar)+$", False),
        ("^(a|ab)+$", False),
        ("^\\d{4}-\\d{2}-\\d{2}$", False),
    ],
)
def test_patterns_that_backtrack_catastrophically_are_refused(pattern: str, refused: bool) -> None:
    """Each refused pattern takes seconds to hours on a 40-character text in Python's `re`."""
    schema = {"properties": {"p": {"type": "string", "pattern": pattern}}}
    if refused:
        assert "can backtrack catastrophically" in error(document(tool(inputs=schema)))
    else:
        parse(document(tool(inputs=schema)))


def test_deep_nesting_is_a_manual_error() -> None:
    deep: Any = {}
    for _ in range(200):
        deep = {"a": deep}
    message = error(document(tool(inputs={"type": "object", "properties": {"x": deep}})))
    assert "tools[0].inputs.properties.x.a.a" in message
    assert "nested more than 64 levels deep" in message


def test_recursion_error_in_the_json_decoder_is_a_manual_error() -> None:
    message = error("[" * 200_000 + "]" * 200_000)
    assert message.startswith(f"{SOURCE}: ")
    assert "nested too deeply" in message


def test_huge_manual_is_refused() -> None:
    padding = " " * manual_module.MAX_MANUAL_BYTES
    assert "larger than 5 MiB" in error(json.dumps(document(tool())) + padding)
    assert "larger than 5 MiB" in error((json.dumps(document(tool())) + padding).encode())


def test_utf8_bom_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbf" + json.dumps(document(tool())).encode()).tools


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
@settings(max_examples=200, deadline=None)
def test_arbitrary_json_is_a_manual_or_a_manual_error(value: Any) -> None:
    with contextlib.suppress(ManualError):
        parse(value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)
TEMPLATE_KEYS = st.sampled_from(
    [
        "call_template_type",
        "url",
        "event_type",
        "reconnect",
        "retry_timeout",
        "headers",
        "body_field",
        "header_fields",
        "auth",
        "provider_type",
    ]
)


@given(
    st.dictionaries(TEMPLATE_KEYS, JSON_VALUES | st.just("sse"), max_size=6),
    st.dictionaries(
        st.sampled_from(["auth_type", "api_key", "username", "token_url", "location"]),
        st.sampled_from(["api_key", "basic", "oauth2", "header"]) | JSON_VALUES,
    ),
    st.dictionaries(st.sampled_from(["name", "inputs", "tags", "outputs"]), JSON_VALUES),
    st.sampled_from(["tool_call_template", "tool_provider"]),
)
@settings(max_examples=300, deadline=None)
def test_arbitrary_tools_are_a_manual_or_a_manual_error(
    fields: dict[str, Any], auth: dict[str, Any], tool_fields: dict[str, Any], key: str
) -> None:
    fields = {"call_template_type": "sse", "url": "https://h", **fields, "auth": auth}
    try:
        manual = parse(document({"name": "t", **tool_fields, key: fields}))
    except ManualError as exc:
        assert str(exc).startswith(SOURCE)
    else:
        assert manual.tools[0].template.call_template_type == "sse"


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_are_a_manual_or_a_manual_error(data: bytes) -> None:
    with contextlib.suppress(ManualError):
        parse(data)


# -- loading from files ----------------------------------------------------------------------


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_load_path_and_named_path(tmp_path: Path) -> None:
    path = write(tmp_path / "my api.v2.json", document(tool()))
    manual = load_manual(str(path))
    assert (manual.name, manual.source, manual.trusted) == ("my_api_v2", str(path), True)
    named = load_manual(f"feeds={path}")
    assert (named.name, named.source) == ("feeds", str(path))


def test_a_file_whose_name_contains_equals_is_a_path(tmp_path: Path) -> None:
    path = write(tmp_path / "a=b.json", document(tool()))
    assert load_manual(str(path)).name == "a_b"


def test_missing_file_names_the_path_and_the_working_directory(tmp_path: Path) -> None:
    with pytest.raises(ManualError) as info:
        load_manual(str(tmp_path / "nope.json"))
    assert str(info.value).startswith(f"{tmp_path / 'nope.json'}: file not found")
    assert "relative to" in str(info.value)


def test_a_directory_is_not_a_manual(tmp_path: Path) -> None:
    with pytest.raises(ManualError, match="is a directory"):
        load_manual(str(tmp_path))


@pytest.mark.parametrize(
    ("special", "kind"),
    [("/dev/null", "a character device"), ("fifo", "a pipe")],
    ids=["character-device", "fifo"],
)
def test_a_device_or_pipe_is_not_a_regular_file(tmp_path: Path, special: str, kind: str) -> None:
    """Not "file not found" (it exists), and never read: a FIFO without a writer would hang."""
    if special == "fifo":
        special = str(tmp_path / "manual.fifo")
        os.mkfifo(special)
    with pytest.raises(ManualError) as info:
        load_manual(special)
    assert str(info.value).startswith(f"{special}: not a regular file ({kind}).")


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"tools": [\n  {"name": 1,}\n]}')
    with pytest.raises(ManualError) as info:
        load_manual(str(path))
    assert str(info.value).startswith(f"{path}: invalid JSON at line 2, column 14")


def test_a_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(manual_module.MAX_MANUAL_BYTES + 1)
    with pytest.raises(ManualError, match="larger than 5 MiB"):
        load_manual(str(path))


# -- loading from URLs (real loopback server) ------------------------------------------------


def manual_server(body: bytes | str, status: int = 200, **headers: str) -> Any:
    async def handler(request: Request, response: Response) -> None:
        await response.simple(status, body, content_type="application/json", headers=headers)

    return serve_in_thread(handler)


def test_load_from_a_loopback_url_is_untrusted() -> None:
    with manual_server(json.dumps(document(tool()))) as server:
        manual = load_manual(f"{server.url}/manuals/remote-feed.json")
        named = load_manual(f"feed={server.url}/m.json?token=1")
    assert (manual.name, manual.trusted) == ("remote-feed", False)
    assert manual.source == f"{server.url}/manuals/remote-feed.json"
    assert [t.name for t in manual.tools] == ["events"]
    assert (named.name, named.source) == ("feed", f"{server.url}/m.json?token=1")
    assert server.requests[0].headers["accept"] == "application/json"


def test_url_errors_name_the_url() -> None:
    with manual_server("{") as server, pytest.raises(ManualError) as info:
        load_manual(f"{server.url}/m.json")
    assert str(info.value).startswith(f"{server.url}/m.json: invalid JSON at line 1, column 2")


def test_url_http_status_is_an_error_without_the_userinfo() -> None:
    with manual_server("missing", status=404) as server:
        url = server.url.replace("://", "://user:hunter22@") + "/m.json"
        with pytest.raises(ManualError) as info:
            load_manual(url)
    message = str(info.value)
    assert "HTTP 404 while fetching the manual" in message
    assert "hunter22" not in message
    assert "***@127.0.0.1" in message


def test_url_body_over_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manual_module, "MAX_MANUAL_BYTES", 1000)
    with manual_server(" " * 2000) as server, pytest.raises(ManualError, match="larger than"):
        load_manual(f"{server.url}/m.json")


def test_url_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def silent(request: Request, response: Response) -> None:
        await wait_disconnect(response)

    monkeypatch.setattr(manual_module, "FETCH_TIMEOUT", 0.3)
    with serve_in_thread(silent) as server, pytest.raises(ManualError) as info:
        load_manual(f"{server.url}/m.json")
    assert "no answer within 0.3 s" in str(info.value)


def test_redirect_to_plain_http_elsewhere_is_refused() -> None:
    location = {"Location": "http://example.com/m.json"}
    with manual_server("", status=302, **location) as server, pytest.raises(ManualError) as info:
        load_manual(f"{server.url}/m.json")
    assert "refusing to fetch a manual over plain http from example.com" in str(info.value)
    assert len(server.requests) == 1


def test_redirect_within_loopback_is_followed() -> None:
    async def handler(request: Request, response: Response) -> None:
        if request.path == "/old.json":
            await response.simple(301, "", headers={"Location": "/new.json"})
        else:
            await response.simple(200, json.dumps(document(tool())))

    with serve_in_thread(handler) as server:
        manual = load_manual(f"{server.url}/old.json")
    assert manual.name == "old"
    assert [r.path for r in server.requests] == ["/old.json", "/new.json"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/m.json", "refusing to fetch a manual over plain http"),
        ("ftp://example.com/m.json", "unsupported URL scheme 'ftp'"),
        ("https://", "not a valid manual URL"),
    ],
)
def test_insecure_or_odd_urls_are_refused_before_connecting(url: str, expected: str) -> None:
    with pytest.raises(ManualError, match=expected):
        load_manual(url)


def test_refused_connection_is_a_manual_error() -> None:
    with manual_server("") as server:
        url = f"{server.url}/m.json"
    with pytest.raises(ManualError, match="cannot fetch the manual"):
        load_manual(url)


@pytest.mark.anyio
async def test_load_manual_works_from_a_worker_thread() -> None:
    with manual_server(json.dumps(document(tool()))) as server:
        manual = await anyio.to_thread.run_sync(load_manual, f"{server.url}/m.json")
    assert manual.tools[0].name == "events"


# -- MCP tool names --------------------------------------------------------------------------


def manual(name: str, *names: str) -> Manual:
    tools = [ToolSpec.model_validate(tool(n)) for n in names]
    return Manual(name=name, source=f"{name}.json", trusted=True, tools=tools)


def test_one_manual_keeps_tool_names() -> None:
    stocks = manual("stocks", "stream_prices", "quotes")
    assert list(tool_names([stocks])) == ["stream_prices", "quotes"]
    assert tool_names([stocks])["quotes"] == (stocks, stocks.tools[1])


def test_several_manuals_prefix_the_manual_name() -> None:
    names = tool_names([manual("stocks", "stream"), manual("logs", "stream")])
    assert list(names) == ["stocks_stream", "logs_stream"]


def test_names_are_sanitised() -> None:
    assert list(tool_names([manual("m", "prices.live v2/é")])) == ["prices_live_v2__"]


def test_long_names_are_cut_with_a_hash_suffix() -> None:
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    names = list(tool_names([manual("m", long_a, long_b)]))
    assert [len(n) for n in names] == [64, 64]
    assert names[0].startswith("a" * 57 + "_") and names[0] != names[1]
    assert names == list(tool_names([manual("m", long_a, long_b)]))


def test_collisions_get_numbered_suffixes_in_order() -> None:
    names = tool_names([manual("m", "a.b", "a b", "a_b"), manual("m", "a_b")])
    assert list(names) == ["m_a_b", "m_a_b_2", "m_a_b_3", "m_a_b_4"]
    full = list(tool_names([manual("m", "y" * 62), manual("m", "y" * 62)]))
    assert full == ["m_" + "y" * 62, "m_" + "y" * 60 + "_2"]
