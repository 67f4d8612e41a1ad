"""`latest_per` reading keys from the data text: the same fold as decoding every event.

`LatestPer.feed_texts` reads each chunk's keys from the texts (`KeyScan`) and decodes only the
newest event per key; wherever the text could say something else than decoding (escapes, nested
objects, lists, a key twice, a space before the colon), it decodes the chunk instead. These tests
fold the same chunks both ways and compare, then check what a scan refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sse_bridge.calls.batch import _value
from mcp_sse_bridge.calls.events import event_to_dict, redacted_dict
from mcp_sse_bridge.manual.variables import SecretRegistry
from mcp_sse_bridge.shaping.keyscan import KeyScan
from mcp_sse_bridge.shaping.latest import LatestPer
from mcp_sse_bridge.upstream.sse import ServerSentEvent


def events_of(texts: list[str], start: int = 0) -> list[ServerSentEvent]:
    return [ServerSentEvent("price", text, str(start + i)) for i, text in enumerate(texts)]


def both_ways(chunks: list[list[str]], max_keys: int, path: tuple[str, ...] = ("k",)) -> None:
    """Fold `chunks` by scanning and by decoding; assert the same result and counts."""
    scanned = LatestPer(path, max_keys, decode=_value)
    decoded = LatestPer(path, max_keys)
    start = 0
    for texts in chunks:
        events = events_of(texts, start)
        start += len(texts)
        scanned.feed_texts(events, texts, event_to_dict)
        decoded.feed([event_to_dict(event) for event in events])
    assert scanned.events() == decoded.events()
    counts = ("folded", "skipped", "missing", "text")
    assert [getattr(scanned, c) for c in counts] == [getattr(decoded, c) for c in counts]


def scan(texts: list[str], path: tuple[str, ...] = ("k",)) -> list[Any] | None:
    return KeyScan(path, _value).keys(texts)


def test_flat_objects_fold_as_decoded_with_keys_read_from_the_text() -> None:
    texts = [json.dumps({"seq": i, "k": "ABACBA"[i % 6], "v": i * 1.5}) for i in range(30)]
    texts = [t.replace(" ", "") for t in texts]
    assert scan(texts[:6]) == list("ABACBA")
    both_ways([texts[:10], texts[10:25], texts[25:]], max_keys=10)


def test_keys_that_are_numbers_booleans_and_null_are_read_as_decoding_keys_them() -> None:
    values = ["1", "1.0", "1.00", "true", "null", '"1"', "-0", "0.0", "2e2", "200.0", "1"]
    texts = [f'{{"k":{value},"i":{i}}}' for i, value in enumerate(values)]
    keys = scan(texts)
    assert keys is not None and keys[1] == keys[2] and keys[0] != keys[1] != keys[5]
    both_ways([texts[:4], texts[4:]], max_keys=20)


@pytest.mark.parametrize(
    ("texts", "why"),
    [
        (['{"k":"a\\u0062"}'], "an escape"),
        (['{"m":{"k":"x"}}'], "a nested object"),
        (['[{"k":"x"}]', '{"k":"y","l":[1]}'], "an object inside a list"),
        (['{"m":{"k":"x"}}', '"k":"y"'], "a nested key beside a text that reads as the key"),
        (['{"m":{"k":"x"}}', '"k":1'], "the same with a number"),
        (['{"k":"x","k":"y"}', '{"a":1}'], "a key twice"),
        (['{"k" : "x"}'], "a space before the colon"),
        (['{"k":"x"}', '{"a":1}'], "a text without the key"),
        (['{"k":"x","v":"k"}'], "the name also as a value"),
        (['{"k":{"a":1}}'], "an object as the key"),
        (['{"k":[1,2]}'], "a list as the key"),
        (['{"k":1e999}'], "a number the decoder refuses"),
        (['{"k":"x"}'], "a path of more than one segment"),
    ],
)
def test_a_chunk_the_text_could_misread_is_decoded_instead(texts: list[str], why: str) -> None:
    path = ("k", "x") if "segment" in why else ("k",)
    assert scan(texts, path) is None, why
    both_ways([texts], max_keys=5, path=path)


def test_more_keys_than_max_events_keeps_the_first_ones_seen_as_decoding_does() -> None:
    texts = [f'{{"k":"{key}","i":{i}}}' for i, key in enumerate("ABCDAEBFAC")]
    both_ways([texts[:3], texts[3:7], texts[7:]], max_keys=2)
    both_ways([texts], max_keys=4)
    both_ways([texts[:1], texts[1:]], max_keys=3)


def test_a_name_that_json_escapes_is_never_scanned() -> None:
    assert not KeyScan(('a"b',), _value).usable
    assert KeyScan(("sym bol",), _value).usable


def test_a_key_that_redaction_would_mask_makes_the_chunk_decode() -> None:
    secrets = SecretRegistry(["hunter2-secret"])
    texts = [secrets.redact(t) for t in ['{"k":"hunter2-secret"}', '{"k":"b"}']]
    events = events_of(texts)

    def to_item(event: ServerSentEvent) -> dict[str, Any]:
        return redacted_dict(event, secrets.redact)

    scanned = LatestPer(("k",), 5, decode=_value)
    scanned.feed_texts(events, texts, to_item, secrets.redact)
    assert [e["data"]["k"] for e in scanned.events()] == ["***", "b"]


def test_mixed_chunks_scanned_and_decoded_keep_one_order_of_arrival() -> None:
    flat = ['{"k":"A"}', '{"k":"B"}']
    nested = ['{"k":"A","m":{"n":1}}', '{"x":1}']
    both_ways([flat, nested, flat[1:], nested[:1]], max_keys=5)


json_scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.25, 2.0]),
    st.booleans(),
    st.none(),
    st.sampled_from(["A", "B", "C", "k", "", "a b", "é"]),
)
flat_objects = st.dictionaries(st.sampled_from(["k", "v", "w"]), json_scalars, max_size=3)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


keyed_texts = st.builds(lambda key, d: compact({**d, "k": key}), json_scalars, flat_objects)
json_texts = st.one_of(
    keyed_texts,
    flat_objects.map(compact),
    flat_objects.map(json.dumps),  # with spaces after the colons
    st.builds(lambda d: json.dumps({"m": d, "k": "A"}), flat_objects),
    st.sampled_from(['"text"', "42", "[1]", "not json", '{"k" "A"}', '["k"]']),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(st.lists(json_texts, min_size=1, max_size=8), min_size=1, max_size=5),
    st.integers(1, 4),
)
def test_any_chunks_of_json_texts_fold_as_decoding_folds_them(
    chunks: list[list[str]], max_keys: int
) -> None:
    both_ways(chunks, max_keys)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.lists(keyed_texts, min_size=1, max_size=8), min_size=1, max_size=5),
    st.integers(1, 4),
)
def test_chunks_of_flat_objects_with_the_key_fold_as_decoding_folds_them(
    chunks: list[list[str]], max_keys: int
) -> None:
    both_ways(chunks, max_keys)


def test_a_text_cut_off_in_the_middle_is_decoded_and_counted_as_text() -> None:
    texts = ['{"k":"A","v":1}', '{"k":"A","v":', '{"k":"B"} ']
    assert scan(texts) is None and scan(texts[:1]) == ["A"]
    both_ways([texts], max_keys=5)


def test_a_whole_text_that_is_not_json_but_reads_as_holding_the_key_is_folded_under_it() -> None:
    """The one difference, and the price of not decoding every event: decoding would count
    the malformed text as filtered; the scan folds it, and returns it as text while newest."""
    scanned = LatestPer(("k",), 5, decode=_value)
    texts = ['{"k":"A","v":1}', '{"k":"A","v":}']
    scanned.feed_texts(events_of(texts), texts, event_to_dict)
    assert [e["data"] for e in scanned.events()] == ['{"k":"A","v":}']
    assert (scanned.folded, scanned.missing) == (2, 0)
