"""Process memory from /proc and the few statistics the benchmarks report.

`VmHWM` is the kernel's own peak-RSS watermark, so a short spike between two samples is never
missed and no sampling thread competes with the process being measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _status_kib(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field} line")


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size now, in KiB."""
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int | str = "self") -> int:
    """Highest resident set size since the process started, in KiB."""
    return _status_kib(pid, "VmHWM")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
