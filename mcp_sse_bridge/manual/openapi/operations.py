"""One OpenAPI operation whose response is an event stream -> one SSE tool of the manual.

Mapping: the server URL + the path (its `{param}`s kept) -> `url`; path and query parameters
-> `inputs` (schema, required, description); header parameters -> inputs and `header_fields`;
the request body -> an input named `body` and `body_field` (the bridge POSTs when a body is
sent, so a POST's body is required in `inputs` even where the document says optional); the
security requirement -> `auth` (`security.py`); summary and description -> `description`; the
event types of 3.2's `itemSchema` -> the description, and `event_type` when there is exactly one.

An operation the bridge cannot call is skipped with its reason (`Skip`): methods other than GET
and POST, a POST without a body, query or header parameters named like a control argument (an
argument cannot be renamed without changing what the upstream receives; a path parameter can,
and is). Cookie parameters are left out with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..models import RESERVED_ARGUMENTS
from ..reader import join_path
from .events import event_info
from .refs import Resolver, SchemaWriter
from .security import SecurityMapper

MAX_DESCRIPTION = 2000
_EVENT_STREAM = "text/event-stream"
_IGNORED_HEADERS = {"accept", "content-type", "authorization"}  # OpenAPI ignores these params
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


class Skip(Exception):
    """The operation cannot be a tool; the message says why."""


@dataclass
class Operation:
    path: str  # the URL path template, e.g. /prices/{symbol}
    method: str
    node: dict[str, Any]
    where: str  # its JSON path, e.g. paths["/prices/{symbol}"].get
    parameters: list[tuple[dict[str, Any], str]]  # path-level and own, resolved


def stream_media(resolver: Resolver, op: Operation) -> tuple[dict[str, Any], str] | None:
    """The `text/event-stream` media type object of a 2xx response, if any."""
    responses, rpath = resolver.mapping(
        op.node.get("responses", {}), join_path(op.where, "responses"), "responses"
    )
    for code, response in responses.items():
        if not str(code).startswith("2"):
            continue
        response, path = resolver.mapping(response, join_path(rpath, str(code)), "a response")
        content = response.get("content")
        if not isinstance(content, dict):
            continue
        for media_type, media in content.items():
            if media_type.partition(";")[0].strip().lower() == _EVENT_STREAM:
                return resolver.mapping(
                    media, join_path(join_path(path, "content"), media_type), "a media type"
                )
    return None


def build_tool(
    resolver: Resolver,
    security: SecurityMapper,
    op: Operation,
    base: str,
    *,
    openapi_30: bool,
    warnings: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """The tool for one event-stream operation, and the variables its auth reads."""
    if op.method not in ("get", "post"):
        raise Skip(f"method {op.method.upper()}: the bridge opens streams with GET, or POST")
    media = stream_media(resolver, op)
    assert media is not None
    writer = SchemaWriter(resolver, openapi_30=openapi_30)
    properties, required, headers, url_path = _parameters(resolver, writer, op, warnings)
    template: dict[str, Any] = {"call_template_type": "sse", "url": base.rstrip("/") + url_path}
    if op.method == "post":
        body, content_type = _body(resolver, writer, op)
        field = "body" if "body" not in properties else "request_body"
        properties[field] = body
        required.append(field)
        template["body_field"] = field
        if content_type != "application/json":
            template["headers"] = {"Content-Type": content_type}
    if headers:
        template["header_fields"] = headers
    info = event_info(resolver, media[0], media[1])
    if event_type := info.only_type():
        template["event_type"] = event_type
    auth, variables = security.auth(op.node, op.where, warnings)
    if auth is not None:
        template["auth"] = auth
    inputs: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        inputs["required"] = required
    if defs := writer.finish():
        inputs["$defs"] = defs
    tool: dict[str, Any] = {
        "name": tool_name(op),
        "description": _description(op.node, info.describe()),
        "inputs": inputs,
        "tool_call_template": template,
    }
    tags = op.node.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        tool["tags"] = tags
    return tool, variables


def tool_name(op: Operation) -> str:
    """The operationId in snake case, else the method and the path's words."""
    operation_id = op.node.get("operationId")
    if isinstance(operation_id, str) and operation_id.strip():
        text = _CAMEL.sub("_", operation_id)
    else:
        text = f"{op.method} {re.sub(r'[{}]', '', op.path)}"
    return _NOT_WORD.sub("_", text).strip("_").lower()[:64] or op.method


def _parameters(
    resolver: Resolver, writer: SchemaWriter, op: Operation, warnings: list[str]
) -> tuple[dict[str, Any], list[str], list[str], str]:
    """Inputs from the parameters: (properties, required, header names, the URL path)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    headers: list[str] = []
    url_path = op.path
    for param, ppath in op.parameters:
        name, location = param["name"], param["in"]
        if location == "cookie":
            warnings.append(f"{op.where}: cookie parameter {name!r} left out (add it by hand)")
            continue
        if location == "header" and name.lower() in _IGNORED_HEADERS:
            continue
        argument = name
        if name in RESERVED_ARGUMENTS:
            if location != "path":
                raise Skip(f"the {location} parameter {name!r} is named like a control argument")
            argument = f"upstream_{name}"
            url_path = url_path.replace(f"{{{name}}}", f"{{{argument}}}")
        properties[argument] = _parameter_schema(resolver, writer, param, ppath)
        if location == "path" or param.get("required") is True:
            required.append(argument)
        if location == "header":
            headers.append(name)
    return properties, required, headers, url_path


def _parameter_schema(
    resolver: Resolver, writer: SchemaWriter, param: dict[str, Any], path: str
) -> Any:
    if "schema" in param:
        schema = writer.schema(param["schema"], join_path(path, "schema"))
    elif isinstance(param.get("content"), dict) and param["content"]:
        media_type, media = next(iter(param["content"].items()))
        media, mpath = resolver.mapping(
            media, join_path(join_path(path, "content"), media_type), "a media type"
        )
        schema = writer.schema(media.get("schema", {}), join_path(mpath, "schema"))
    else:
        schema = {"type": "string"}
    description = param.get("description")
    if isinstance(schema, dict) and isinstance(description, str) and description.strip():
        schema = {**schema, "description": description.strip()[:MAX_DESCRIPTION]}
    return schema


def _body(resolver: Resolver, writer: SchemaWriter, op: Operation) -> tuple[Any, str]:
    if "requestBody" not in op.node:
        raise Skip("POST without a request body (the bridge sends a body-less request as GET)")
    body, bpath = resolver.mapping(
        op.node["requestBody"], join_path(op.where, "requestBody"), "requestBody"
    )
    content = body.get("content")
    if not isinstance(content, dict) or not content:
        raise resolver.error(
            join_path(bpath, "content"),
            "a request body needs a content object (media type -> schema)",
            'Write e.g. content: {"application/json": {"schema": {...}}}.',
        )
    chosen = next((t for t in _BODY_TYPES if t in content), next(iter(content)))
    media, mpath = resolver.mapping(
        content[chosen], join_path(join_path(bpath, "content"), chosen), "a media type"
    )
    schema = writer.schema(media.get("schema", {}), join_path(mpath, "schema"))
    description = body.get("description")
    if isinstance(schema, dict) and isinstance(description, str) and description.strip():
        schema = {**schema, "description": description.strip()[:MAX_DESCRIPTION]}
    return schema, chosen


def _description(node: dict[str, Any], events: str) -> str:
    parts = [
        text.strip()
        for text in (node.get("summary"), node.get("description"))
        if isinstance(text, str) and text.strip()
    ]
    if node.get("deprecated") is True:
        parts.append("(Deprecated.)")
    if events:
        parts.append(events)
    return "\n\n".join(parts)[:MAX_DESCRIPTION]
