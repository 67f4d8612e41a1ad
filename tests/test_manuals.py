"""Every manual shipped in `manuals/` loads cleanly and becomes MCP tools."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from mcp_sse_bridge.calls.bridge import Bridge
from mcp_sse_bridge.manual import RESERVED_ARGUMENTS, load_manual
from mcp_sse_bridge.manual.variables import Variables

MANUALS = sorted((Path(__file__).parent.parent / "manuals").glob("*.json"))


def test_the_documented_manuals_are_there() -> None:
    names = {path.stem for path in MANUALS}
    assert {"stocks", "logs", "metrics", "notifications", "demo"} <= names


@pytest.mark.parametrize("path", MANUALS, ids=lambda p: p.name)
def test_manual_loads_without_warnings_into_tools(path: Path) -> None:
    manual = load_manual(str(path))
    assert manual.tools, f"{path.name} defines no SSE tool"
    assert manual.warnings == []
    assert manual.trusted
    bridge = Bridge([manual], variables=Variables(environ={}))
    assert list(bridge.tools) == [tool.name for tool in manual.tools]
    for name in bridge.tools:
        schema = bridge.input_schema(name)
        assert schema["type"] == "object"
        assert set(RESERVED_ARGUMENTS) <= set(schema["properties"])


def test_all_manuals_together_get_prefixed_unique_names() -> None:
    manuals = [load_manual(str(path)) for path in MANUALS]
    bridge = Bridge(manuals, variables=Variables(environ={}))
    assert len(bridge.tools) == sum(len(m.tools) for m in manuals)
    assert "stocks_stream_stock_prices" in bridge.tools
    assert "demo_stock_ticker" in bridge.tools


def test_the_packaged_demo_manual_is_manuals_demo_json() -> None:
    packaged = resources.files("mcp_sse_bridge.demo").joinpath("demo.json").read_text()
    assert packaged == (Path(__file__).parent.parent / "manuals" / "demo.json").read_text()
