"""The tool a probe suggests: the probed URL as a UTCP tool, every credential a `${VAR}`.

`plan_tool` turns the probe's command line into a tool, the arguments to call it with, and the
values of the variables it introduced: the probe then runs that very tool, so the manual it
writes is the one that was tested. Credentials given literally never reach the tool: a
`user:pass@` in the URL becomes `basic` auth, a query parameter whose name says key, token,
secret, signature or the like becomes `api_key` auth in the query, a literal value of a header
such as `Authorization`, `Cookie` or `X-Api-Key` becomes a variable, each with a name derived
from where it was (`X-Api-Key` -> `${X_API_KEY}`). `--bearer-env VAR` is `api_key` auth with
`Bearer ${VAR}` in `Authorization`. A tool has one `auth`: every further credential of the query
stays in the URL as `name=${VAR}` (so `?access_token=A&api_key=B` writes two variables, and so
does a `user:pass@` beside a `?token=`); two credentials whose names map to the same variable
get `TOKEN`, `TOKEN_2`. Values written as `${VAR}` are kept as they are.

Everything else in the query, and every `{placeholder}` of the path, becomes a required input
typed by the value given (`depth=5` an integer, `symbol=AAPL` a string, `007` a string).
`finish_tool` adds what the probe found: the description and `reconnect`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from ..errors import BridgeError
from ..upstream.request import header_problem
from ..urls import display_url
from . import ids

if TYPE_CHECKING:
    from .probe import ProbeReport

UTCP_VERSION = "1.0.1"
MAX_DESCRIBED_TYPES = 10

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_SECRET_NAME = re.compile(r"(?i)key|token|secret|passw|signature|^sig$|session|credential|auth")
_SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_SCHEME_PREFIX = re.compile(r"(?i)(bearer|basic|token|digest)\s+(.+)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER_VALUE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|(?<!\$)\$[A-Za-z_]")  # kept as written
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")
_SKIPPED_SEGMENTS = re.compile(r"(?i)api|v\d+(\.\d+)*|sse|rest")


@dataclass
class ToolPlan:
    """A tool to probe and write, the call's arguments, and the values it took out."""

    tool: dict[str, Any]
    arguments: dict[str, Any]
    values: dict[str, str] = field(default_factory=dict)  # variable -> the literal it replaced
    notes: list[str] = field(default_factory=list)  # what the user must set before using it


def plan_tool(
    url: str, words: dict[str, str], headers: list[str], bearer_env: str | None
) -> ToolPlan:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BridgeError(
            f"probe: {_typed(url)!r} is not an http(s) URL.",
            hint="Give the event stream's URL, e.g. https://api.example.com/stream.",
        )
    plan = ToolPlan(tool={}, arguments={})
    auth = _bearer_auth(bearer_env) if bearer_env is not None else None
    if (basic := _userinfo_auth(parts.username, parts.password, plan)) is not None:
        if auth is not None:
            raise BridgeError(
                "probe: --bearer-env and a user:password@ in the URL cannot both be used.",
                hint="Keep one way of authenticating (both would send Authorization).",
            )
        auth = basic
    remaining = dict(words)
    properties: dict[str, Any] = {}
    for name in _PLACEHOLDER.findall(parts.path):
        if name not in remaining:
            raise BridgeError(
                f"probe: the URL's placeholder {{{name}}} has no value.",
                hint=f"Add {name}=VALUE after the URL, e.g. {name}=AAPL.",
            )
        properties[name] = _input(name, remaining.pop(name), plan, "path segment")
    query = [*parse_qsl(parts.query, keep_blank_values=True), *remaining.items()]
    auth, secret_query = _query(query, properties, auth, plan)
    template: dict[str, Any] = {
        "call_template_type": "sse",
        "url": urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path or "/", secret_query, "")
        ),
    }
    if static := _headers(headers, plan):
        template["headers"] = static
    if auth is not None:
        template["auth"] = auth
    plan.tool = {
        "name": tool_name(parts.path, parts.hostname),
        "description": "",
        "inputs": {"type": "object", "properties": properties, "required": list(properties)},
        "tool_call_template": template,
    }
    return plan


def _query(
    pairs: list[tuple[str, str]],
    properties: dict[str, Any],
    auth: dict[str, Any] | None,
    plan: ToolPlan,
) -> tuple[dict[str, Any] | None, str]:
    """Inputs for the query's plain parameters; `${VAR}`s for its credentials.

    The first credential becomes `api_key` auth when the tool has none yet; any further one
    stays in the URL's query as `name=${VAR}` (a tool has one auth, every credential a variable).
    """
    seen: set[str] = set(properties)
    kept: list[str] = []
    for name, value in pairs:
        if name in seen:
            raise BridgeError(
                f"probe: the query parameter {name!r} is given twice.",
                hint="Give each query parameter once (lists are not supported here).",
            )
        seen.add(name)
        if not _SECRET_NAME.search(name):
            properties[name] = _input(name, value, plan, "query parameter")
        elif auth is None:
            auth = _query_auth(name, value, plan)
        else:
            what = f"the value of the query parameter {name!r}"
            kept.append(f"{quote(name, safe='')}={_remember(plan, var_name(name), value, what)}")
    return auth, "&".join(kept)


def _typed(url: str) -> str:
    """The URL as the user typed it, without the parts where credentials live."""
    if "://" in url:
        return display_url(url)
    head, slash, path = url.partition("?")[0].partition("#")[0].partition("/")
    return (head.rpartition("@")[2] + slash + path)[:200]


def tool_name(path: str, host: str) -> str:
    """`/api/v1/prices/stream/{symbol}` -> `prices_stream`; `/{kind}` -> `kind`.

    From the path's fixed segments, else its placeholders' names, else the host's first label
    (never an IP address's first number), else `stream`.
    """
    segments = [segment for segment in unquote(path).split("/") if segment]
    fixed = [
        segment
        for segment in segments
        if not _PLACEHOLDER.search(segment) and not _SKIPPED_SEGMENTS.fullmatch(segment)
    ]
    named = [name for segment in segments for name in _PLACEHOLDER.findall(segment)]
    label = "" if _is_address(host) else host.split(".")[0]
    words = "_".join(fixed[-2:]) or "_".join(named[-2:]) or label or "stream"
    name = _NOT_WORD.sub("_", words).strip("_").lower()[:48]
    return name if name and not name[0].isdigit() else f"stream_{name}".rstrip("_")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def var_name(text: str) -> str:
    """`X-Api-Key` -> `X_API_KEY`: an environment variable name for a credential."""
    name = _NOT_WORD.sub("_", text).strip("_").upper() or "SECRET"
    return name if not name[0].isdigit() else f"_{name}"


def _input(name: str, raw: str, plan: ToolPlan, where: str) -> dict[str, Any]:
    value: Any = raw
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, bool | int | float):
        value = parsed
    plan.arguments[name] = value
    kind = {bool: "boolean", int: "integer", float: "number"}.get(type(value), "string")
    return {"type": kind, "description": f"The {where} {name!r}.", "examples": [value]}


def _remember(plan: ToolPlan, var: str, value: str, what: str) -> str:
    """The `${VAR}` standing for a literal credential; the probe resolves it to the value.

    A name already taken by another credential gets a suffix (`TOKEN_2`), so no value is lost.
    """
    if _PLACEHOLDER_VALUE.fullmatch(value):
        return value  # already a variable
    base, number = var, 1
    while plan.values.get(var, value) != value:
        number += 1
        var = f"{base}_{number}"
    if var not in plan.values:
        plan.notes.append(f"set {var} to {what} (the manual reads it as ${{{var}}})")
    plan.values[var] = value
    return f"${{{var}}}"


def _userinfo_auth(user: str | None, password: str | None, plan: ToolPlan) -> dict[str, Any] | None:
    if user is None and password is None:
        return None
    return {
        "auth_type": "basic",
        "username": _remember(plan, "API_USERNAME", unquote(user or ""), "the URL's user name"),
        "password": _remember(plan, "API_PASSWORD", unquote(password or ""), "its password"),
    }


def _query_auth(name: str, value: str, plan: ToolPlan) -> dict[str, Any]:
    var = var_name(name)
    placeholder = _remember(plan, var, value, f"the value of the query parameter {name!r}")
    return {"auth_type": "api_key", "api_key": placeholder, "var_name": name, "location": "query"}


def _bearer_auth(var: str) -> dict[str, Any]:
    if not _VAR_NAME.fullmatch(var):
        raise BridgeError(
            f"probe: --bearer-env {var!r} is not a variable name.",
            hint="Name an environment variable, e.g. --bearer-env API_TOKEN.",
        )
    return {
        "auth_type": "api_key",
        "api_key": f"Bearer ${{{var}}}",
        "var_name": "Authorization",
        "location": "header",
    }


def _headers(raw: list[str], plan: ToolPlan) -> dict[str, str]:
    headers: dict[str, str] = {}
    for text in raw:
        name, sep, value = text.partition(":")
        name, value = name.strip(), value.strip()
        problem = "no ':' between name and value" if not sep else header_problem(name, value)
        if problem:
            raise BridgeError(
                f"probe: --header {name[:40]!r}: {problem}.",
                hint="Write --header 'Name: value', e.g. --header 'X-Api-Key: ${API_KEY}'.",
            )
        if not _REFERENCE.search(value) and (
            name.lower() in _SECRET_HEADERS or _SECRET_NAME.search(name)
        ):
            scheme = _SCHEME_PREFIX.fullmatch(value)
            what = f"the value of the header {name!r}"
            if scheme:
                var = "API_TOKEN" if name.lower() == "authorization" else var_name(name)
                value = (
                    f"{scheme[1]} {_remember(plan, var, scheme[2], what + ' after ' + scheme[1])}"
                )
            else:
                value = _remember(plan, var_name(name), value, what)
        headers[name] = value
    return headers


def finish_tool(plan: ToolPlan, report: ProbeReport) -> dict[str, Any]:
    """The probed tool with its description and `reconnect` set from the findings."""
    tool = json.loads(json.dumps(plan.tool))
    tool["description"] = describe(report)
    template = tool["tool_call_template"]
    template["reconnect"] = report.resume != ids.REPLAYED
    return {"utcp_version": UTCP_VERSION, "manual_version": "1.0.0", "tools": [tool]}


def describe(report: ProbeReport) -> str:
    text = f"Live events from {report.where}."
    types = report.event_types[:MAX_DESCRIBED_TYPES]
    if types:
        described = [
            f"{item.name} (fields: {item.fields})" if item.fields else item.name for item in types
        ]
        more = len(report.event_types) - len(types)
        text += f" Event types seen: {'; '.join(described)}{f'; {more} more' if more else ''}."
    if report.resume == ids.RESUMED:
        text += " The server resumes after Last-Event-ID: pass last_event_id to continue."
    elif report.resume == ids.REPLAYED:
        text += " Each connection replays the stream from its start."
    elif report.resume == ids.IGNORED:
        text += " Each call starts at the live edge (the server does not resume after an id)."
    if report.stop_reason == "closed":
        text += " The server ends the stream by itself."
    return text
