"""`probe URL` and `import DOCUMENT`: from a live stream or an OpenAPI document to a manual.

`probe` prints its report on stdout (`--json` for the data) and, with `--write`, the manual on
disk; `import` writes the manual to `--write` or stdout, and says on stderr which tools it wrote
and which operations it skipped. Neither prints a secret: the probe's report is redacted, and a
written manual holds `${VAR}` placeholders only (checked before writing).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio

from ..manual import sanitise_name
from ..manual.variables import SecretRegistry
from .options import add_log_level, mask_in_logs, positive, variable_options
from .terminal import UsageError, printable, split_pair, terminal_json


def add_commands(subparsers: Any) -> None:
    """Register `probe` and `import` on the main parser's subcommands."""
    probe = subparsers.add_parser(
        "probe",
        parents=[variable_options()],
        help="sample an SSE URL, report what it sends, write a manual",
        description=textwrap.fill(_PROBE_HELP, 78),
        epilog=_PROBE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    probe.add_argument("url", help="the event stream's URL; {name} marks a path input")
    probe.add_argument("arguments", nargs="*", metavar="key=value", help="inputs for the call")
    probe.add_argument(
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable); credentials become ${VAR} in the manual",
    )
    probe.add_argument(
        "--bearer-env", metavar="VAR", help="send `Authorization: Bearer $VAR` (its value)"
    )
    probe.add_argument(
        "--seconds", type=positive(float), default=10.0, help="sample at most this long"
    )
    probe.add_argument(
        "--events", type=positive(int), default=200, help="sample at most this many events"
    )
    probe.add_argument("-o", "--write", metavar="PATH", help="write the suggested manual here")
    probe.add_argument("--json", action="store_true", help="print the findings as JSON")
    probe.set_defaults(run=run_probe)

    document = subparsers.add_parser(
        "import",
        help="turn an OpenAPI document's event streams into a manual",
        description=_IMPORT_HELP,
    )
    add_log_level(document)
    document.add_argument("document", help="an OpenAPI 3.x document (.json, .yaml or .yml)")
    document.add_argument(
        "-o", "--write", metavar="PATH", help="write the manual here (not stdout)"
    )
    document.add_argument(
        "--base-url", metavar="URL", help="the server URL, when the document has none (or another)"
    )
    document.set_defaults(run=run_import)


def run_probe(args: argparse.Namespace) -> int:
    from ..authoring.probe import MAX_EVENTS, MAX_SECONDS, ProbeSettings, probe
    from ..authoring.report import render
    from ..authoring.suggest import finish_tool, plan_tool
    from ..authoring.writing import manual_text, refuse_secrets, write_text
    from .options import variables_from

    if args.seconds > MAX_SECONDS or args.events > MAX_EVENTS:
        raise UsageError(
            f"probe samples at most --seconds {MAX_SECONDS:g} and --events {MAX_EVENTS}"
        )
    plan = plan_tool(args.url, dict(map(split_pair, args.arguments)), args.headers, args.bearer_env)
    name = sanitise_name(Path(args.write).stem) if args.write else "probe"
    settings = ProbeSettings(seconds=args.seconds, events=args.events)
    mask_in_logs(SecretRegistry(plan.values.values()))

    async def run() -> Any:
        return await probe(
            plan,
            settings,
            variables=variables_from(args),
            manual_name=name,
            allow_insecure_http=args.allow_insecure_http,
        )

    report, secrets = anyio.run(run)
    for value in plan.values.values():  # already among them; stated, since it is the rule
        secrets.add(value)
    manual = finish_tool(plan, report)
    text = manual_text(manual, name=name, secrets=secrets) if args.write else ""
    if args.json:
        shown = terminal_json(report.to_dict())
    else:
        shown = "\n".join(_indented(line) for line in render(report))
    refuse_secrets(shown, secrets, "print a probe report")
    print(shown)
    if args.write:
        write_text(args.write, text)
        _say(f"wrote {args.write}: tool {plan.tool['name']!r}")
        for note in plan.notes:
            _say(f"before using it, {note}")
        _say(f"try it: mcp-sse-bridge check --manual {args.write}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..authoring.writing import manual_text, write_text
    from ..manual.loading import read_document
    from ..manual.openapi import import_openapi

    document = read_document(args.document)
    imported = import_openapi(document, source=args.document, base_url=args.base_url)
    name = sanitise_name(Path(args.write or args.document).stem)
    text = manual_text(imported.manual, name=name, secrets=SecretRegistry())
    if args.write:
        write_text(args.write, text)
        _say(f"wrote {args.write}")
    else:
        sys.stdout.write(text)
    tools = [tool["name"] for tool in imported.manual["tools"]]
    _say(f"{len(tools)} tool(s): {', '.join(tools)}")
    for line in imported.skipped:
        _say(f"skipped {line}")
    for warning in imported.warnings:
        _say(f"warning: {warning}")
    for var in imported.variables:
        _say(f"before using it, set {var}")
    return 0


def _indented(line: str) -> str:
    text = line.lstrip(" ")
    return " " * (len(line) - len(text)) + printable(text)


def _say(text: str) -> None:
    print(f"mcp-sse-bridge: {printable(text)}", file=sys.stderr)


_PROBE_HELP = (
    "Connect to an SSE URL as a call would (same auth, variables and secret masking), sample "
    "it for --seconds or --events, and report: HTTP status, content type, compression, time to "
    "first byte and event; each event type with its count, rate, a sample and the JSON schema "
    "of its data; the id style, retry: values and keep-alives; and whether the server honours "
    "Last-Event-ID. With --write, also write a manual with one tool for the URL."
)
_PROBE_EPILOG = """\
examples:
  mcp-sse-bridge probe https://api.example.com/stream
  mcp-sse-bridge probe 'https://api.example.com/prices/{symbol}' symbol=AAPL \\
      --header 'X-Api-Key: ${PRICES_KEY}' --write prices.json
  mcp-sse-bridge probe https://api.example.com/events --bearer-env API_TOKEN -o events.json

Credentials never reach the manual: a literal value of a credential header,
a key or token in the query and a user:pass@ in the URL become ${VAR}s, named
on stderr after writing."""
_IMPORT_HELP = (
    "Write a UTCP manual with one SSE tool per operation of an OpenAPI 3.0, 3.1 or 3.2 "
    "document whose response is text/event-stream (3.2's itemSchema included). Other "
    "operations are listed and skipped. `--manual openapi.yaml` loads such a document directly."
)
