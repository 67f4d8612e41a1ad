"""The `mcp-sse-bridge` command: `serve` (the default), list, check, call, demo, probe, import.

Every failure is one line on stderr, never a traceback. Exit codes: 0 success; 1 a `call` failed
upstream (connect, HTTP status, protocol); 2 a usage or configuration problem (bad flag, bad
manual, missing variable, bad argument, tool not ready); 130 interrupted. A reader that stops
early (`mcp-sse-bridge call ... | head`) is no failure: the output ends quietly with 0, as the
reader asked, so that `set -o pipefail` scripts do not trip over it.

`call` arguments are `key=value`, before or after the options: the value is parsed as JSON when
it parses (`max_events=5`, `match={"symbol":"AAPL"}`) and is the raw text otherwise
(`symbol=AAPL`); an argument whose schema allows a string (`"type": "string"` or a type list
holding it) always gets the raw text, so `job_id=4711` stays `"4711"`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import BridgeError, UpstreamError
from ..manual import RESERVED_ARGUMENTS
from . import authoring, commands, subscribing
from .options import Parser, add_log_level, common_options, port, setup_logging
from .terminal import UsageError, drop_stdout, error_text, fail

COMMANDS = ("serve", "list", "check", "call", "demo", "probe", "import")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script raises SystemExit)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0] not in COMMANDS and words[0] not in ("-h", "--help", "--version")):
        words.insert(0, "serve")
    try:
        args = _parse(words)
        setup_logging(args.log_level)
        code = args.run(args)
        sys.stdout.flush()  # a reader gone early shows here, not in the interpreter's last flush
        return code
    except UsageError as err:
        return fail(str(err), 2)
    except UpstreamError as err:
        return fail(error_text(err), 1)
    except BridgeError as err:
        return fail(error_text(err), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        drop_stdout()
        return 0


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
    parser = Parser(
        prog="mcp-sse-bridge",
        description="Upstream Server-Sent-Events APIs (UTCP manuals) as MCP tools.",
        epilog="With no command, `serve` runs: mcp-sse-bridge --manual manuals/stocks.json",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = common_options()
    _add_serve(subparsers, common)
    _add_offline(subparsers, common)
    _add_call(subparsers, common)
    authoring.add_commands(subparsers)
    return parser


def _add_serve(subparsers: Any, common: argparse.ArgumentParser) -> None:
    serve = subparsers.add_parser(
        "serve", parents=[common], help="run the MCP server (default)", description=_SERVE_HELP
    )
    serve.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="default: stdio"
    )
    serve.add_argument("--host", default="127.0.0.1", help="http: address to bind")
    serve.add_argument("--port", type=port, default=8000, help="http: port (0 = any free port)")
    serve.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help=f"http: require `Authorization: Bearer TOKEN` (or set {commands.AUTH_TOKEN_ENV})",
    )
    serve.add_argument(
        "--stateless",
        action="store_true",
        help="http: no sessions, so any replica behind a load balancer answers any request",
    )
    subscribing.add_options(serve)
    serve.set_defaults(run=commands.serve)


def _add_offline(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """`list` and `check`, which connect nowhere."""
    listing = subparsers.add_parser(
        "list",
        parents=[common],
        help="show each tool, its arguments and variables",
        description="Show each tool the manuals define: its MCP name, description, arguments "
        "and the variables it needs (flagging missing ones). Nothing is connected.",
    )
    listing.set_defaults(run=commands.list_tools)

    check = subparsers.add_parser(
        "check",
        parents=[common],
        help="validate manuals and variables offline",
        description="Validate the manuals and check that every tool's variables are set and "
        "its URL is allowed, without connecting anywhere. Exit code 0 when all tools are "
        "ready, 2 otherwise (each problem on one line of stderr).",
    )
    check.set_defaults(run=commands.check)


def _add_call(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """`call` and `demo`, which connect."""
    call = subparsers.add_parser(
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
    call.add_argument(
        "--follow",
        action="store_true",
        help="subscribe and print each event as a JSON line until Ctrl-C",
    )
    call.set_defaults(run=commands.call)

    demo = subparsers.add_parser(
        "demo",
        help="run the bundled demo feed through a real MCP client",
        description="Start the bundled demo SSE feed on loopback, serve its manual over MCP and "
        "call its tools with a real MCP client, printing what a host would see.",
    )
    add_log_level(demo)
    demo.set_defaults(run=commands.demo)


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

  mcp-sse-bridge call stream_stock_prices symbol=AAPL --follow \\
      --manual manuals/stocks.json   # every event as a JSON line, until Ctrl-C

exit codes: 0 ok, 1 the upstream failed, 2 usage or configuration error,
130 interrupted"""
