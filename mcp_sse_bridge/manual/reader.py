"""Checking a manual's JSON tree and turning it into `ToolSpec`s, with messages that say where.

Keys we do not know are ignored with a warning (real manuals carry `http_method`,
`content_type`), tools of another protocol are skipped with a warning, and the UTCP 0.x shape is
still accepted. What would only fail later is refused here, so that `check` never calls a broken
tool ready: an input schema whose `$ref` cannot be used or whose `pattern` backtracks
catastrophically (`schemas.py`), and a template that names a control argument the upstream
could never receive.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from ..errors import ManualError
from .models import AUTH_MODELS, RESERVED_ARGUMENTS, SseCallTemplate, ToolSpec
from .portability import strict_problems
from .schemas import SchemaProblem, check_schema

_MANUAL_KEYS = {"utcp_version", "manual_version", "tools"}
_TOOL_KEYS = {*ToolSpec.model_fields} - {"template"} | {"tool_call_template"}
# UTCP's call template also has `name` and `allowed_communication_protocols`: accepted, unused.
_TEMPLATE_KEYS = {*SseCallTemplate.model_fields, "name", "allowed_communication_protocols"}

_AUTH_CHOICES = "'api_key', 'basic' or 'oauth2'"
_EXPECTED = {
    "name": 'a non-empty string, e.g. "stream_prices"',
    "description": "a string",
    "inputs": 'a JSON schema object, e.g. {"type": "object", "properties": {}}',
    "outputs": "a JSON schema object or null",
    "tags": 'a list of strings, e.g. ["live"]',
    "average_response_size": "a whole number of bytes or null",
    "tool_call_template": 'an object, e.g. {"call_template_type": "sse", "url": "https://..."}',
    "url": 'a URL string, e.g. "https://api.example.com/events/{stream_id}"',
    "event_type": 'an event type such as "price_update", or null to keep all events',
    "reconnect": "true or false",
    "retry_timeout": "a whole number of milliseconds from 0 to 3600000 (an hour), e.g. 30000",
    "headers": 'an object with string values, e.g. {"X-Client": "mcp-sse-bridge"}',
    "body_field": "the name of the input sent as the request body, or null",
    "header_fields": 'a list of input names sent as headers, e.g. ["user_id"]',
    "auth": f"an object whose auth_type is {_AUTH_CHOICES}",
    "api_key": 'a string, usually a variable such as "${API_KEY}"',
    "var_name": 'the header, query or cookie name, e.g. "Authorization"',
    "location": '"header", "query" or "cookie"',
    "username": 'a string, usually a variable such as "${USERNAME}"',
    "password": 'a string, usually a variable such as "${PASSWORD}"',
    "token_url": 'the token endpoint URL, e.g. "https://auth.example.com/token"',
    "client_id": 'a string, usually a variable such as "${CLIENT_ID}"',
    "client_secret": 'a string, usually a variable such as "${CLIENT_SECRET}"',
    "scope": 'a space-separated string such as "read write", or null',
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}]+)\}")
_SCHEMES = ("http", "https")
_UNPORTABLE_SHOWN = 3  # per tool: the first few say what to fix; the rest are counted


def sendable_text(text: str, path: str, source: str) -> str:
    """`text`, refused when it cannot be sent on as UTF-8: a lone surrogate (`"\\ud800"`), which
    JSON and YAML escapes can both write. Manuals and OpenAPI documents share the rule."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ManualError(
            f"{source}: {path or 'the document'}: contains an unpaired UTF-16 surrogate escape.",
            hint="Use a valid \\u escape pair, or the character itself.",
        ) from None
    return text


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path and _IDENTIFIER.fullmatch(key) else path + _key(key)


def _key(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else f"[{json.dumps(key)}]"


def _describe(value: Any) -> str:
    kind = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    excerpt = json.dumps(value)
    if len(excerpt) > 40:
        excerpt = excerpt[:37] + "..."
    return f"{kind.get(type(value), 'number')} {excerpt}"


class ManualReader:
    """Walks one manual's JSON, collecting warnings; raises the first error it meets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []
        self.legacy: list[str] = []

    def error(self, path: str, problem: str, hint: str) -> ManualError:
        return ManualError(f"{self.source}: {path}: {problem}.", hint=hint)

    def warn_unknown(self, raw: dict[str, Any], known: set[str], path: str) -> None:
        for key in raw:
            if key not in known:
                where = f"{path}: " if path else ""
                self.warnings.append(f"{self.source}: {where}unknown key {key!r} ignored")

    def manual(self, data: Any) -> list[ToolSpec]:
        if not isinstance(data, dict):
            raise ManualError(
                f"{self.source}: the manual must be a JSON object, got {_describe(data)}.",
                hint='Use {"utcp_version": "1.0.1", "manual_version": "1.0.0", "tools": [...]}.',
            )
        known = set(_MANUAL_KEYS)
        if "version" in data and "utcp_version" not in data:
            self._legacy('"version"')
            known.add("version")
        self.warn_unknown(data, known, "")
        for key in sorted(known - {"tools"}):
            if key in data and not isinstance(data[key], str):
                raise self.error(
                    key, f"got {_describe(data[key])}", 'Use a string such as "1.0.0".'
                )
        tools = data.get("tools")
        if not isinstance(tools, list) or not tools:
            problem = "missing" if tools is None else f"got {_describe(tools)}"
            raise self.error(
                "tools", problem, "Give a non-empty list of tools, each with a tool_call_template."
            )
        specs: list[ToolSpec] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(tools):
            spec = self.tool(i, raw)
            if spec is None:
                continue
            if spec.name in seen:
                raise self.error(
                    f"tools[{i}].name",
                    f"duplicate tool name {spec.name!r} (also tools[{seen[spec.name]}])",
                    "Tool names must be unique within a manual; rename one of them.",
                )
            seen[spec.name] = i
            specs.append(spec)
        if not specs:
            raise self.error(
                "tools",
                'no tool has call_template_type "sse"',
                "This bridge serves only SSE tools; see the warnings for the skipped ones.",
            )
        if self.legacy:
            self.warnings.insert(
                0,
                f"{self.source}: deprecated UTCP 0.x shape ({', '.join(self.legacy)}) accepted; "
                'use "utcp_version", "tool_call_template" and "call_template_type"',
            )
        return specs

    def tool(self, i: int, raw: Any) -> ToolSpec | None:
        path = f"tools[{i}]"
        if not isinstance(raw, dict):
            raise self.error(
                path,
                f"a tool must be an object, got {_describe(raw)}",
                'Use {"name": ..., "inputs": {...}, "tool_call_template": {...}}.',
            )
        known = set(_TOOL_KEYS)
        key = "tool_call_template"
        if key not in raw and "tool_provider" in raw:
            key = "tool_provider"
            known.add(key)
            self._legacy('"tool_provider"')
        if key not in raw:
            raise self.error(
                f"{path}.tool_call_template",
                "missing",
                'Add "tool_call_template": {"call_template_type": "sse", "url": "https://..."}.',
            )
        template = raw[key]
        tpath = f"{path}.{key}"
        if not isinstance(template, dict):
            expected = _EXPECTED["tool_call_template"]
            raise self.error(tpath, f"got {_describe(template)}", f"Use {expected}.")
        kind = self.template_kind(template, tpath)
        if kind != "sse":
            label = f" {raw['name']!r}" if isinstance(raw.get("name"), str) else ""
            self.warnings.append(
                f"{self.source}: {path}{label}: call_template_type {kind!r} is not SSE; "
                "tool skipped"
            )
            return None
        self.warn_unknown(raw, known, path)
        fields = {k: v for k, v in raw.items() if k in _TOOL_KEYS}
        fields["tool_call_template"] = self.normalise_template(template, tpath)
        try:
            spec = ToolSpec.model_validate(fields)
        except ValidationError as exc:
            raise self.validation_error(exc, path, key) from None
        self.check_inputs(spec, path)
        self.check_template(spec, tpath)
        return spec

    def _legacy(self, what: str) -> None:
        if what not in self.legacy:
            self.legacy.append(what)

    def template_kind(self, raw: dict[str, Any], path: str) -> str:
        """The call template type, also read from the legacy `provider_type`."""
        key = "call_template_type"
        if key not in raw and "provider_type" in raw:
            key = "provider_type"
            self._legacy('"provider_type"')
        kind = raw.get(key)
        if kind is None:
            raise self.error(
                f"{path}.call_template_type", "missing", 'Add "call_template_type": "sse".'
            )
        if not isinstance(kind, str):
            raise self.error(f"{path}.{key}", f"got {_describe(kind)}", 'Use "sse".')
        return kind

    def normalise_template(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        """Keep the fields we model, warning about the rest (also inside `auth`)."""
        known = set(_TEMPLATE_KEYS)
        if "call_template_type" not in raw:
            known.add("provider_type")
        self.warn_unknown(raw, known, path)
        template = {k: v for k, v in raw.items() if k in SseCallTemplate.model_fields}
        template["call_template_type"] = "sse"
        auth = raw.get("auth")
        kind = auth.get("auth_type") if isinstance(auth, dict) else None
        if isinstance(kind, str) and kind in AUTH_MODELS:
            self.warn_unknown(auth, set(AUTH_MODELS[kind].model_fields), f"{path}.auth")
        return template

    def validation_error(self, exc: ValidationError, path: str, template_key: str) -> ManualError:
        """Turn pydantic's first error into our message: path, what was found, what to write."""
        errors = exc.errors()
        first = errors[0]
        loc = [template_key if part == "tool_call_template" else part for part in first["loc"]]
        if len(loc) > 2 and loc[1] == "auth" and loc[2] in AUTH_MODELS:
            del loc[2]  # pydantic puts the auth_type tag in the location
        where = path
        for part in loc:
            where = join_path(where, part)
        field_name = next((p for p in reversed(loc) if p in _EXPECTED), "")
        expected = _EXPECTED.get(str(field_name), "a valid value")
        kind = first["type"]
        if kind == "union_tag_invalid":
            tag = json.dumps(first["input"].get("auth_type"))[:40]
            where, problem = f"{where}.auth_type", f"unknown auth_type {tag}"
            hint = f"Use one of {_AUTH_CHOICES}."
        elif kind == "union_tag_not_found":
            where, problem = f"{where}.auth_type", "missing"
            hint = f"Add an auth_type: one of {_AUTH_CHOICES}."
        elif kind == "missing":
            problem, hint = "missing", f'Add "{field_name}": {expected}.'
        else:
            problem, hint = f"got {_describe(first['input'])}", f"Use {expected}."
        if len(errors) > 1:
            hint += f" ({len(errors) - 1} more problem(s) in this tool.)"
        return self.error(where, problem, hint)

    def check_inputs(self, spec: ToolSpec, path: str) -> None:
        inputs = spec.inputs
        ipath = f"{path}.inputs"
        inputs.setdefault("type", "object")
        if inputs["type"] != "object":
            raise self.error(
                f"{ipath}.type",
                f"got {_describe(inputs['type'])}",
                'MCP tool arguments are a JSON object: use "type": "object".',
            )
        try:
            Draft202012Validator.check_schema(inputs)
        except SchemaError as exc:
            message = exc.message if len(exc.message) <= 200 else exc.message[:197] + "..."
            raise self.error(
                ipath + exc.json_path.removeprefix("$"),
                f"not a valid JSON schema: {message}",
                "Fix the schema (JSON Schema draft 2020-12).",
            ) from None
        try:
            check_schema(inputs)
        except SchemaProblem as exc:
            where = ipath
            for part in exc.path:
                where = join_path(where, part)
            raise self.error(where, exc.problem, exc.hint) from None
        for name in inputs.get("properties", {}):
            if name in RESERVED_ARGUMENTS:
                raise self.error(
                    join_path(f"{ipath}.properties", name),
                    f"{name!r} is reserved for the bridge's control arguments "
                    f"({', '.join(RESERVED_ARGUMENTS)})",
                    "Rename this input in the manual.",
                )
        self.warn_unportable(inputs, ipath)

    def warn_unportable(self, inputs: dict[str, Any], ipath: str) -> None:
        """The schema stays as written (README, "Design notes"), but its author should know."""
        problems = strict_problems(inputs)
        for found in problems[:_UNPORTABLE_SHOWN]:
            where = ipath
            for part in found.path:
                where = join_path(where, part)
            self.warnings.append(
                f"{self.source}: {where} {found.problem}, which strict MCP clients flag: "
                f"{found.hint}"
            )
        if len(problems) > _UNPORTABLE_SHOWN:
            more = len(problems) - _UNPORTABLE_SHOWN
            self.warnings.append(
                f"{self.source}: {ipath}: {more} more place{'s' if more > 1 else ''} in these "
                "inputs that strict MCP clients flag"
            )

    def check_template(self, spec: ToolSpec, path: str) -> None:
        template = spec.template
        url = template.url
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        if parts is None or ("$" not in url and not (parts.scheme in _SCHEMES and parts.netloc)):
            raise self.error(
                f"{path}.url", f"{url!r} is not an http(s) URL", f"Use {_EXPECTED['url']}."
            )
        if _PLACEHOLDER.search(parts.scheme + parts.netloc):
            raise self.error(
                f"{path}.url",
                f"{url!r} has a {{placeholder}} in its scheme or host",
                "Put {placeholders} in the path or query only, so that a tool argument cannot "
                "choose the host that receives the credentials.",
            )
        declared = spec.inputs.get("properties", {})
        fields = [("url", name) for name in _PLACEHOLDER.findall(url)]
        if template.body_field:
            fields.append(("body_field", template.body_field))
        fields += [("header_fields", name) for name in template.header_fields or ()]
        for key, name in fields:
            if name in RESERVED_ARGUMENTS:
                raise self.error(
                    f"{path}.{key}",
                    f"{name!r} is one of the bridge's control arguments "
                    f"({', '.join(RESERVED_ARGUMENTS)}), so the upstream could never receive it",
                    f"Rename it here and in {path.rpartition('.')[0]}.inputs, e.g. to "
                    f"'upstream_{name}'.",
                )
            if name not in declared:
                self.warnings.append(
                    f"{self.source}: {path}.{key}: {name!r} is not a declared input; "
                    f"add it to {path.rpartition('.')[0]}.inputs.properties"
                )
