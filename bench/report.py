"""The results table: rows with targets, the machine they ran on, and bench/RESULTS.md.

RESULTS.md keeps one section per mode (full, quick): a run replaces its own section and leaves
the other, so the file always shows the latest full run next to the latest quick run.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "mcp-sse-bridge",
    "mcp",
    "httpx2",
    "anyio",
    "httpx-sse",
    "httpx",
    "utcp",
    "utcp-http",
    "aiohttp",
)


@dataclass(frozen=True)
class Row:
    """One metric of one benchmark, for us and (when there is one) the peer."""

    benchmark: str
    metric: str
    ours: str
    peer_name: str = ""
    peer: str = ""
    ratio: float | None = None  # ours relative to the peer, >1 means we are better
    target: str = ""
    ok: bool | None = None  # None: reported only, no target

    def cells(self) -> tuple[str, ...]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        verdict = {True: "PASS", False: "FAIL", None: ""}[self.ok]
        fields = (self.benchmark, self.metric, self.ours, self.peer_name, self.peer)
        return (*fields, ratio, self.target, verdict)


def one_line(exc: BaseException) -> str:
    """The innermost error of a (possibly grouped) exception, as one line."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def failed(benchmark: str, reason: str) -> Row:
    """The row a benchmark leaves when it could not run to the end."""
    reason = reason.replace("|", "/").replace("\n", " ")[:300]
    return Row(benchmark, "error", reason, target="runs to the end", ok=False)


def machine() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": f"{model}, {os.cpu_count()} logical cores",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


COLUMNS = (
    "Benchmark",
    "Metric",
    "mcp-sse-bridge",
    "Peer",
    "Peer value",
    "Ratio",
    "Target",
    "Result",
)


def table(rows: list[Row]) -> str:
    """A Markdown table, which also reads well as plain text on a terminal."""
    lines = [COLUMNS, tuple("---" for _ in COLUMNS), *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    padded = (" | ".join(map(str.ljust, line, widths)) for line in lines)
    return "\n".join(f"| {line} |" for line in padded)


def section(mode: str, rows: list[Row], notes: list[str], elapsed_s: float) -> str:
    info = machine()
    failures = [row for row in rows if row.ok is False]
    verdict = f"{len(failures)} target(s) missed" if failures else "every target holds"
    lines = [
        f"## {mode.capitalize()} run: {verdict}",
        "",
        f"- Date: {info['date']}; run took {elapsed_s:.0f} s",
        f"- Machine: {info['cpu']}; {info['os']}",
        f"- Python: {info['python']}",
        f"- Packages: {versions()}",
        "",
        table(rows),
        "",
        *(_missed(row) for row in failures),
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _missed(row: Row) -> str:
    if row.metric == "error":
        return f"- Could not measure {row.benchmark}: {row.ours}"
    return (
        f"- Missed: {row.benchmark}, {row.metric}: {row.ours} against {row.target}; why, and "
        "what would fix it: bench/README.md."
    )


HEADER = """# Benchmark results

Written by `python -m bench` (full run) and `python -m bench --quick` (smaller sizes); each run
replaces its own section. Everything runs on 127.0.0.1, peers in the same run on the same
machine. Ratios are ours relative to the peer (above 1 is better for us). See bench/README.md
for what each benchmark does.
"""


MODES = ("full", "quick", "shaping", "scaleout")  # the last two: `python -m bench.bench_NAME`


def write(path: Path, mode: str, text: str) -> None:
    """Replace this mode's section of the results file, keeping the other mode's."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    blocks = {}
    for name in MODES:
        found = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", old, re.DOTALL)
        if found:
            blocks[name] = found.group(1)
    blocks[mode] = text
    parts = [HEADER]
    parts += [
        f"<!-- bench:{name} -->\n{blocks[name]}<!-- /bench:{name} -->\n"
        for name in MODES
        if name in blocks
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
