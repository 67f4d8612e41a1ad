"""Shaping: results reduced for a model's context (`fields`, `latest_per`, `summary`, `lines`).

Owns what happens to the events a call accepted before they become a result: projecting their
data onto dotted paths, keeping the newest event per key, aggregating a summary, and the
one-line-per-event text rendering. It works on events already in the result shape
(`{"event", "id", "data"}`, decoded and redacted), so a live call (`calls.batch.Accepted`) and a
read of buffered events apply the same rules through one entry point, `Shaper` (or `shape` for
a list).

In the stack it is a leaf under `calls`: it imports only `errors`, never `upstream`, `calls`,
`server` or `mcp`; `calls` feeds it and `server` renders its text.
"""

from .lines import render_lines
from .paths import MISSING, Path, lookup, project, selection
from .shaper import Shaped, Shaper, Shaping, shape

__all__ = [
    "MISSING",
    "Path",
    "Shaped",
    "Shaper",
    "Shaping",
    "lookup",
    "project",
    "render_lines",
    "selection",
    "shape",
]
