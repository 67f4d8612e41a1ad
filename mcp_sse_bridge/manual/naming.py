"""MCP tool names for the tools of one or more manuals.

The tool's own name for a single manual, `<manual>_<tool>` for several, sanitised to
`[A-Za-z0-9_-]` (other characters become `_`) and cut to 64 characters (Claude Desktop's cap)
with `_` + 6 hex digits of the full name's sha1 when cut. Names that still collide get `_2`,
`_3`, ... in manual order, then tool order.
"""

from __future__ import annotations

import hashlib
import re

from .models import Manual, ToolSpec

MAX_TOOL_NAME = 64

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def sanitise_name(name: str) -> str:
    """Map a name onto the characters MCP hosts accept in tool names."""
    return _UNSAFE_NAME_CHARS.sub("_", name)


def tool_names(manuals: list[Manual]) -> dict[str, tuple[Manual, ToolSpec]]:
    """Give every tool a unique, deterministic MCP name (rules in the module docstring)."""
    prefixed = len(manuals) > 1
    names: dict[str, tuple[Manual, ToolSpec]] = {}
    for manual in manuals:
        for tool in manual.tools:
            full = f"{manual.name}_{tool.name}" if prefixed else tool.name
            base = _fit(sanitise_name(full), full)
            name, n = base, 2
            while name in names:
                suffix = f"_{n}"
                name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
                n += 1
            names[name] = (manual, tool)
    return names


def _fit(name: str, full: str) -> str:
    if len(name) <= MAX_TOOL_NAME:
        return name
    digest = hashlib.sha1(full.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{name[: MAX_TOOL_NAME - 7]}_{digest}"
