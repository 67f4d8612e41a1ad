"""The `mcp-sse-bridge` command: `serve` (the default), `list`, `check`, `call` and `demo`.

Every failure is one line on stderr, never a traceback. Exit codes: 0 success; 1 a `call` failed
upstream (connect, HTTP status, protocol); 2 a usage or configuration problem (bad flag, bad
manual, missing variable, bad argument, tool not ready); 130 interrupted. A reader that stops
early (`mcp-sse-bridge call ... | head`) is no failure: the output ends quietly with 0, as the
reader asked, so that `set -o pipefail` scripts do not trip over it.

`call` arguments are `key=value`, before or after the options: the value is parsed as JSON when
it parses (`max_events=5`, `match={"symbol":"AAPL"}`) and is the raw text otherwise
(`symbol=AAPL`); an argument whose schema allows a string (`"type": "string"` or a type list
holding it) always gets the raw text, so `job_id=4711` stays `"4711"`.

Text from manuals and upstreams reaches the terminal only without control characters, so
neither can forge escape sequences there.

The MCP SDK takes about a second to import, so only the commands that need it import
`server` (and through it `mcp`): `list` and `check` stay quick.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO, TypeVar

import anyio

from .. import __version__
from ..calls.bridge import Bridge, Limits
from ..errors import BridgeError, UpstreamError, excerpt
from ..manual import RESERVED_ARGUMENTS, Manual, load_manual
from ..manual.variables import SecretRegistry, Variables, parse_env_file, parse_var
from ..urls import check_url

logger = logging.getLogger("mcp_sse_bridge")

COMMANDS = ("serve", "list", "check", "call", "demo")
AUTH_TOKEN_ENV = "MCP_SSE_BRIDGE_AUTH_TOKEN"
DEFAULTS = Limits()
Bound = TypeVar("Bound", int, float)


class UsageError(Exception):
    """A bad command line; reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script raises SystemExit)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0] not in COMMANDS and words[0] not in ("-h", "--help", "--version")):
        words.insert(0, "serve")
    try:
        args = _parse(words)
        _setup_logging(args.log_level)
        code = args.run(args)
        sys.stdout.flush()  # a reader gone early shows here, not in the interpreter's last flush
        return code
    except UsageError as err:
        return _fail(str(err), 2)
    except UpstreamError as err:
        return _fail(_error_text(err), 1)
    except BridgeError as err:
        return _fail(_error_text(err), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        _drop_stdout()
        return 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not fail again.

    (The pattern the Python docs give for SIGPIPE; closing sys.stdout would not stop it.)
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _fail(message: str, code: int) -> int:
    print(f"mcp-sse-bridge: error: {_printable(message)}", file=sys.stderr)
    return code


def _printable(text: str) -> str:
    """`text` as one terminal-safe line, never cut (see `errors.excerpt`)."""
    return excerpt(text, limit=sys.maxsize)


def _error_text(err: BridgeError) -> str:
    from ..server.tools import error_text

    return error_text(err)


# -- parser -----------------------------------------------------------------------------------


def _parse(words: list[str]) -> argparse.Namespace:
    """Parse the command line; `call`'s key=value words may also come after options.

    argparse gives a `nargs="*"` positional only the words before the first option, so in
    `call TOOL --manual P symbol=AAPL` it would leave `symbol=AAPL` unrecognised.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(words)
    if isinstance(getattr(args, "arguments", None), list):
        args.arguments += [word for word in extra if _is_pair(word)]
        extra = [word for word in extra if not _is_pair(word)]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _is_pair(word: str) -> bool:
    return "=" in word and not word.startswith("-")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mcp-sse-bridge",
        description="Upstream Server-Sent-Events APIs (UTCP manuals) as MCP tools.",
        epilog="With no command, `serve` runs: mcp-sse-bridge --manual manuals/stocks.json",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _common_options()

    serve = commands.add_parser(
        "serve", parents=[common], help="run the MCP server (default)", description=_SERVE_HELP
    )
    serve.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="default: stdio"
    )
    serve.add_argument("--host", default="127.0.0.1", help="http: address to bind")
    serve.add_argument("--port", type=_port, default=8000, help="http: port (0 = any free port)")
    serve.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help=f"http: require `Authorization: Bearer TOKEN` (or set {AUTH_TOKEN_ENV})",
    )
    serve.set_defaults(run=_serve)

    listing = commands.add_parser(
        "list",
        parents=[common],
        help="show each tool, its arguments and variables",
        description="Show each tool the manuals define: its MCP name, description, arguments "
        "and the variables it needs (flagging missing ones). Nothing is connected.",
    )
    listing.set_defaults(run=_list)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate manuals and variables offline",
        description="Validate the manuals and check that every tool's variables are set and "
        "its URL is allowed, without connecting anywhere. Exit code 0 when all tools are "
        "ready, 2 otherwise (each problem on one line of stderr).",
    )
    check.set_defaults(run=_check)

    call = commands.add_parser(
        "call",
        parents=[common],
        help="call one tool in the terminal",
        description="Call one tool and print its batch of events as JSON on stdout.\n"
        "On a terminal, a live progress line shows on stderr while the call runs.",
        epilog=_CALL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("tool", help="the MCP tool name (see `list`)")
    call.add_argument("arguments", nargs="*", metavar="key=value", help="tool arguments")
    call.set_defaults(run=_call)

    demo = commands.add_parser(
        "demo",
        help="run the bundled demo feed through a real MCP client",
        description="Start the bundled demo SSE feed on loopback, serve its manual over MCP and "
        "call its tools with a real MCP client, printing what a host would see.",
    )
    demo.add_argument("--log-level", choices=_LEVELS, default="warning")
    demo.set_defaults(run=_demo)
    return parser


_SERVE_HELP = (
    "Serve the manuals' tools over MCP: stdio (for Claude Desktop, Claude Code, Cursor) or "
    "streamable HTTP at /mcp. In stdio mode nothing but MCP messages is written to stdout."
)
_CALL_EPILOG = f"""\
arguments are key=value words, before or after the options; a value is JSON
when it parses, else text (an argument declared as a string always gets the
text, so job_id=4711 stays "4711"). Besides the tool's own arguments:
{", ".join(RESERVED_ARGUMENTS)}.

examples:
  mcp-sse-bridge call stream_stock_prices symbol=AAPL max_events=3 \\
      --manual manuals/stocks.json
  mcp-sse-bridge call stream_stock_prices symbol=AAPL last_event_id=42 \\
      max_seconds=30 --manual manuals/stocks.json   # resume after event 42

exit codes: 0 ok, 1 the upstream failed, 2 usage or configuration error,
130 interrupted"""
_LEVELS = ("debug", "info", "warning", "error")


def _common_options() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--manual",
        dest="manuals",
        action="append",
        default=[],
        metavar="SPEC",
        help="a UTCP manual: PATH, NAME=PATH or URL (repeatable)",
    )
    common.add_argument(
        "--env-file",
        dest="env_files",
        action="append",
        default=[],
        metavar="FILE",
        help="a .env file of variables (repeatable)",
    )
    common.add_argument(
        "--var",
        dest="vars",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable; wins over the environment (repeatable)",
    )
    common.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="NAME",
        help="let manuals loaded from a URL read this plain environment variable",
    )
    common.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to non-loopback hosts",
    )
    limits = common.add_argument_group("bounds of a call")
    limits.add_argument(
        "--max-events",
        type=_positive(int),
        metavar="N",
        help="a call's max_events unless it asks "
        f"(default: {DEFAULTS.default_max_events}, or the ceiling if lower)",
    )
    limits.add_argument(
        "--max-seconds",
        type=_positive(float),
        metavar="S",
        help="a call's max_seconds unless it asks "
        f"(default: {DEFAULTS.default_max_seconds:g}, or the ceiling if lower)",
    )
    limits.add_argument(
        "--max-events-limit",
        type=_positive(int),
        default=DEFAULTS.max_max_events,
        metavar="N",
        help="ceiling for a call's max_events (default: %(default)s)",
    )
    limits.add_argument(
        "--max-seconds-limit",
        type=_positive(float),
        default=DEFAULTS.max_max_seconds,
        metavar="S",
        help="ceiling for a call's max_seconds (default: %(default)s)",
    )
    limits.add_argument(
        "--idle-seconds",
        type=_positive(float),
        default=DEFAULTS.idle_seconds,
        metavar="S",
        help="end a call after this long without any upstream event",
    )
    limits.add_argument(
        "--max-bytes",
        type=_positive(int),
        default=DEFAULTS.max_bytes,
        metavar="N",
        help="byte budget of the events' data in one batch (default: %(default)s)",
    )
    common.add_argument(
        "--log-level", choices=_LEVELS, default="warning", help="log level (logs go to stderr)"
    )
    return common


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
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


def _port(text: str) -> int:
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


def _setup_logging(level: str) -> None:
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


# -- loading ----------------------------------------------------------------------------------


def _variables(args: argparse.Namespace) -> Variables:
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


def _bridge(args: argparse.Namespace) -> Bridge:
    bridge = Bridge(
        _manuals(args),
        variables=_variables(args),
        limits=_limits(args),
        allow_insecure_http=args.allow_insecure_http,
    )
    _LOG_FORMAT.secrets = bridge.secrets
    return bridge


def _problems(bridge: Bridge) -> list[str]:
    """Why tools are not ready: missing variables, or a resolved URL the bridge would refuse."""
    variables, problems = bridge.variables, []
    for name, tool in bridge.tools.items():
        where = f"{tool.manual.source}: tool {tool.spec.name!r}"
        if name != tool.spec.name:
            where += f" (MCP name {name!r})"
        missing = variables.missing(tool.manual, tool.spec)
        for var, candidates in missing:
            problems.append(f"{where}: missing variable {var}: set one of {', '.join(candidates)}")
        if missing:
            continue
        try:
            url = variables.substitute(tool.manual, tool.spec.template.url, bridge.secrets.copy())
            check_url(url, allow_insecure_http=bridge.allow_insecure_http)
        except BridgeError as err:
            problems.append(f"{where}: {bridge.secrets.redact(_error_text(err))}")
    return problems


# -- commands ---------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from ..server.tools import build_server, run_http, run_stdio

    bridge = _bridge(args)
    for problem in _problems(bridge):
        logger.warning("%s (calls to this tool will fail until fixed)", problem)
    server = build_server(bridge)
    _settle_heap()
    if args.transport == "stdio":
        anyio.run(run_stdio, server)
        return 0
    token = args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or None
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"mcp-sse-bridge: streamable HTTP on http://{shown}:{port}/mcp", file=sys.stderr)
    if token is None and host not in ("127.0.0.1", "::1"):
        logger.warning("serving %s without --auth-token: anyone who reaches it can call", host)
    anyio.run(functools.partial(run_http, server, sock, auth_token=token))
    return 0


def _settle_heap() -> None:
    """Spare the cyclic GC the long-lived heap (manuals, schemas, the SDK) and frequent passes.

    A thousand calls in flight allocate containers fast enough that the default gen-0 threshold
    (700) ran the collector over and over, and older passes kept rescanning objects that live as
    long as the process (about a tenth of the bridge's CPU; bench/README.md).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def _list(args: argparse.Namespace) -> int:
    bridge = _bridge(args)
    variables = bridge.variables
    out = sys.stdout
    for name, tool in bridge.tools.items():
        out.write(f"{name}\n")
        if description := _printable(tool.spec.description):
            out.write(f"  {description}\n")
        out.write(f"  arguments: {_printable(_describe_arguments(tool.spec.inputs))}\n")
        missing = dict(variables.missing(tool.manual, tool.spec))
        needed = [
            f"{var} (MISSING: set one of {', '.join(missing[var])})" if var in missing else var
            for var in variables.referenced(tool.spec)
        ]
        out.write(f"  variables: {_printable(', '.join(needed)) or 'none'}\n")
    if bridge.tools:
        out.write(f"\nevery tool also takes: {', '.join(RESERVED_ARGUMENTS)}\n")
    else:
        out.write("no SSE tools in these manuals\n")
    return 0


def _describe_arguments(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    parts = []
    for key, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        kind = "|".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{key}: {kind}{' (required)' if key in required else ''}")
    return ", ".join(parts) or "none"


def _check(args: argparse.Namespace) -> int:
    bridge = _bridge(args)
    problems = _problems(bridge)
    for problem in problems:
        print(f"mcp-sse-bridge: error: {_printable(problem)}", file=sys.stderr)
    if problems:
        return 2
    names = ", ".join(bridge.tools) or "none"
    print(f"ok: {len(bridge.tools)} tool(s) ready: {names}")
    return 0


def _call(args: argparse.Namespace) -> int:
    from ..server.tools import call_with_progress

    bridge = _bridge(args)
    if args.tool not in bridge.tools:
        known = ", ".join(bridge.tools) or "none"
        raise UsageError(f"unknown tool {args.tool!r}; the manuals define: {known}")
    arguments = parse_arguments(args.arguments, bridge.input_schema(args.tool))
    line = LiveLine(sys.stderr)

    async def run() -> dict[str, Any]:
        async with bridge:
            batch = await call_with_progress(bridge, args.tool, arguments, line.show, 1.0)
            return batch.to_dict()

    try:
        result = anyio.run(run)
    finally:
        line.clear()
    print(terminal_json(result))
    return 0


def terminal_json(value: Any) -> str:
    """Indented JSON for stdout that neither a terminal nor the encoder can trip over.

    Non-ASCII text stays readable, but C1 controls (ESC's 8-bit twins) and lone surrogates are
    written as `\\uXXXX` escapes: still the same JSON value, and no escape sequence or
    UnicodeEncodeError. (json.dumps already escapes C0 controls.)
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\ud800-\udfff]")


def parse_arguments(pairs: Sequence[str], schema: dict[str, Any]) -> dict[str, Any]:
    """`key=value` words -> tool arguments (JSON when it parses; raw text for string inputs)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {pair!r} is not key=value (e.g. symbol=AAPL max_events=5)")
        if _takes_text(properties.get(key)):
            arguments[key] = raw
            continue
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


def _takes_text(schema: Any) -> bool:
    """Whether a property's schema allows a string, so `4711` stays the text that was typed.

    A boolean schema (`true`, valid JSON Schema) or one without `type` says nothing: JSON it is.
    """
    kind = schema.get("type") if isinstance(schema, dict) else None
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


class LiveLine:
    """One self-rewriting status line on a terminal; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()

    async def show(self, progress: float, total: float | None, message: str | None) -> None:
        if self._live:
            count = f"{int(progress)}/{total:g}" if total else f"{int(progress)}"
            line = f"[{count}] {_printable(message or '')}"[
                : shutil.get_terminal_size().columns - 1
            ]
            self._stream.write(f"\r\x1b[2K{line}")
            self._stream.flush()

    def clear(self) -> None:
        if self._live:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()


def _demo(args: argparse.Namespace) -> int:
    from mcp_sse_bridge.demo.run import DemoError, run_demo

    try:
        anyio.run(run_demo, sys.stdout)
    except DemoError as err:
        return _fail(str(err), 1)
    return 0
