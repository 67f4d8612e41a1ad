"""`summary` fed a chunk's data texts: the same aggregates as from decoded, redacted events.

A call's summary decodes each event's data on its own and builds no event dicts but for the
samples it returns, and it masks secrets when it writes the summary rather than in every value.
These tests feed the same chunks both ways (`Shaper.feed_texts`, as a call does, and
`Shaper.feed` of `redacted_dict` events, as a subscription read does) and compare the results,
secrets, caps and odd data included.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sse_bridge.calls.batch import _value
from mcp_sse_bridge.calls.events import redacted_dict
from mcp_sse_bridge.manual.variables import SecretRegistry
from mcp_sse_bridge.shaping import Shaping
from mcp_sse_bridge.shaping.shaper import Shaped, Shaper
from mcp_sse_bridge.shaping.summary import MAX_DISTINCT, MAX_TEXT
from mcp_sse_bridge.upstream.sse import ServerSentEvent

SECRET = "hunter2-very-secret"
SECRETS = SecretRegistry([SECRET])


SUMMARY = Shaping(summary=True)


def both_ways(
    chunks: list[list[ServerSentEvent]], shaping: Shaping = SUMMARY, **bounds: Any
) -> Shaped:
    """Summarise `chunks` from texts and from redacted events; assert the same result."""
    bounds = {"max_events": 3, "summary_limit": 10_000, **bounds}
    redact = SECRETS.redact
    texts_way = Shaper(shaping, decode=_value, **bounds)
    events_way = Shaper(shaping, **bounds)
    assert texts_way.scans
    for at, chunk in enumerate(chunks):
        texts = [redact(event.data) for event in chunk]
        to_item = lambda event: redacted_dict(event, redact)  # noqa: E731
        taken = texts_way.feed_texts(chunk, texts, to_item, float(at), redact)
        assert taken == events_way.feed([to_item(event) for event in chunk], float(at))
    shaped = texts_way.result(None)
    assert shaped == events_way.result(None)
    assert SECRET not in json.dumps([shaped.summary, shaped.events])
    return shaped


def events(datas: list[str], kind: str = "m", start: int = 0) -> list[ServerSentEvent]:
    return [ServerSentEvent(kind, data, str(start + i)) for i, data in enumerate(datas)]


def test_flat_prices_in_chunks_summarise_as_decoded_events_do() -> None:
    datas = [
        json.dumps(
            {"seq": i, "symbol": f"S{i % 7}", "price": 100 + i % 13 * 0.25, "up": i % 3 == 0}
        )
        for i in range(500)
    ]
    shaped = both_ways(
        [events(datas[:120]), events(datas[120:400], start=120), events(datas[400:], start=400)]
    )
    assert shaped.summary is not None and shaped.summary["count"] == 500
    assert [e["id"] for e in shaped.events] == ["497", "498", "499"]


def test_objects_missing_fields_nested_objects_lists_and_text_summarise_alike() -> None:
    datas = [
        '{"a":1,"b":"x"}',
        '{"a":2}',
        '{"b":"y","n":{"deep":{"er":3}}}',
        "[1,2,3]",
        "plain text",
        '"a JSON string"',
        "42",
        '{"a":1e999}',  # refused by the strict decoder: text
        '{"a":null,"b":true,"c":[1]}',
    ]
    shaped = both_ways([events(datas[:4]), events(datas[4:], kind="other", start=4)])
    assert shaped.summary is not None and shaped.summary["text"] == 3
    values = shaped.summary["values"]  # the list, the three strings and 42
    assert values["count"] == 5 and values["other"] == 1 and values["number"]["count"] == 1
    assert shaped.summary["by_event"] == {"m": 4, "other": 5}


def test_secrets_in_values_keys_types_ids_and_escapes_are_masked_in_the_summary() -> None:
    escaped = SECRET.replace("h", "\\u0068")  # only decoding shows the secret
    datas = [
        json.dumps({"token": SECRET, SECRET: 1}),
        f'{{"token":"{escaped}","note":"x"}}',
        json.dumps({"long": "y" * (MAX_TEXT - 5) + SECRET}),  # the cut would split the secret
        json.dumps({"long": "z" * 3 + SECRET + "z" * MAX_TEXT}),
    ]
    chunk = [ServerSentEvent(SECRET, data, f"id-{SECRET}-{i}") for i, data in enumerate(datas)]
    shaped = both_ways([chunk], max_events=4)
    assert shaped.summary is not None and "***" in json.dumps(shaped.summary)


def test_the_distinct_bound_and_the_summary_limit_hold_alike() -> None:
    datas = [json.dumps({"u": f"user-{i}", "k": i % 4}) for i in range(MAX_DISTINCT + 300)]
    chunks = [events(datas[i : i + 250], start=i) for i in range(0, len(datas), 250)]
    shaped = both_ways(chunks, summary_limit=MAX_DISTINCT + 120)
    assert shaped.summary is not None and shaped.summary["limit_reached"] is True
    text = shaped.summary["fields"]["u"]["string"]
    assert text == {**text, "distinct": MAX_DISTINCT, "distinct_capped": True}
    assert text["count"] == MAX_DISTINCT + 120


def test_summary_with_fields_reads_only_those_fields_alike() -> None:
    datas = [json.dumps({"a": i, "b": {"c": str(i % 3)}, "d": "x"}) for i in range(50)]
    shaping = Shaping(summary=True, fields=(("b", "c"), ("a",)))
    shaped = both_ways([events(datas[:20]), events(datas[20:], start=20)], shaping)
    assert shaped.summary is not None and list(shaped.summary["fields"]) == ["b.c", "a"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", SECRET, "a\\"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abk"), inner),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(JSON_VALUES.map(json.dumps) | st.text(max_size=5), max_size=8), max_size=4)
)
def test_any_chunks_summarise_from_texts_as_from_decoded_events(datas: list[list[str]]) -> None:
    start = 0
    chunks = []
    for chunk in datas:
        chunks.append(events(chunk, start=start))
        start += len(chunk)
    both_ways(chunks)
