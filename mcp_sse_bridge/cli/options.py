"""The flags every command shares, and the objects they build: variables, manuals, a Bridge.

Logging is set up here too: every line goes to stderr (in stdio mode stdout belongs to MCP),
with every secret the bridge knows masked.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

from ..calls.bridge import Bridge, Limits
from ..manual import Manual, load_manual
from ..manual.variables import SecretRegistry, Variables, parse_env_file, parse_var
from .terminal import UsageError

logger = logging.getLogger("mcp_sse_bridge")

DEFAULTS = Limits()
LEVELS = ("debug", "info", "warning", "error")
Bound = TypeVar("Bound", int, float)
BoundFlag = tuple[
    str, type[int] | type[float], int | float | None, str
]  # flag, kind, default, help


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def variable_options() -> argparse.ArgumentParser:
    """Where variables come from, the http rule and logging: every command that connects."""
    options = Parser(add_help=False)
    options.add_argument(
        "--env-file",
        dest="env_files",
        action="append",
        default=[],
        metavar="FILE",
        help="a .env file of variables (repeatable)",
    )
    options.add_argument(
        "--var",
        dest="vars",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable; wins over the environment (repeatable)",
    )
    options.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="NAME",
        help="let manuals loaded from a URL read this plain environment variable",
    )
    options.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to non-loopback hosts",
    )
    add_log_level(options)
    return options


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """`--log-level`, which every command has (`setup_logging` reads it before running one)."""
    parser.add_argument(
        "--log-level", choices=LEVELS, default="warning", help="log level (logs go to stderr)"
    )


_CALL_BOUNDS: tuple[BoundFlag, ...] = (
    (
        "--max-events",
        int,
        None,
        "a call's max_events unless it asks "
        f"(default: {DEFAULTS.default_max_events}, or the ceiling if lower)",
    ),
    (
        "--max-seconds",
        float,
        None,
        "a call's max_seconds unless it asks "
        f"(default: {DEFAULTS.default_max_seconds:g}, or the ceiling if lower)",
    ),
    (
        "--max-events-limit",
        int,
        DEFAULTS.max_max_events,
        "ceiling for a call's max_events (default: %(default)s)",
    ),
    (
        "--max-seconds-limit",
        float,
        DEFAULTS.max_max_seconds,
        "ceiling for a call's max_seconds (default: %(default)s)",
    ),
    (
        "--idle-seconds",
        float,
        DEFAULTS.idle_seconds,
        "end a call after this long without any upstream event",
    ),
    (
        "--max-bytes",
        int,
        DEFAULTS.max_bytes,
        "byte budget of the events' data in one batch (default: %(default)s)",
    ),
    (
        "--summary-event-limit",
        int,
        DEFAULTS.max_summary_events,
        "most events one summary=true call aggregates; it ends there (default: %(default)s)",
    ),
)
"""The `bounds of a call` flags; `_limits` reads them."""


def common_options() -> argparse.ArgumentParser:
    """The flags of the commands that read manuals: the variables', `--manual`, a call's bounds."""
    common = Parser(add_help=False, parents=[variable_options()])
    common.add_argument(
        "--manual",
        dest="manuals",
        action="append",
        default=[],
        metavar="SPEC",
        help="a UTCP manual: PATH, NAME=PATH or URL (repeatable)",
    )
    add_bounds(common.add_argument_group("bounds of a call"), _CALL_BOUNDS)
    return common


def add_bounds(group: argparse._ArgumentGroup, bounds: Iterable[BoundFlag]) -> None:
    """Flags taking a positive number: a count (`N`, an int) or seconds (`S`, a float)."""
    for flag, kind, default, text in bounds:
        metavar = "N" if kind is int else "S"
        group.add_argument(flag, type=positive(kind), default=default, metavar=metavar, help=text)


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """A converter refusing zero, negatives, `nan` and `inf` (deadlines must be real numbers)."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < math.inf:  # also false for nan
            noun = "integer" if kind is int else "finite number"
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}")
        return value

    return convert


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


class _LogFormat(logging.Formatter):
    """`mcp-sse-bridge: LEVEL: message`, every known secret masked (tracebacks included).

    HTTP client debug logs show URLs, and a manual may put an API key in a query string.
    Control characters other than tab and newline go: log lines quote manuals and upstreams.
    """

    def __init__(self) -> None:
        super().__init__("mcp-sse-bridge: %(levelname)s: %(message)s")
        self.secrets = SecretRegistry()

    def format(self, record: logging.LogRecord) -> str:
        return _LOG_CONTROLS.sub("", self.secrets.redact(super().format(record)))


_LOG_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LOG_FORMAT = _LogFormat()


def setup_logging(level: str) -> None:
    """Everything goes to stderr: in stdio mode stdout belongs to MCP."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LOG_FORMAT)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    if level != "debug":
        for chatty in ("httpx2", "httpcore", "mcp", "uvicorn"):
            logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def variables_from(args: argparse.Namespace) -> Variables:
    explicit: dict[str, str] = {}
    for path in args.env_files:
        explicit.update(parse_env_file(path))
    for text in args.vars:
        name, value = parse_var(text)
        explicit[name] = value
    return Variables(explicit, allow=args.allow_env)


def _manuals(args: argparse.Namespace) -> list[Manual]:
    if not args.manuals:
        raise UsageError("no manual given: pass --manual PATH (repeatable; NAME=PATH or a URL)")
    manuals = [load_manual(m, allow_insecure_http=args.allow_insecure_http) for m in args.manuals]
    for manual in manuals:
        for warning in manual.warnings:
            logger.warning("%s", warning)
    return manuals


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        default_max_events=_default(
            "--max-events", args.max_events, DEFAULTS.default_max_events, args.max_events_limit
        ),
        max_max_events=args.max_events_limit,
        default_max_seconds=_default(
            "--max-seconds", args.max_seconds, DEFAULTS.default_max_seconds, args.max_seconds_limit
        ),
        max_max_seconds=args.max_seconds_limit,
        idle_seconds=args.idle_seconds,
        max_bytes=args.max_bytes,
        max_summary_events=args.summary_event_limit,
    )


def _default(flag: str, given: Bound | None, builtin: Bound, ceiling: Bound) -> Bound:
    """A call's default bound: as given, else the built-in one lowered to the ceiling.

    Lowering only `--max-events-limit` must not trip over a default the user never set.
    """
    if given is None:
        return min(builtin, ceiling)
    if given > ceiling:
        raise UsageError(
            f"{flag} {given:g} is above its ceiling {flag}-limit {ceiling:g}: lower {flag} or "
            f"raise {flag}-limit"
        )
    return given


def mask_in_logs(secrets: SecretRegistry) -> None:
    """Mask these secrets in every log line from now on."""
    _LOG_FORMAT.secrets = secrets


def bridge_from(args: argparse.Namespace) -> Bridge:
    bridge = Bridge(
        _manuals(args),
        variables=variables_from(args),
        limits=_limits(args),
        allow_insecure_http=args.allow_insecure_http,
    )
    _LOG_FORMAT.secrets = bridge.secrets
    return bridge
