"""UTCP manuals: the models, loading from a file or a URL, legacy shapes, MCP tool names.

A manual is input from outside the program, often written by hand, so loading it never raises
anything but `ManualError`, and every message names the file, the JSON path and the fix. Keys we
do not know are ignored with a warning (real manuals carry `http_method`, `content_type`), tools
of another protocol are skipped with a warning, and the UTCP 0.x shape is still accepted.
What would only fail later is refused here, so that `check` never calls a broken tool ready: an
input schema whose `$ref` cannot be used or whose `pattern` backtracks catastrophically
(`schemas.py`), and a template that names a control argument the upstream could never receive.

Trust follows the origin: a local file the user named is trusted, a manual fetched from a URL is
not (see `variables.Variables`, which limits what an untrusted manual may read).

MCP tool names (`tool_names`) are the tool's own name for a single manual, `<manual>_<tool>` for
several, sanitised to `[A-Za-z0-9_-]` (other characters become `_`) and cut to 64 characters
(Claude Desktop's cap) with `_` + 6 hex digits of the full name's sha1 when cut. Names that
still collide get `_2`, `_3`, ... in manual order, then tool order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ManualError
from .schemas import SchemaProblem, check_schema
from .urls import is_loopback

RESERVED_ARGUMENTS: tuple[str, ...] = (
    "max_events",
    "max_seconds",
    "last_event_id",
    "until_event",
    "event_types",
    "match",
)
"""Control arguments the bridge adds to every tool; a manual input may not use these names."""

MAX_MANUAL_BYTES = 5 * 1024 * 1024
MAX_NESTING = 64
FETCH_TIMEOUT = 10.0
MAX_TOOL_NAME = 64


class _Model(BaseModel):
    # Strict: a manual is JSON, so "true" for a bool or "30000" for an int is a mistake to report.
    model_config = ConfigDict(extra="ignore", strict=True)


class ApiKeyAuth(_Model):
    auth_type: Literal["api_key"] = "api_key"
    api_key: str
    var_name: str = "X-Api-Key"
    location: Literal["header", "query", "cookie"] = "header"


class BasicAuth(_Model):
    auth_type: Literal["basic"] = "basic"
    username: str
    password: str


class OAuth2Auth(_Model):
    auth_type: Literal["oauth2"] = "oauth2"
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


Auth = Annotated[ApiKeyAuth | BasicAuth | OAuth2Auth, Field(discriminator="auth_type")]
_AUTH_MODELS: dict[str, type[_Model]] = {
    "api_key": ApiKeyAuth,
    "basic": BasicAuth,
    "oauth2": OAuth2Auth,
}


class SseCallTemplate(_Model):
    """UTCP's SSE call template, with UTCP's defaults."""

    call_template_type: Literal["sse"] = "sse"
    url: str = Field(min_length=1)
    event_type: str | None = None
    reconnect: bool = True
    retry_timeout: int = Field(default=30000, ge=0, le=3_600_000)  # an hour: no float overflow
    headers: dict[str, str] | None = None
    body_field: str | None = None
    header_fields: list[str] | None = None
    auth: Auth | None = None


class ToolSpec(_Model):
    """One tool of a manual; `template` is read from the JSON key `tool_call_template`."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    name: str = Field(min_length=1)
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    outputs: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    average_response_size: int | None = Field(default=None, ge=0)
    template: SseCallTemplate = Field(alias="tool_call_template")


@dataclass
class Manual:
    name: str
    source: str
    trusted: bool
    tools: list[ToolSpec]
    warnings: list[str] = field(default_factory=list)


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
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
# As request.py fills them; `${VAR}` is a variable, not a placeholder.
_PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}]+)\}")
_NAMED_SPEC = re.compile(r"([A-Za-z0-9_-]+)=(.+)", re.DOTALL)
_SCHEMES = ("http", "https")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def sanitise_name(name: str) -> str:
    """Map a name onto the characters MCP hosts accept in tool names."""
    return _UNSAFE_NAME_CHARS.sub("_", name)


def parse_manual(text: str | bytes, *, name: str, source: str, trusted: bool) -> Manual:
    """Validate a manual's text; every problem is a `ManualError`, unknown keys are warnings."""
    data = _decode_json(text, source)
    reader = _Reader(source)
    try:
        tools = reader.manual(data)
    except RecursionError:
        raise ManualError(
            f"{source}: the manual is nested too deeply to validate.",
            hint=f"Keep JSON nesting under {MAX_NESTING} levels.",
        ) from None
    return Manual(sanitise_name(name) or "manual", source, trusted, tools, reader.warnings)


def load_manual(spec: str, *, allow_insecure_http: bool = False) -> Manual:
    """Load `PATH`, `NAME=PATH`, `URL` or `NAME=URL`.

    The name defaults to the file (or URL path) stem. URLs are fetched with https, or http to a
    loopback host unless `allow_insecure_http`; their manuals are untrusted.
    """
    name, target = None, spec
    match = _NAMED_SPEC.fullmatch(spec)
    if match and not Path(spec).exists():
        name, target = match.groups()
    if _URL_SCHEME.match(target):
        source = _display_url(target)
        text = _fetch(target, source, allow_insecure_http=allow_insecure_http)
        stem = PurePosixPath(urlsplit(target).path).stem or urlsplit(target).hostname or "manual"
        return parse_manual(text, name=name or stem, source=source, trusted=False)
    text = _read_file(target)
    return parse_manual(text, name=name or Path(target).stem, source=target, trusted=True)


def tool_names(manuals: list[Manual]) -> dict[str, tuple[Manual, ToolSpec]]:
    """Give every tool a unique, deterministic MCP name (rules in the module docstring)."""
    prefixed = len(manuals) > 1
    names: dict[str, tuple[Manual, ToolSpec]] = {}
    for manual in manuals:
        for tool in manual.tools:
            full = f"{manual.name}_{tool.name}" if prefixed else tool.name
            base = _fit(sanitise_name(full), full)
            name, n = base, 2
            while name in names:
                suffix = f"_{n}"
                name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
                n += 1
            names[name] = (manual, tool)
    return names


def _fit(name: str, full: str) -> str:
    if len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha1(full.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{name[: MAX_TOOL_NAME - 7]}_{digest}"


# -- reading bytes ---------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    file = Path(path).expanduser()
    try:
        if problem := _not_a_file(file):
            raise ManualError(
                f"{path}: {problem}.",
                hint=f"Give the path of a manual JSON file (relative to {os.getcwd()}).",
            )
        if file.stat().st_size > MAX_MANUAL_BYTES:
            raise _too_big(path)
        with file.open("rb") as f:
            return f.read(MAX_MANUAL_BYTES + 1)
    except OSError as exc:
        raise ManualError(
            f"{path}: cannot read the manual ({exc.strerror or type(exc).__name__}).",
            hint="Check the path and the file's permissions.",
        ) from None


_FILE_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISCHR, "not a regular file (a character device)"),
    (stat.S_ISBLK, "not a regular file (a block device)"),
    (stat.S_ISFIFO, "not a regular file (a pipe)"),
    (stat.S_ISSOCK, "not a regular file (a socket)"),
)


def _not_a_file(file: Path) -> str | None:
    """Why `file` cannot be a manual, or None for a regular file (other OSErrors propagate).

    Devices, pipes and sockets are refused: reading one may never end (`/dev/zero`, a FIFO
    without a writer).
    """
    try:
        mode = file.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "file not found"
    if stat.S_ISREG(mode):
        return None
    return next((problem for test, problem in _FILE_KINDS if test(mode)), "not a regular file")


def _fetch(url: str, source: str, *, allow_insecure_http: bool) -> bytes:
    def check(request: httpx2.Request) -> None:
        _check_manual_url(str(request.url), source, allow_insecure_http=allow_insecure_http)

    _check_manual_url(url, source, allow_insecure_http=allow_insecure_http)
    try:
        with (
            httpx2.Client(
                timeout=FETCH_TIMEOUT,
                follow_redirects=True,
                max_redirects=5,
                trust_env=False,
                event_hooks={"request": [check]},
            ) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ManualError(
                    f"{source}: HTTP {response.status_code} while fetching the manual.",
                    hint="Check the URL, or download the manual and pass its path.",
                )
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_MANUAL_BYTES:
                raise _too_big(source)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_MANUAL_BYTES:
                    raise _too_big(source)
            return bytes(body)
    except httpx2.TimeoutException:
        raise ManualError(
            f"{source}: no answer within {FETCH_TIMEOUT:g} s while fetching the manual.",
            hint="Check that the server is up, or download the manual and pass its path.",
        ) from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ManualError(
            f"{source}: cannot fetch the manual ({type(exc).__name__}: {exc}).",
            hint="Check the URL and your connection, or download the manual and pass its path.",
        ) from None


def _check_manual_url(url: str, source: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse schemes other than https, and http except to loopback (checked on each redirect)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or not host:
        raise ManualError(
            f"{source}: not a valid manual URL.",
            hint="Use a URL such as https://example.com/manual.json, or a local path.",
        )
    scheme = parts.scheme
    if scheme == "https" or (scheme == "http" and (allow_insecure_http or is_loopback(host))):
        return
    if scheme == "http":
        raise ManualError(
            f"{source}: refusing to fetch a manual over plain http from {host}.",
            hint="Use https://, or --allow-insecure-http if you accept the risk.",
        )
    raise ManualError(
        f"{source}: unsupported URL scheme {scheme!r} for a manual.",
        hint="Use https:// (or http:// to a loopback host), or a local path.",
    )


def _display_url(url: str) -> str:
    """The URL as shown in messages: userinfo (which may hold a password) is masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _too_big(source: str) -> ManualError:
    return ManualError(
        f"{source}: the manual is larger than {MAX_MANUAL_BYTES // (1024 * 1024)} MiB.",
        hint="Split it into several manuals, or check that this is the right file.",
    )


def _decode_json(text: str | bytes, source: str) -> Any:
    if isinstance(text, bytes):
        if len(text) > MAX_MANUAL_BYTES:
            raise _too_big(source)
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManualError(
                f"{source}: the manual is not UTF-8 text (byte 0x{text[exc.start]:02x} "
                f"at offset {exc.start}).",
                hint="Save the file as UTF-8 JSON.",
            ) from None
    elif len(text) > MAX_MANUAL_BYTES:
        raise _too_big(source)
    try:
        data = json.loads(text.removeprefix("\ufeff"), parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ManualError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
            hint="Fix the JSON syntax there (often a trailing comma or a missing quote).",
        ) from None
    except _NotJSON as exc:
        raise ManualError(
            f"{source}: invalid JSON: {exc} is not a JSON value.",
            hint="Use a number or null instead.",
        ) from None
    except RecursionError:
        raise ManualError(
            f"{source}: the JSON is nested too deeply.",
            hint=f"Keep JSON nesting under {MAX_NESTING} levels.",
        ) from None
    _check_tree(data, source)
    return data


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


def _check_tree(data: Any, source: str) -> None:
    """Bound the nesting and refuse lone surrogates (`"\\ud800"`), which cannot be sent on."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ManualError(
                f"{source}: {path or 'the manual'}: nested more than {MAX_NESTING} levels deep.",
                hint="Flatten this part of the manual.",
            )
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, _join(path, key), source)
                stack.append((item, _join(path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path, source)


def _check_text(text: str, path: str, source: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ManualError(
            f"{source}: {path or 'the manual'}: contains an unpaired UTF-16 surrogate escape.",
            hint="Use a valid \\u escape pair, or the character itself.",
        ) from None


# -- validating structure --------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
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


class _Reader:
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
        if isinstance(kind, str) and kind in _AUTH_MODELS:
            self.warn_unknown(auth, set(_AUTH_MODELS[kind].model_fields), f"{path}.auth")
        return template

    def validation_error(self, exc: ValidationError, path: str, template_key: str) -> ManualError:
        """Turn pydantic's first error into our message: path, what was found, what to write."""
        errors = exc.errors()
        first = errors[0]
        loc = [template_key if part == "tool_call_template" else part for part in first["loc"]]
        if len(loc) > 2 and loc[1] == "auth" and loc[2] in _AUTH_MODELS:
            del loc[2]  # pydantic puts the auth_type tag in the location
        where = path
        for part in loc:
            where = _join(where, part)
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
                where = _join(where, part)
            raise self.error(where, exc.problem, exc.hint) from None
        for name in inputs.get("properties", {}):
            if name in RESERVED_ARGUMENTS:
                raise self.error(
                    _join(f"{ipath}.properties", name),
                    f"{name!r} is reserved for the bridge's control arguments "
                    f"({', '.join(RESERVED_ARGUMENTS)})",
                    "Rename this input in the manual.",
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
