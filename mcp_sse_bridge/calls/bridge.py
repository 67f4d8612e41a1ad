"""The library facade: manuals in, bounded batches of live events out.

`Bridge` owns what outlives a call (one HTTP client, the OAuth2 token cache, the tool table) and
runs each call: control arguments and manual arguments are validated, the call template's
variables are substituted, the request is built and checked, then the stream is collected into
a batch. It never imports the MCP layer; `server.py` and `cli.py` are thin layers over it.

Decisions worth knowing:
- Control arguments above the server's ceilings are refused with the ceiling in the message,
  not clamped: a caller asking for 5000 events should learn that it gets at most 1000.
- The manual's `event_type` is the tool's own filter; `event_types` may only narrow it.
- An argument the manual's inputs do not declare is refused (UTCP would send it as a query
  parameter), unless the schema itself allows extra properties.
- Every error leaving `call()` is redacted with the call's secrets (message, hint and body
  excerpt, with the exception chain dropped), and so are the events and errors of a batch.
- The shared HTTP client keeps no cookies: one upstream's cookies never reach another call.
- Each request gets a connection of its own (`transport.StreamTransport`), closed with the
  response: an event stream is rarely left in a state to reuse, and a pool's bookkeeping cost
  as much as the connection. `Limits.max_connections` bounds them all together.
- While a bridge is open, the HTTP client's loggers mask its secrets: httpx2 logs every request
  URL at INFO ("HTTP Request: GET https://...?api_key=...") and httpcore2 the response headers
  at DEBUG, which a library user's logging setup would otherwise print as they are. So the
  bridge-wide registry also learns the credentials calls compute (OAuth2 tokens, Basic).
"""

from __future__ import annotations

import contextlib
import copy
import http.cookiejar
import json
import logging
import math
import os
import re
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from .. import __version__
from ..errors import ArgumentError, BridgeError, ManualError, UpstreamError
from ..manual import RESERVED_ARGUMENTS, Auth, Manual, ToolSpec, tool_names
from ..manual.variables import SecretRegistry, Variables, needs_substitution
from ..upstream.auth import TokenCache, apply_auth
from ..upstream.request import PreparedRequest, build_request
from ..upstream.stream import StreamOptions, StreamState, open_chunks
from ..upstream.transport import (
    StreamClient,
    StreamTransport,
    environment_proxies,
    proxy_credentials,
)
from ..urls import check_url
from .batch import Accepted, Batch, Bounds, EventFilter, OnEvent

MAX_RETRY_MS = 30000  # backoff cap, unless the manual's retry_timeout is longer
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
# Loggers that print request URLs (httpx2, INFO) or response headers (httpcore2, DEBUG).
_HTTP_LOGGERS = (
    "httpx2",
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
)


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


@dataclass(frozen=True)
class BridgeTool:
    manual: Manual
    spec: ToolSpec
    name: str  # the MCP name


@dataclass(frozen=True)
class _Plan:
    """A validated call: the manual's arguments and the parsed control arguments."""

    tool: BridgeTool
    arguments: dict[str, Any]
    bounds: Bounds
    event_types: frozenset[str] | None
    match: dict[str, Any] | None
    last_event_id: str


class Bridge:
    """Runs tool calls against upstream event streams; use it as an async context manager."""

    def __init__(
        self,
        manuals: list[Manual],
        *,
        variables: Variables,
        limits: Limits = Limits(),
        allow_insecure_http: bool = False,
    ) -> None:
        self.manuals = manuals
        self.variables = variables
        self.limits = limits
        self.allow_insecure_http = allow_insecure_http
        self.tools = {
            name: BridgeTool(manual, spec, name)
            for name, (manual, spec) in tool_names(manuals).items()
        }
        known = [*_known_secrets(self.tools.values(), variables), *proxy_credentials()]
        self.secrets = SecretRegistry(known)
        # A template without variables is used as it is: no dump and re-validation per call.
        self._templated = {
            name for name, tool in self.tools.items() if needs_substitution(tool.spec.template)
        }
        self._validators = {name: _validator(tool.spec.inputs) for name, tool in self.tools.items()}
        self._tokens = TokenCache()
        self._ssl_context = _ssl_context()
        self._client: httpx2.AsyncClient | None = None
        self._streams: StreamClient | None = None
        self._log_filter = _RedactingFilter(self.secrets)

    async def __aenter__(self) -> Bridge:
        no_cookies = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
        limits = httpx2.Limits(
            max_connections=self.limits.max_connections, max_keepalive_connections=100
        )
        direct = StreamTransport(self.limits.max_connections, ssl_context=self._ssl_context)
        proxies = environment_proxies(limits, ssl_context=self._ssl_context)
        self._client = httpx2.AsyncClient(  # for OAuth2 tokens; streams go through `_streams`
            headers={"User-Agent": f"mcp-sse-bridge/{__version__}"},
            cookies=http.cookiejar.CookieJar(policy=no_cookies),
            timeout=httpx2.Timeout(self.limits.connect_timeout),
            transport=direct,
            mounts=proxies,
            follow_redirects=False,
        )
        # Only a proxy route needs `client.send`: NO_PROXY entries alone lead to `direct` anyway.
        routed = any(route is not None for route in proxies.values())
        self._streams = StreamClient(self._client, None if routed else direct)
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)
        if self._client is not None:
            await self._client.aclose()
            self._client = self._streams = None

    def input_schema(self, name: str) -> dict[str, Any]:
        """The tool's MCP input schema: the manual's inputs plus the control arguments."""
        tool = self._tool(name)
        schema = copy.deepcopy(tool.spec.inputs)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {}).update(self._control_schema(tool))
        return schema

    def validate_arguments(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Raise `ArgumentError` naming the argument (path) and the problem, if any."""
        self._plan(name, arguments)

    async def call(
        self, name: str, arguments: Mapping[str, Any], *, on_event: OnEvent | None = None
    ) -> Batch:
        """Collect one batch; `on_event(event, count)` is awaited for each accepted event."""
        secrets = self.secrets.copy()
        try:
            async with self._open(name, arguments, secrets) as run:
                return await run.collect(on_event)
        except BridgeError as exc:
            raise _redacted(exc, secrets) from None

    async def events(
        self, name: str, arguments: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The accepted events of one call as they arrive, under the same bounds as `call`.

        Unlike `call`, an upstream error after some events is raised: they were delivered.
        """
        secrets = self.secrets.copy()
        try:
            async with (
                self._open(name, arguments, secrets) as run,
                contextlib.aclosing(aiter(run)) as accepted,
            ):
                async for item in accepted:
                    yield item
        except BridgeError as exc:
            raise _redacted(exc, secrets) from None

    @contextlib.asynccontextmanager
    async def _open(
        self, name: str, arguments: Mapping[str, Any], secrets: SecretRegistry
    ) -> AsyncIterator[Accepted]:
        """Validate, substitute, build and check the request; open the stream and its pass."""
        if self._client is None or self._streams is None:
            raise RuntimeError("Bridge is not open: use `async with Bridge(...) as bridge:`")
        client, streams = self._client, self._streams
        plan = self._plan(name, arguments)
        manual, spec = plan.tool.manual, plan.tool.spec
        template = spec.template
        if plan.tool.name in self._templated:
            template = self.variables.substitute(manual, template, secrets, tool=spec)
        for value in _auth_secrets(template.auth):
            secrets.add(value)
        prepared = build_request(template, plan.arguments)
        check_url(prepared.url, allow_insecure_http=self.allow_insecure_http)
        refresh = False

        async def connect(last_event_id: str) -> PreparedRequest:
            nonlocal refresh
            request = await apply_auth(
                prepared, template.auth, client=client, tokens=self._tokens, force_refresh=refresh
            )
            refresh = False
            for header, value in request.headers.items():  # computed credentials: tokens, basic
                if prepared.headers.get(header) != value:
                    for registry in (secrets, self.secrets):  # bridge-wide for the log filter
                        registry.add(value)
                        registry.add(value.partition(" ")[2])
            return request

        async def refresh_auth() -> bool:
            nonlocal refresh
            refresh = template.auth is not None and template.auth.auth_type == "oauth2"
            return refresh

        options = StreamOptions(
            reconnect=template.reconnect,
            retry_ms=template.retry_timeout,
            max_retry_ms=max(MAX_RETRY_MS, template.retry_timeout),
            connect_timeout=self.limits.connect_timeout,
            allow_insecure_http=self.allow_insecure_http,
        )
        state = StreamState(last_event_id=plan.last_event_id)
        types = plan.event_types
        if template.event_type is not None:
            types = frozenset({template.event_type})
        event_filter = EventFilter(event_types=types, match=plan.match)
        chunks = open_chunks(streams, connect, options, state, refresh_auth=refresh_auth)
        async with contextlib.aclosing(chunks):
            yield Accepted(
                chunks,
                state,
                filter=event_filter,
                bounds=plan.bounds,
                redact=secrets.redact if secrets else None,
            )

    def _tool(self, name: str) -> BridgeTool:
        try:
            return self.tools[name]
        except KeyError:
            known = ", ".join(self.tools) or "none"
            raise ArgumentError(
                f"Unknown tool {name!r}.", hint=f"Available tools: {known}."
            ) from None

    def _plan(self, name: str, arguments: Mapping[str, Any]) -> _Plan:
        tool = self._tool(name)
        if not isinstance(arguments, Mapping):
            raise ArgumentError(
                f"Tool {name!r} takes an object of arguments, not {type(arguments).__name__}.",
                hint="Pass the arguments as a JSON object.",
            )
        manual_args = {k: v for k, v in arguments.items() if k not in RESERVED_ARGUMENTS}
        _refuse_undeclared(name, tool.spec.inputs, manual_args)
        try:
            error = best_match(self._validators[name].iter_errors(manual_args))
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
        limits = self.limits
        types = _strings(arguments, "event_types")
        declared = tool.spec.template.event_type
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
        )
        return _Plan(
            tool=tool,
            arguments=manual_args,
            bounds=bounds,
            event_types=types,
            match=_match(arguments),
            last_event_id=_last_event_id(arguments),
        )

    def _control_schema(self, tool: BridgeTool) -> dict[str, dict[str, Any]]:
        limits = self.limits
        declared = tool.spec.template.event_type
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
        }
        return {name: schema[name] for name in RESERVED_ARGUMENTS}


class _RedactingFilter(logging.Filter):
    """Masks the bridge's secrets in a log record, whatever handler prints it later."""

    def __init__(self, secrets: SecretRegistry) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._secrets.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _ssl_context() -> ssl.SSLContext:
    """httpx2's default context, which trusts only SSL_CERT_FILE when it is set. Made with the
    bridge, so that a file that cannot be loaded stops `serve` and `call` with one line naming
    it, rather than with a traceback from inside httpx2 once the server runs."""
    try:
        return httpx2.create_ssl_context()
    except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
        path = os.environ.get("SSL_CERT_FILE")
        where = f"SSL_CERT_FILE ({path})" if path else "the system"
        raise BridgeError(
            f"Cannot load the CA certificates of {where}: {exc}.",
            hint="Point SSL_CERT_FILE at a PEM file of CA certificates, or unset it to trust "
            "the system's.",
        ) from None


def _known_secrets(tools: Iterable[BridgeTool], variables: Variables) -> list[str]:
    """Every value the bridge could send as a variable or a credential written in a manual:
    redacted from every call's output and from the HTTP client's log lines."""
    values = list(variables.explicit.values())
    for tool in tools:
        literal = _auth_secrets(tool.spec.template.auth)
        values.extend(value for value in literal if not needs_substitution(value))
        for var in variables.referenced(tool.spec):
            if (value := variables.lookup(tool.manual, var)) is not None:
                values.append(value)
    return values


def _auth_secrets(auth: Auth | None) -> list[str]:
    """Credentials written literally in a manual are secrets too, not only `${VAR}` values."""
    if auth is None:
        return []
    if auth.auth_type == "api_key":
        return [auth.api_key]
    if auth.auth_type == "basic":
        return [auth.password]
    return [auth.client_secret]


def _redacted(exc: BridgeError, secrets: SecretRegistry) -> BridgeError:
    """`exc` with every secret masked; the chain is dropped by the caller (it may hold URLs)."""
    exc.message = secrets.redact(exc.message)
    exc.args = (exc.message,)
    if exc.hint is not None:
        exc.hint = secrets.redact(exc.hint)
    if isinstance(exc, UpstreamError):
        exc.body_excerpt = secrets.redact(exc.body_excerpt)
    return exc


def _validator(inputs: dict[str, Any]) -> Validator:
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
