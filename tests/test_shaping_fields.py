"""`fields`: each returned event's data keeps only the dotted paths asked for.

Unit tests of the path functions and the argument's validation, then end to end through a real
MCP client against a loopback SSE server.
"""

from __future__ import annotations

import json

import pytest

from mcp_sse_bridge.calls.arguments import plan_shaping
from mcp_sse_bridge.calls.bridge import Limits
from mcp_sse_bridge.errors import ArgumentError, ManualError
from mcp_sse_bridge.manual import parse_manual
from mcp_sse_bridge.shaping import MISSING, lookup, project, selection
from mcp_sse_bridge.shaping.paths import project_data
from tests.shaping_support import Feed, call, client_for, error_of, prices

pytestmark = pytest.mark.anyio

DATA = {"symbol": "AAPL", "quote": {"price": 1.5, "venue": "X"}, "items": [{"id": 1}, {"id": 2}]}


def test_lookup_reads_nested_keys_and_list_indexes() -> None:
    assert lookup(DATA, ("quote", "price")) == 1.5
    assert lookup(DATA, ("items", "1", "id")) == 2
    assert lookup(DATA, ("quote", "bid")) is MISSING
    assert lookup(DATA, ("items", "7")) is MISSING
    assert lookup("text", ("symbol",)) is MISSING


def test_projection_keeps_the_nested_shape_and_leaves_missing_paths_out() -> None:
    tree = selection([("symbol",), ("quote", "price"), ("quote", "bid"), ("nothing", "here")])
    assert project(DATA, tree) == {"symbol": "AAPL", "quote": {"price": 1.5}}


def test_a_path_that_is_a_prefix_of_another_keeps_all_below_it() -> None:
    for paths in ([("quote",), ("quote", "price")], [("quote", "price"), ("quote",)]):
        assert project(DATA, selection(paths)) == {"quote": DATA["quote"]}


def test_projection_into_lists_keeps_the_picked_items_in_index_order() -> None:
    tree = selection([("items", "1", "id"), ("items", "0")])
    assert project(DATA, tree) == {"items": [{"id": 1}, {"id": 2}]}
    assert project(DATA, selection([("items", "1", "id")])) == {"items": [{"id": 2}]}


def test_data_without_any_selected_path_becomes_empty_and_text_stays_as_it_is() -> None:
    tree = selection([("nope",)])
    assert project_data(DATA, tree) == {}
    assert project_data([1, 2], tree) == []
    assert project_data("[DONE]", tree) == "[DONE]"
    assert project_data(42, tree) == 42


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ([], "list of 1 to 50"),
        ("symbol", "list of 1 to 50"),
        ([""], "dotted paths"),
        ([3], "dotted paths"),
        (["quote..price"], "dotted paths"),
        (["quote."], "dotted paths"),
        (["x"] * 51, "list of 1 to 50"),
    ],
)
def test_bad_fields_are_refused_naming_the_argument(fields: object, fragment: str) -> None:
    with pytest.raises(ArgumentError, match=fragment) as caught:
        plan_shaping({"fields": fields})
    assert caught.value.argument == "fields"


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"latest_per": ""}, "latest_per"),
        ({"latest_per": 5}, "latest_per"),
        ({"latest_per": ["symbol"]}, "latest_per"),
        ({"summary": "yes"}, "summary"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_shaping_arguments_are_refused_naming_the_argument(
    arguments: dict[str, object], name: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        plan_shaping(arguments)
    assert caught.value.argument == name and caught.value.hint


@pytest.mark.parametrize("name", ["fields", "latest_per", "summary", "format"])
def test_a_manual_input_may_not_use_a_shaping_name(name: str) -> None:
    tool = {
        "name": "t",
        "inputs": {"type": "object", "properties": {name: {"type": "string"}}},
        "tool_call_template": {"call_template_type": "sse", "url": "https://example.com/s"},
    }
    text = json.dumps({"utcp_version": "1.0.1", "tools": [tool]})
    with pytest.raises(ManualError, match=f"'{name}' is reserved"):
        parse_manual(text, name="m", source="m.json", trusted=True)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_fields_project_every_returned_event(mode: str) -> None:
    events = [*prices(3), {"event": "done", "id": "9", "data": "[DONE]"}]
    async with client_for(Feed({"prices": events}), mode=mode) as client:
        batch, text = await call(client, "prices", {"fields": ["symbol", "quote.price", "bid"]})
    assert [e["data"] for e in batch["events"]] == [
        {"symbol": "AAPL", "quote": {"price": 100.0}},
        {"symbol": "MSFT", "quote": {"price": 101.5}},
        {"symbol": "NVDA", "quote": {"price": 103.0}},
        "[DONE]",
    ]
    assert text[0] == "fields symbol, quote.price, bid: each event's data keeps only these paths"
    assert json.loads(text[1]) == batch
    assert "folded" not in batch and "summary" not in batch


async def test_max_bytes_counts_the_projected_data_so_a_big_event_projected_small_fits() -> None:
    big = {"event": "doc", "id": "1", "data": {"status": "ok", "body": "x" * 5000}}
    feed = Feed({"docs": [big, {**big, "id": "2"}]})
    async with client_for(feed, limits=Limits(max_bytes=1000)) as client:
        raw, _ = await call(client, "docs", {})
        shaped, _ = await call(client, "docs", {"fields": ["status"]})
    assert raw["count"] == 0 and raw["skipped"]["oversized"] == 2
    assert [e["data"] for e in shaped["events"]] == [{"status": "ok"}, {"status": "ok"}]
    assert shaped["skipped"]["oversized"] == 0


async def test_bad_shaping_arguments_are_error_results_a_model_can_act_on() -> None:
    async with client_for(Feed({"prices": prices(2)})) as client:
        empty = await error_of(client, "prices", {"fields": [""]})
        number = await error_of(client, "prices", {"latest_per": 7})
    assert "fields takes dotted paths" in empty
    assert "latest_per takes dotted paths" in number and "7" in number
