"""The tool a probe suggests: the probed URL as a UTCP tool, every credential a `${VAR}`.

`plan_tool` turns the probe's command line into a tool, the arguments to call it with, and the
values of the variables it introduced: the probe then runs that very tool, so the manual it
writes is the one that was tested. Credentials given literally never reach the tool: a
`user:pass@` in the URL becomes `basic` auth, a query parameter whose name says key, token,
secret, signature or the like becomes `api_key` auth in the query, a literal value of a header
such as `Authorization`, `Cookie` or `X-Api-Key` becomes a variable, each with a name derived
from where it was (`X-Api-Key` -> `${X_API_KEY}`). `--bearer-env VAR` is `api_key` auth with
`Bearer ${VAR}` in `Authorization`. Values written as `${VAR}` are kept as they are.

Everything else in the query, and every `{placeholder}` of the path, becomes a required input
typed by the value given (`depth=5` an integer, `symbol=AAPL` a string, `007` a string).
`finish_tool` adds what the probe found: the description and `reconnect`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

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
            f"probe: {display_url(url)!r} is not an http(s) URL.",
            hint="Give the event stream's URL, e.g. https://api.example.com/stream.",
        )
    plan = ToolPlan(tool={}, arguments={})
    auth = _userinfo_auth(parts.username, parts.password, plan)
    netloc = parts.netloc.rpartition("@")[2]
    properties: dict[str, Any] = {}
    remaining = dict(words)
    for name in _PLACEHOLDER.findall(parts.path):
        if name not in remaining:
            raise BridgeError(
                f"probe: the URL's placeholder {{{name}}} has no value.",
                hint=f"Add {name}=VALUE after the URL, e.g. {name}=AAPL.",
            )
        properties[name] = _input(name, remaining.pop(name), plan, "path segment")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_NAME.search(name) and auth is None:
            auth = _query_auth(name, value, plan)
        elif name in properties:
            raise BridgeError(
                f"probe: the query parameter {name!r} is given twice.",
                hint="Give each query parameter once (lists are not supported here).",
            )
        else:
            properties[name] = _input(name, value, plan, "query parameter")
    for name, value in remaining.items():
        properties[name] = _input(name, value, plan, "query parameter")
    if bearer_env is not None:
        if auth is not None:
            raise BridgeError(
                "probe: --bearer-env and credentials in the URL cannot both be used.",
                hint="Keep one way of authenticating.",
            )
        auth = _bearer_auth(bearer_env)
    template: dict[str, Any] = {
        "call_template_type": "sse",
        "url": urlunsplit((parts.scheme, netloc, parts.path or "/", "", "")),
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


def tool_name(path: str, host: str) -> str:
    """`/api/v1/prices/stream/{symbol}` -> `prices_stream`; the host's first label otherwise."""
    segments = [
        segment
        for segment in unquote(path).split("/")
        if segment and not _PLACEHOLDER.search(segment) and not _SKIPPED_SEGMENTS.fullmatch(segment)
    ]
    words = "_".join(segments[-2:]) or host.split(".")[0] or "stream"
    name = _NOT_WORD.sub("_", words).strip("_").lower()[:48]
    return name if name and not name[0].isdigit() else f"stream_{name}".rstrip("_")


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
    """The `${VAR}` standing for a literal credential; the probe resolves it to the value."""
    if _PLACEHOLDER_VALUE.fullmatch(value):
        return value  # already a variable
    plan.values[var] = value
    plan.notes.append(f"set {var} to {what} (the manual reads it as ${{{var}}})")
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
        if "$" not in value and (name.lower() in _SECRET_HEADERS or _SECRET_NAME.search(name)):
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
