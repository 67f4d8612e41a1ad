"""`python -m bench [--quick] [--only NAME ...] [--output PATH]`

Runs the benchmarks one after another (each under its own time limit, so a hang costs one row,
not the run), prints the table and writes it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import ModuleType

import anyio

from bench import (
    bench_concurrency,
    bench_firehose,
    bench_latency,
    bench_scaleout,
    bench_shaping,
    bench_startup,
    bench_subscriptions,
    parser_rows,
    report,
)
from bench.report import Row

# name: (module with `async run(quick) -> list[Row]` and `NOTE`, full limit s, quick limit s)
BENCHMARKS: dict[str, tuple[ModuleType, float, float]] = {
    "parser": (parser_rows, 300, 90),
    "firehose": (bench_firehose, 240, 60),
    "concurrency": (bench_concurrency, 180, 60),
    "latency": (bench_latency, 120, 45),
    "shaping": (bench_shaping, 180, 90),
    "startup": (bench_startup, 180, 60),
    "subscriptions": (bench_subscriptions, 180, 90),
    "scaleout": (bench_scaleout, 240, 120),
}


async def _run_one(name: str, quick: bool) -> list[Row]:
    module, full_limit, quick_limit = BENCHMARKS[name]
    limit = quick_limit if quick else full_limit
    with anyio.move_on_after(limit) as scope:
        try:
            return await module.run(quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            return [report.failed(name, report.one_line(exc))]
    assert scope.cancelled_caught
    return [report.failed(name, f"did not finish within its {limit:g} s limit")]


async def main(names: list[str], quick: bool, output: Path) -> int:
    mode = "quick" if quick else "full"
    started = time.perf_counter()
    rows: list[Row] = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        rows += await _run_one(name, quick)
        print(f"bench: {name} took {time.perf_counter() - begun:.1f} s", file=sys.stderr)
    notes = [BENCHMARKS[name][0].NOTE for name in names]
    if quick:
        notes.append("Quick mode: smaller streams and fewer calls than the issue's figures.")
    if names != list(BENCHMARKS):
        notes.append(f"Partial run: {', '.join(names)} only.")
    text = report.section(mode, rows, notes, time.perf_counter() - started)
    print(text)
    report.write(output, mode, text)
    print(f"bench: wrote {output}", file=sys.stderr)
    return 1 if any(row.ok is False for row in rows) else 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "RESULTS.md",
        help="results file (default: bench/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    names = [name for name in BENCHMARKS if name in (args.only or BENCHMARKS)]
    return anyio.run(main, names, args.quick, args.output)


if __name__ == "__main__":
    sys.exit(cli())
