"""`mcp-sse-bridge import` and `--manual openapi.yaml`: OpenAPI 3.0/3.1/3.2 event streams become
tools that work against real loopback servers; broken and hostile documents give one error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
import yaml

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.cli import main
from mcp_sse_bridge.errors import ManualError
from mcp_sse_bridge.manual import load_manual
from mcp_sse_bridge.manual.openapi import import_openapi
from mcp_sse_bridge.manual.variables import Variables
from mcp_sse_bridge.server.tools import build_server
from tests import openapi_documents as docs
from tests.sse_server import Request, Response, serve_in_thread, sse_lines

pytestmark = pytest.mark.usefixtures("restore_logging")

TOKEN = "sk-llm-94c1d7e05b"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    if name.endswith((".yaml", ".yml")):
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    else:
        path.write_text(json.dumps(document))
    return str(path)


def imported(document: dict[str, Any], **kwargs: Any) -> Any:
    return import_openapi(document, source="api.yaml", **kwargs)


def error_of(document: Any) -> str:
    with pytest.raises(ManualError) as info:
        import_openapi(document, source="api.yaml")
    return str(info.value)


async def call_tool(manual: Any, variables: dict[str, str], name: str, args: Any) -> Any:
    server = build_server(Bridge([manual], variables=Variables(variables, environ={})))
    async with mcp.Client(server, mode="legacy") as client:
        result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    return result.structured_content


# -- working tools ------------------------------------------------------------------------------


def test_an_llm_completion_api_in_openapi_32_becomes_a_post_tool_that_streams(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Request] = []

    async def llm(request: Request, response: Response) -> None:
        seen.append(request)
        for i, word in enumerate(["Hello", " world"]):
            await response.send(sse_lines({"data": {"id": f"c{i}", "delta": word}}))
        await response.send("data: [DONE]\n\n")
        await response.finish()

    with serve_in_thread(llm) as upstream:
        document = write(tmp_path, "completions.yaml", docs.completions(upstream.url))
        target = tmp_path / "llm.json"
        code, out, err = run(capsys, "import", document, "-o", str(target))
        assert out == ""  # the manual went to the file
        assert code == 0, err
        assert "1 tool(s): create_completion" in err
        assert "skipped GET /models (listModels): no text/event-stream response" in err
        assert "set BEARER_AUTH" in err
        tool = json.loads(target.read_text())["tools"][0]
        template = tool["tool_call_template"]
        assert template["url"] == f"{upstream.url}/v1/completions"
        assert (template["body_field"], template["header_fields"]) == ("body", ["X-Request-Id"])
        assert template["auth"]["api_key"] == "Bearer ${BEARER_AUTH}"
        assert "event_type" not in template  # every event is a `message`
        assert tool["inputs"]["required"] == ["body"]
        body = tool["inputs"]["properties"]["body"]
        assert body["properties"]["stop"] == {
            "type": "array",
            "items": {"type": "string"},
            "maxItems": 4,
        }
        assert "fields: id, delta" in tool["description"]
        assert "ends with the data '[DONE]'" in tool["description"]

        code, _, err = run(
            capsys, "check", "--manual", str(target), "--var", f"BEARER_AUTH={TOKEN}"
        )
        assert code == 0, err
        arguments = {
            "body": {"model": "small", "prompt": "Hi"},
            "X-Request-Id": "r-1",
            "max_events": 5,
        }
        batch = anyio.run(
            call_tool,
            load_manual(str(target)),
            {"BEARER_AUTH": TOKEN},
            "create_completion",
            arguments,
        )
    assert [e["data"] for e in batch["events"]][-1] == "[DONE]"
    assert batch["events"][0]["data"] == {"id": "c0", "delta": "Hello"}
    request = seen[-1]
    assert request.method == "POST" and request.path == "/v1/completions"
    assert request.json() == {"model": "small", "prompt": "Hi"}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-request-id"] == "r-1"


def test_a_market_data_api_in_openapi_31_loads_directly_with_manual(
    tmp_path: Path,
) -> None:
    seen: list[Request] = []

    async def prices(request: Request, response: Response) -> None:
        seen.append(request)
        await response.send(sse_lines({"event": "trade", "id": "1", "data": {"size": 5}}))
        await response.send(sse_lines({"event": "price", "id": "2", "data": {"price": 1.5}}))
        await response.finish()

    with serve_in_thread(prices) as upstream:
        path = write(tmp_path, "market.json", docs.market_data(upstream.url))
        manual = load_manual(path)
        (tool,) = manual.tools
        assert tool.name == "stream_prices"
        assert tool.template.url == f"{upstream.url}/prices/{{symbol}}"
        assert tool.template.auth is not None and tool.template.auth.auth_type == "api_key"
        assert tool.template.auth.var_name == "X-Market-Key"
        assert tool.inputs["required"] == ["symbol"]
        assert tool.inputs["properties"]["symbol"]["pattern"] == "^[A-Z]{1,5}$"
        assert tool.inputs["properties"]["depth"]["description"] == "Order book levels"
        assert tool.template.event_type is None  # two event types
        assert "price (fields: symbol, price); trade (fields: symbol, size)" in tool.description
        warnings = "\n".join(manual.warnings)
        assert "OpenAPI: skipped PUT /prices/{symbol} (replacePrices): method PUT" in warnings
        assert "OpenAPI: skipped GET /symbols: no text/event-stream response" in warnings
        batch = anyio.run(
            call_tool,
            manual,
            {"MARKET_KEY": "mk-123456"},
            "stream_prices",
            {"symbol": "AAPL", "depth": 2},
        )
    assert [e["event"] for e in batch["events"]] == ["trade", "price"]
    assert seen[0].path == "/prices/AAPL" and seen[0].query == [("depth", "2")]
    assert seen[0].headers["x-market-key"] == "mk-123456"


def test_a_notifications_api_in_openapi_30_with_oauth2_gets_a_token_and_streams(
    tmp_path: Path,
) -> None:
    seen: list[Request] = []

    async def api(request: Request, response: Response) -> None:
        seen.append(request)
        if request.path == "/oauth/token":
            body = json.dumps({"access_token": "at-778899", "expires_in": 3600})
            await response.simple(200, body, content_type="application/json")
        elif request.headers.get("authorization") != "Bearer at-778899":
            await response.simple(401, "no")
        else:
            await response.send(sse_lines({"event": "notification", "data": {"n": 1}}))
            await response.finish()

    with serve_in_thread(api) as upstream:
        path = write(tmp_path, "notifications.yml", docs.notifications(upstream.url))
        manual = load_manual(path)
        (tool,) = manual.tools
        channel = tool.inputs["properties"]["channel"]
        assert channel == {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "enum": ["a", "b", None],
        }
        assert "session" not in tool.inputs["properties"]
        assert any("cookie parameter 'session' left out" in w for w in manual.warnings)
        auth = tool.template.auth
        assert auth is not None and auth.auth_type == "oauth2"
        assert (auth.client_id, auth.scope) == ("${OAUTH_CLIENT_ID}", "notifications:read")
        variables = {"OAUTH_CLIENT_ID": "cid-1", "OAUTH_CLIENT_SECRET": "cs-2222"}
        batch = anyio.run(call_tool, manual, variables, "stream_notifications", {"channel": "a"})
    assert batch["events"] == [{"event": "notification", "id": "", "data": {"n": 1}}]
    assert seen[0].path == "/oauth/token" and b"scope=notifications%3Aread" in seen[0].body
    assert seen[1].path == "/api/notifications/stream"


# -- mapping details ----------------------------------------------------------------------------


def stream_doc(operation: dict[str, Any], **top: Any) -> dict[str, Any]:
    operation.setdefault(
        "responses", {"200": {"content": {"text/event-stream": {"schema": {"type": "string"}}}}}
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {"/stream": {"get": operation}},
        **top,
    }


def template_of(document: dict[str, Any]) -> dict[str, Any]:
    return imported(document).manual["tools"][0]["tool_call_template"]


def test_security_schemes_map_to_auth_with_variables_named_after_the_scheme() -> None:
    def auth(scheme: dict[str, Any], scopes: list[str] | None = None) -> Any:
        document = stream_doc(
            {"security": [{"myScheme": scopes or []}]},
            components={"securitySchemes": {"myScheme": scheme}},
        )
        return template_of(document).get("auth")

    assert auth({"type": "apiKey", "in": "query", "name": "key"}) == {
        "auth_type": "api_key",
        "api_key": "${MY_SCHEME}",
        "var_name": "key",
        "location": "query",
    }
    assert auth({"type": "apiKey", "in": "cookie", "name": "sid"})["location"] == "cookie"
    assert auth({"type": "http", "scheme": "basic"}) == {
        "auth_type": "basic",
        "username": "${MY_SCHEME_USERNAME}",
        "password": "${MY_SCHEME_PASSWORD}",
    }
    assert auth({"type": "http", "scheme": "Bearer"})["api_key"] == "Bearer ${MY_SCHEME}"
    flows = {"clientCredentials": {"tokenUrl": "https://auth.example.com/t", "scopes": {}}}
    oauth = auth({"type": "oauth2", "flows": flows}, ["a", "b"])
    assert oauth["scope"] == "a b" and oauth["client_secret"] == "${MY_SCHEME_CLIENT_SECRET}"
    document = stream_doc(
        {"security": [{"oidc": []}]},
        components={"securitySchemes": {"oidc": {"type": "openIdConnect"}}},
    )
    result = imported(document)
    assert "auth" not in result.manual["tools"][0]["tool_call_template"]
    assert any("oidc cannot be mapped" in w for w in result.warnings)


def test_refs_are_resolved_and_a_recursive_schema_becomes_defs() -> None:
    components = {
        "schemas": {
            "Filter": {
                "type": "object",
                "properties": {
                    "all": {"type": "array", "items": {"$ref": "#/components/schemas/Filter"}}
                },
            },
            "Alias": {"$ref": "#/components/schemas/Filter"},
        }
    }
    document = stream_doc(
        {
            "parameters": [
                {
                    "name": "filter",
                    "in": "query",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Alias"}}
                    },
                }
            ]
        },
        components=components,
    )
    tool = imported(document).manual["tools"][0]
    assert tool["inputs"]["properties"]["filter"]["properties"]["all"]["items"] == {
        "$ref": "#/$defs/Filter"
    }
    assert tool["inputs"]["$defs"]["Filter"]["type"] == "object"
    load = json.dumps({"utcp_version": "1.0.1", "tools": [tool]})
    from mcp_sse_bridge.manual import parse_manual

    parse_manual(load, name="t", source="t.json", trusted=True)  # the bridge accepts the $defs


def test_a_reserved_path_parameter_is_renamed_and_a_reserved_query_one_skips() -> None:
    path_doc = stream_doc({"parameters": [{"name": "match", "in": "path", "required": True}]})
    path_doc["paths"] = {"/s/{match}": path_doc["paths"]["/stream"]}
    template = template_of(path_doc)
    assert template["url"] == "https://api.example.com/s/{upstream_match}"
    query_doc = stream_doc({"parameters": [{"name": "max_events", "in": "query"}]})
    message = error_of(query_doc)
    assert "query parameter 'max_events' is named like a control argument" in message


def test_a_relative_server_becomes_a_base_url_variable_unless_given() -> None:
    document = stream_doc({"operationId": "s"})
    document["servers"] = [{"url": "/v2"}]
    result = imported(document)
    assert template_of(document)["url"] == "${T_BASE_URL}/v2/stream"
    assert "T_BASE_URL" in result.variables
    given = imported(document, base_url="https://x.example.com/")
    assert given.manual["tools"][0]["tool_call_template"]["url"] == "https://x.example.com/stream"


# -- broken and hostile documents ----------------------------------------------------------------


def test_a_remote_ref_is_refused_naming_where_it_is() -> None:
    document = stream_doc(
        {"parameters": [{"$ref": "https://evil.example.com/params.json#/Symbol"}]}
    )
    message = error_of(document)
    assert message.startswith('api.yaml: paths["/stream"].get.parameters[0]["$ref"]: refers to')
    assert "outside this document, which is not fetched" in message


def test_a_ref_loop_and_a_dangling_ref_are_one_error_each() -> None:
    schemas = {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}
    loop = stream_doc(
        {
            "parameters": [
                {"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/A"}}
            ]
        },
        components={"schemas": schemas},
    )
    assert "$ref loop" in error_of(loop)
    dangling = stream_doc({"parameters": [{"$ref": "#/components/parameters/Nope"}]})
    assert "$ref '#/components/parameters/Nope' does not resolve: # has no 'components'" in (
        error_of(dangling)
    )


def test_a_broken_document_names_the_json_path() -> None:
    broken = stream_doc({"parameters": [{"name": "q"}]})
    message = error_of(broken)
    assert message.startswith('api.yaml: paths["/stream"].get.parameters[0]: a parameter needs')
    assert "openapi: expected a version 3.0.x" in error_of({"openapi": "4.0"})
    assert "Swagger 2.0" in error_of({"swagger": "2.0", "paths": {}})
    no_streams = stream_doc({"responses": {"200": {"content": {"application/json": {}}}}})
    assert "no operation can be a tool: GET /stream: no text/event-stream" in error_of(no_streams)


def test_hostile_documents_give_one_clear_error(tmp_path: Path) -> None:
    def load_error(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ManualError) as info:
            load_manual(str(path))
        return str(info.value)

    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
    )
    assert "expands to more than 2,000,000 values" in load_error(
        "bomb.yaml", "openapi: 3.1.0\n" + laughs
    )
    deep = "openapi: 3.1.0\npaths: " + "{a: " * 80 + "1" + "}" * 80
    assert "nested more than 64 levels deep" in load_error("deep.yaml", deep)
    assert "invalid YAML at line 2" in load_error("bad.yaml", "openapi: 3.1.0\n  - x: [\n")
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(6 * 1024 * 1024)
    with pytest.raises(ManualError, match="larger than 5 MiB"):
        load_manual(str(huge))
    assert "must be an OpenAPI document" in load_error("plain.yaml", "tools: []\n")


def test_import_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "remote.yaml", stream_doc({"parameters": [{"$ref": "other.yaml#/P"}]}))
    code, out, err = run(capsys, "import", path)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and "not fetched" in err
