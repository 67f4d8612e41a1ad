"""Loading a manual from a file or a URL: bounded reads, the https-or-loopback rule, JSON.

A manual is input from outside the program, often written by hand, so loading it never raises
anything but `ManualError`, and every message names the file, the JSON path and the fix.
Trust follows the origin: a local file the user named is trusted, a manual fetched from a URL is
not (see `variables.Variables`, which limits what an untrusted manual may read).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx2

from ..errors import ManualError
from ..urls import is_loopback
from .models import Manual
from .naming import sanitise_name
from .openapi import import_openapi, is_openapi
from .reader import ManualReader, join_path, sendable_text
from .yaml_reading import decode_yaml

MAX_MANUAL_BYTES = 5 * 1024 * 1024
MAX_NESTING = 64
FETCH_TIMEOUT = 10.0

_NAMED_SPEC = re.compile(r"([A-Za-z0-9_-]+)=(.+)", re.DOTALL)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def parse_manual(
    text: str | bytes, *, name: str, source: str, trusted: bool, yaml: bool = False
) -> Manual:
    """Validate a manual's text; every problem is a `ManualError`, unknown keys are warnings.

    The text may also be an OpenAPI 3.x document (JSON, or YAML with `yaml`): its event streams
    are imported as the manual's tools, and what the import skipped becomes warnings.
    """
    data = decode_yaml(text, source) if yaml else _decode_json(text, source)
    notes: list[str] = []
    if is_openapi(data):
        imported = import_openapi(data, source=source)
        data, notes = imported.manual, imported.notes(source)
    elif yaml:
        raise ManualError(
            f"{source}: a YAML file must be an OpenAPI document (with an `openapi` key).",
            hint="Write manuals as JSON, or pass an OpenAPI 3.x document.",
        )
    reader = ManualReader(source)
    try:
        tools = reader.manual(data)
    except RecursionError:
        raise ManualError(
            f"{source}: the manual is nested too deeply to validate.",
            hint=f"Keep JSON nesting under {MAX_NESTING} levels.",
        ) from None
    warnings = notes + reader.warnings
    return Manual(sanitise_name(name) or "manual", source, trusted, tools, warnings)


def read_document(path: str) -> Any:
    """An OpenAPI document's tree from a local JSON or YAML file (bounded like a manual)."""
    text = _read_file(path)
    return decode_yaml(text, path) if _is_yaml(path) else _decode_json(text, path)


def _is_yaml(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in (".yaml", ".yml")


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
        yaml = _is_yaml(urlsplit(target).path)
        return parse_manual(text, name=name or stem, source=source, trusted=False, yaml=yaml)
    text = _read_file(target)
    stem = Path(target).stem
    return parse_manual(text, name=name or stem, source=target, trusted=True, yaml=_is_yaml(target))


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
                sendable_text(key, join_path(path, key), source)
                stack.append((item, join_path(path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            sendable_text(value, path, source)


# -- validating structure --------------------------------------------------------------------
