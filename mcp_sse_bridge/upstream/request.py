"""Tool arguments -> an HTTP request for the upstream event stream.

The mapping follows UTCP's order: `header_fields` are popped and sent as headers, then
`body_field` becomes the body, then `{param}` placeholders in the URL are filled, and every
remaining argument becomes a query parameter appended to the URL's own query string. Auth is
applied afterwards by `auth.apply_auth`.

Decisions worth knowing:
- Values are text as JSON would write them: `true`/`false`, numbers as written, objects and
  nested lists as compact JSON; `null` means "not sent" (an unset optional argument).
- Placeholders are filled with `quote(value, safe="")`, so `/`, `?` and `#` cannot change the
  path's shape, and a value that would make a whole path segment empty, `.` or `..` is refused
  (HTTP clients collapse dot segments, which would let an argument climb the path).
- Placeholders may sit in the path and the query only: an argument never chooses the host that
  receives the call's credentials.
- Header values must be printable ASCII (what the HTTP client can send without mangling).
- Text is sent as UTF-8, so an argument holding a lone UTF-16 surrogate (JSON can carry
  `"\\ud800"`) is refused, naming the argument.
- A dict or list body is JSON, unless the manual's static headers set Content-Type
  `application/x-www-form-urlencoded`: then a dict is form-encoded as UTCP's reference client
  does, each value written as a query parameter would be. A string body is sent as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from ..errors import ArgumentError, ManualError

if TYPE_CHECKING:
    from ..manual import SseCallTemplate

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_LINE_BREAK = re.compile(r"[\r\n\x00]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a Python str holds only lone ones
_FORM = "application/x-www-form-urlencoded"
# Sent on every call: some servers (nchan) answer 403 without Accept, and proxies must not cache.
_STREAM_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass
class PreparedRequest:
    """Everything needed to open the stream; `has_body` forbids re-sending it on reconnect."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    has_body: bool


def build_request(template: SseCallTemplate, arguments: Mapping[str, Any]) -> PreparedRequest:
    """Map tool arguments onto the (already substituted) call template; auth is not applied."""
    _refuse_surrogates(arguments)
    remaining = dict(arguments)
    headers: dict[str, str] = {}
    for name, value in (template.headers or {}).items():
        if problem := header_problem(name, value):
            raise ManualError(
                f"The manual's static header {name!r} cannot be sent: {problem}.",
                hint="Fix `headers` in the call template, or the variable its value references.",
            )
        set_header(headers, name, value)
    for name in template.header_fields or ():
        value = remaining.pop(name, None)
        if value is not None:
            set_header(headers, name, _header_argument(name, value))

    content: bytes | None = None
    if template.body_field and (body := remaining.pop(template.body_field, None)) is not None:
        declared = get_header(headers, "Content-Type")
        content, content_type = _encode_body(template.body_field, body, declared)
        if declared is None:
            headers["Content-Type"] = content_type

    url = _fill_url(template.url, remaining)
    for name, value in _STREAM_HEADERS.items():
        set_header(headers, name, value)
    method = "GET" if content is None else "POST"
    return PreparedRequest(method, url, headers, content, has_body=content is not None)


def header_problem(name: str, value: str) -> str | None:
    """Why `name: value` cannot be sent as an HTTP header, or None when it can."""
    if _LINE_BREAK.search(name) or _LINE_BREAK.search(value):
        return "it contains a line break or NUL (header injection)"
    if not _TOKEN.fullmatch(name):
        return "the header name is not a valid HTTP token"
    if not _HEADER_VALUE.fullmatch(value):
        return "header values must be printable ASCII"
    return None


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup, since HTTP header names are."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set `name`, replacing any header of the same name in another case.

    Surrounding spaces and tabs are dropped: they are not part of a header value (RFC 9110
    section 5.5), and the HTTP client refuses to send them.
    """
    for key in [key for key in headers if key.lower() == name.lower()]:
        del headers[key]
    headers[name] = value.strip(" \t")


def add_query(url: str, pairs: list[tuple[str, str]]) -> str:
    """Append encoded `pairs` to the URL's own query string, keeping what is there."""
    if not pairs:
        return url
    parts = urlsplit(url)
    added = urlencode(pairs, quote_via=quote, safe="")
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query, fragment=""))


def _header_argument(name: str, value: Any) -> str:
    text = _text(name, value)
    if problem := header_problem(name, text):
        raise ArgumentError(
            f"Argument {name!r} cannot be sent as the header {name!r}: {problem}.",
            argument=name,
            hint="Pass a single-line value of plain ASCII characters.",
        )
    return text


def _encode_body(name: str, value: Any, content_type: str | None) -> tuple[bytes, str]:
    """The body's bytes, and the Content-Type to send when the manual sets none."""
    if isinstance(value, str):
        return value.encode(), "text/plain; charset=utf-8"
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if isinstance(value, dict) and media_type == _FORM:
        return urlencode(_query_pairs(value)).encode(), _FORM
    return _json(name, value, ensure_ascii=False).encode(), "application/json"


def _refuse_surrogates(arguments: Mapping[str, Any]) -> None:
    """Refuse text that cannot be sent as UTF-8, naming the top-level argument holding it."""
    for name, value in arguments.items():
        stack = [name, value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack += [*item.keys(), *item.values()]
            elif isinstance(item, list):
                stack += item
            elif isinstance(item, str) and _SURROGATE.search(item):
                shown = name.encode("utf-8", "backslashreplace").decode()
                raise ArgumentError(
                    f"Argument {shown!r} holds a lone UTF-16 surrogate (such as \\ud800), which "
                    "cannot be sent as UTF-8.",
                    argument=shown,
                    hint="Pass valid Unicode text: surrogates only come in pairs.",
                )


def _fill_url(url: str, arguments: dict[str, Any]) -> str:
    """Fill `{param}` placeholders (popping them), then append the rest as query parameters."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or _PLACEHOLDER.search(parts.scheme + parts.netloc):
        raise ManualError(
            f"The URL {url!r} must be absolute (scheme://host/...) with a fixed scheme and host.",
            hint="Put {placeholders} in the path or query only, so that an argument cannot "
            "choose the host that receives the credentials.",
        )
    names = _PLACEHOLDER.findall(f"{parts.path}?{parts.query}")
    used = {name: arguments.get(name) for name in names}
    missing = sorted(name for name, value in used.items() if value is None)
    if missing:
        raise ArgumentError(
            f"The URL needs the argument(s) {', '.join(map(repr, missing))}.",
            argument=missing[0],
            hint="Pass a value for every {placeholder} of the tool's URL.",
        )
    values = {name: quote(_text(name, value), safe="") for name, value in used.items()}
    for name in used:
        del arguments[name]
    path = "/".join(_fill_segment(segment, values) for segment in parts.path.split("/"))
    query = _PLACEHOLDER.sub(lambda m: values[m.group(1)], parts.query)
    filled = urlunsplit(parts._replace(path=path, query=query, fragment=""))
    return add_query(filled, _query_pairs(arguments))


def _fill_segment(segment: str, values: dict[str, str]) -> str:
    filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], segment)
    if filled != segment and filled in ("", ".", ".."):
        names = _PLACEHOLDER.findall(segment)
        raise ArgumentError(
            f"Argument {names[0]!r} would make the URL path segment {filled!r}.",
            argument=names[0],
            hint="Pass a non-empty value other than '.' or '..'.",
        )
    return filled


def _query_pairs(arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in arguments.items():
        items = value if isinstance(value, list) else [value]
        pairs += [(name, _text(name, item)) for item in items if item is not None]
    return pairs


def _text(name: str, value: Any) -> str:
    """A scalar as text: strings as-is, everything else as JSON writes it (true, 1.5, {...})."""
    return value if isinstance(value, str) else _json(name, value, ensure_ascii=True)


def _json(name: str, value: Any, *, ensure_ascii: bool) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ArgumentError(
            f"Argument {name!r} cannot be encoded as JSON: {err}.",
            argument=name,
            hint="Pass strings, numbers, booleans, lists or objects.",
        ) from None
