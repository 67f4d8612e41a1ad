"""The event-stream parser against the WHATWG "Server-sent events" algorithm, rule by rule.

Each rule has its own test; captures of real servers' output follow; hypothesis then checks
that any chunking gives the same result, that arbitrary bytes never raise or grow memory, and
that the parser agrees with `reference_parse`, a char-by-char transcription of the spec.
"""

from __future__ import annotations

import tracemalloc
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent as StarletteEvent

from mcp_sse_bridge.upstream.sse import EventStreamParser, ServerSentEvent

BOM = b"\xef\xbb\xbf"


def parse(*chunks: bytes, **options: Any) -> tuple[list[ServerSentEvent], EventStreamParser]:
    """Feed `chunks` as one stream, then close it."""
    parser = EventStreamParser(**options)
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    events += parser.close()
    return events, parser


def events_of(*chunks: bytes, **options: Any) -> list[ServerSentEvent]:
    return parse(*chunks, **options)[0]


def data_of(*chunks: bytes, **options: Any) -> list[str]:
    return [event.data for event in events_of(*chunks, **options)]


def buffered(parser: EventStreamParser) -> int:
    """What the parser holds between feeds: the unterminated line and the block's data."""
    more = parser._more or []
    return len(parser._pending) + len(parser._data or "") + sum(map(len, more)) + len(more)


# -- the event model


def test_event_is_an_immutable_value_with_a_readable_repr() -> None:
    event = ServerSentEvent("tick", "1", "7")
    assert (event.event, event.data, event.id) == ("tick", "1", "7")
    assert event == ServerSentEvent(event="tick", data="1", id="7")
    assert repr(event) == "ServerSentEvent(event='tick', data='1', id='7')"
    with pytest.raises(AttributeError):
        event.data = "2"  # type: ignore[misc]


def test_parsed_events_are_server_sent_events() -> None:
    [event] = events_of(b"data: x\n\n")
    assert type(event) is ServerSentEvent
    assert event == ServerSentEvent("message", "x", "")


# -- decoding


def test_bom_at_start_is_stripped() -> None:
    assert data_of(BOM + b"data: x\n\n") == ["x"]


@pytest.mark.parametrize(
    "chunks",
    [
        [BOM[:1], BOM[1:] + b"data: x\n\n"],
        [BOM[:2], BOM[2:] + b"data: x\n\n"],
        [BOM[:1], BOM[1:2], BOM[2:], b"data: x\n\n"],
        [b"", BOM[:1], b"", BOM[1:], b"data: x\n\n"],
    ],
    ids=["1+2", "2+1", "1+1+1", "with-empty-chunks"],
)
def test_bom_split_across_chunks_is_stripped(chunks: list[bytes]) -> None:
    assert data_of(*chunks) == ["x"]


def test_only_one_bom_is_stripped() -> None:
    # The second BOM makes the field name "\ufeffdata", an unknown field.
    assert data_of(BOM + BOM + b"data: x\n\ndata: y\n\n") == ["y"]


def test_bom_not_at_start_is_kept() -> None:
    assert data_of(b"data: " + BOM + b"x\n\n") == ["\ufeffx"]
    assert data_of(b"data: a\n\n" + BOM + b"data: b\n\n") == ["a"]


def test_partial_bom_at_start_is_invalid_utf8_not_a_bom() -> None:
    assert data_of(b"\xef\xbbdata: x\n\ndata: y\n\n") == ["y"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert data_of(b"data: \xff\xfeok\xc3\n\n") == ["\ufffd\ufffdok\ufffd"]


def test_truncated_multibyte_sequence_before_line_end() -> None:
    assert data_of(b"data: \xe2\x82\ndata: \xf0\x9f\x98\r\n\n") == ["\ufffd\n\ufffd"]


def test_surrogate_encoding_is_invalid_utf8() -> None:
    assert data_of(b"data: \xed\xa0\x80\n\n") == ["\ufffd\ufffd\ufffd"]


def test_multibyte_characters_split_across_chunks_decode() -> None:
    stream = "data: é€😀\n\n".encode()
    for cut in range(len(stream) + 1):
        assert data_of(stream[:cut], stream[cut:]) == ["é€😀"], cut
    assert data_of(*(stream[i : i + 1] for i in range(len(stream)))) == ["é€😀"]


# -- line ends


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_end(end: bytes) -> None:
    stream = b"event: e" + end + b"data: a" + end + b"data: b" + end + end
    assert events_of(stream) == [ServerSentEvent("e", "a\nb", "")]


def test_mixed_line_ends() -> None:
    assert data_of(b"data: a\rdata: b\r\ndata: c\n\r\n") == ["a\nb\nc"]


def test_cr_lf_split_across_chunks_is_one_line_end() -> None:
    # Were the LF a second line end, "a" would be dispatched on its own.
    assert data_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == ["a\nb"]


def test_cr_lf_split_with_empty_chunk_between() -> None:
    assert data_of(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == ["a\nb"]


def test_cr_only_stream() -> None:
    assert data_of(b"data: a\r\rdata: b\r\r") == ["a", "b"]


def test_lf_cr_is_two_line_ends() -> None:
    assert data_of(b"data: a\n\rdata: b\n\n") == ["a", "b"]


def test_cr_at_end_of_chunk_dispatches_at_once() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r\r") == [ServerSentEvent("message", "a", "")]


def test_cr_as_last_byte_of_stream_ends_the_line() -> None:
    _, parser = parse(b"data: a\n\nretry: 5\r")
    assert parser.retry == 5
    assert data_of(b"data: a\r\r") == ["a"]


@pytest.mark.parametrize(
    "char", ["\u2028", "\u2029", "\x0c", "\x0b", "\x85", "\x1c", "\x1d", "\x1e"]
)
def test_unicode_line_separators_are_not_line_ends(char: str) -> None:
    assert data_of(f"data: a{char}b\n\n".encode()) == [f"a{char}b"]


# -- fields


def test_data_without_colon_appends_an_empty_line() -> None:
    assert data_of(b"data\n\n") == [""]
    assert data_of(b"data\ndata\ndata: x\n\n") == ["\n\nx"]


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:", ""),
        (b"data: ", ""),
        (b"data:  x", " x"),
        (b"data:x", "x"),
        (b"data: x ", "x "),
        (b"data:\tx", "\tx"),
    ],
)
def test_one_leading_space_is_removed(line: bytes, data: str) -> None:
    assert data_of(line + b"\n\n") == [data]


@pytest.mark.parametrize(
    ("line", "data"),
    [(b"data: a: b", "a: b"), (b"data:a: b", "a: b"), (b"data::x", ":x"), (b"data:a:b", "a:b")],
)
def test_only_the_first_colon_splits(line: bytes, data: str) -> None:
    assert data_of(line + b"\n\n") == [data]


def test_field_names_are_case_sensitive() -> None:
    stream = b"Data: a\nDATA: b\nEvent: e\nID: 1\nRetry: 5\n\n"
    events, parser = parse(stream)
    assert (events, parser.last_event_id, parser.retry) == ([], "", None)


def test_field_name_with_spaces_is_unknown() -> None:
    assert data_of(b"data : a\n data: b\n\n") == []


def test_unknown_fields_are_ignored() -> None:
    assert events_of(b"foo: bar\ndata: x\nx-custom\n\n") == [ServerSentEvent("message", "x", "")]


def test_comments_are_ignored() -> None:
    assert data_of(b": ping\n:\n:ok\ndata: x\n: data: y\n\n") == ["x"]


def test_comment_only_block_is_not_an_event() -> None:
    assert events_of(b": ping\n\n:\n\n") == []


def test_multiline_data_is_joined_with_lf() -> None:
    assert data_of(b"data: a\ndata: b\ndata: c\n\n") == ["a\nb\nc"]


def test_only_one_trailing_lf_is_removed() -> None:
    assert data_of(b"data: a\ndata\n\n") == ["a\n"]


def test_event_type_is_set_by_event_field() -> None:
    assert events_of(b"event: tick\ndata: 1\n\n")[0].event == "tick"


def test_empty_event_field_means_message() -> None:
    assert events_of(b"event:\ndata: 1\n\n")[0].event == "message"


def test_last_event_type_field_wins() -> None:
    assert events_of(b"event: a\nevent: b\ndata: 1\n\n")[0].event == "b"


def test_event_type_does_not_carry_over() -> None:
    events = events_of(b"event: a\ndata: 1\n\ndata: 2\n\n")
    assert [event.event for event in events] == ["a", "message"]


# -- id


def test_id_is_carried_by_later_events() -> None:
    events, parser = parse(b"id: 1\ndata: a\n\ndata: b\n\n")
    assert [event.id for event in events] == ["1", "1"]
    assert parser.last_event_id == "1"


def test_id_with_nul_is_ignored() -> None:
    events, parser = parse(b"id: 1\n\nid: 2\x003\ndata: x\n\n")
    assert events == [ServerSentEvent("message", "x", "1")]
    assert parser.last_event_id == "1"


def test_empty_id_resets_last_event_id() -> None:
    for line in (b"id", b"id:", b"id: "):
        events, parser = parse(b"id: 5\ndata: a\n\n" + line + b"\ndata: b\n\n")
        assert [event.id for event in events] == ["5", ""]
        assert parser.last_event_id == ""


def test_id_only_block_updates_last_event_id_without_an_event() -> None:
    events, parser = parse(b"id: 42\n\n")
    assert (events, parser.last_event_id) == ([], "42")


def test_last_event_id_is_updated_at_the_blank_line_not_before() -> None:
    parser = EventStreamParser()
    parser.feed(b"id: 1\ndata: x\n")
    assert parser.last_event_id == ""
    parser.feed(b"\n")
    assert parser.last_event_id == "1"


def test_unfinished_block_and_its_id_are_discarded_at_end() -> None:
    events, parser = parse(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert events == [ServerSentEvent("message", "a", "1")]
    assert parser.last_event_id == "1"


def test_seeded_last_event_id_is_used_until_the_server_sends_one() -> None:
    events = events_of(b"data: a\n\nid: 9\ndata: b\n\n", last_event_id="8")
    assert [event.id for event in events] == ["8", "9"]


def test_close_makes_the_parser_ready_for_the_next_connection() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"retry: 10\nid: 1\n\nid: 2\ndata: partial") == []
    assert parser.close() == []
    assert parser.feed(BOM + b"data: next\n\n") == [ServerSentEvent("message", "next", "1")]
    assert parser.retry == 10


# -- retry


@pytest.mark.parametrize(("value", "retry"), [(b"2500", 2500), (b"0", 0), (b"007", 7)])
def test_retry_with_ascii_digits_is_set(value: bytes, retry: int) -> None:
    assert parse(b"retry: " + value + b"\n\n")[1].retry == retry


@pytest.mark.parametrize(
    "value",
    [
        "1e3",
        " 100",
        "-1",
        "+5",
        "10_0",
        "1.5",
        "0x10",
        "",
        "5 ",
        "\uff11\uff12",
        "\u00b2",
        "\u0663",
    ],
)
def test_bogus_retry_values_are_ignored(value: str) -> None:
    """No sign, space, `_` or non-ASCII digits (fullwidth, superscript, Arabic-Indic)."""
    _, parser = parse(b"retry: 100\n\nretry: " + value.encode() + b"\n\n")
    assert parser.retry == 100


def test_huge_retry_value_saturates_instead_of_failing() -> None:
    _, parser = parse(b"retry: " + b"9" * 100_000 + b"\n\n")
    assert parser.retry == 10**18
    assert parse(b"retry: " + b"0" * 50 + b"12\n")[1].retry == 12


def test_retry_is_set_at_once_without_a_blank_line() -> None:
    parser = EventStreamParser()
    parser.feed(b"retry: 3000\n")
    assert parser.retry == 3000


def test_retry_only_block_is_not_an_event() -> None:
    events, parser = parse(b"retry: 1000\n\n")
    assert (events, parser.retry) == ([], 1000)


# -- dispatch


def test_dataless_event_ping_is_not_an_event_and_its_type_is_cleared() -> None:
    assert events_of(b"event: ping\n\ndata: x\n\n") == [ServerSentEvent("message", "x", "")]


def test_extra_blank_lines_dispatch_nothing() -> None:
    assert data_of(b"\n\n\r\n\rid: 1\n\n\n\ndata: a\n\n\n\n") == ["a"]


def test_no_final_blank_line_means_no_event() -> None:
    assert data_of(b"data: a\n\ndata: b\n") == ["a"]
    assert data_of(b"data: a\n\ndata: b") == ["a"]


def test_events_are_returned_by_the_chunk_that_completes_them() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [ServerSentEvent("message", "a", "")]
    assert parser.feed(b"\ndata: c") == [ServerSentEvent("message", "b", "")]
    assert parser.close() == []


# -- caps


def test_line_at_the_cap_is_kept() -> None:
    line = b"data: " + b"x" * 94
    assert data_of(line + b"\n\n", max_line_bytes=100) == ["x" * 94]


def test_oversized_line_in_one_chunk_skips_its_event_only() -> None:
    stream = b"data: ok\n\nid: 3\ndata: " + b"x" * 1000 + b"\n\ndata: after\n\n"
    events, parser = parse(stream, max_line_bytes=100)
    assert events == [
        ServerSentEvent("message", "ok", ""),
        ServerSentEvent("message", "after", "3"),
    ]
    assert parser.oversized == 1


def test_oversized_line_without_newline_keeps_memory_bounded_then_recovers() -> None:
    cap = 64 * 1024
    parser = EventStreamParser(max_line_bytes=cap)
    assert parser.feed(b"data: ok\n\ndata: ") == [ServerSentEvent("message", "ok", "")]
    filler = b"x" * (64 * 1024)
    tracemalloc.start()
    try:
        for _ in range(80):  # 5 MiB without a line end
            assert parser.feed(filler) == []
            assert buffered(parser) <= cap
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * cap
    assert parser.oversized == 1
    assert parser.feed(b"x\r") == []
    assert parser.feed(b"\ndata: next\n\n") == []  # the oversized block ends here
    assert parser.feed(b"data: after\n\n") == [ServerSentEvent("message", "after", "")]
    assert parser.oversized == 1


def test_oversized_line_ending_at_chunk_boundary_with_crlf() -> None:
    events, parser = parse(b"data: " + b"x" * 200, b"\r", b"\n\r\ndata: b\n\n", max_line_bytes=100)
    assert (events, parser.oversized) == ([ServerSentEvent("message", "b", "")], 1)


def test_oversized_line_ended_by_a_lone_cr() -> None:
    chunks = (b"data: " + b"x" * 200, b"xx\r\rdata: b\n\n")
    assert parse(*chunks, max_line_bytes=100)[0] == [ServerSentEvent("message", "b", "")]


def test_several_oversized_lines_in_one_block_count_once() -> None:
    huge = b"x" * 200
    chunks = (b"data: " + huge, b"\nid: " + huge + b"\n:" + huge + b"\n\ndata: b\n\n")
    events, parser = parse(*chunks, max_line_bytes=100)
    assert (events, parser.oversized) == ([ServerSentEvent("message", "b", "")], 1)


def test_oversized_comment_skips_the_block_it_is_in() -> None:
    events, parser = parse(b":" + b"p" * 200 + b"\ndata: a\n\ndata: b\n\n", max_line_bytes=100)
    assert (events, parser.oversized) == ([ServerSentEvent("message", "b", "")], 1)


def test_oversized_event_from_many_lines_is_skipped_with_bounded_memory() -> None:
    cap = 1000
    parser = EventStreamParser(max_event_bytes=cap)
    line = b"data: " + b"y" * 93 + b"\n"
    for _ in range(500):  # 50 KB of data lines in one block
        assert parser.feed(line) == []
        assert buffered(parser) <= cap + len(line)
    assert parser.oversized == 1
    assert parser.feed(b"\ndata: next\n\n") == [ServerSentEvent("message", "next", "")]
    assert parser.oversized == 1


def test_event_cap_counts_utf8_bytes_of_the_data() -> None:
    events, parser = parse("data: éééééé\n\ndata: ééééé\n\n".encode(), max_event_bytes=10)
    assert (events, parser.oversized) == ([ServerSentEvent("message", "ééééé", "")], 1)


def test_event_at_the_cap_is_kept() -> None:
    assert events_of(b"data: 12345\ndata: 6789\n\n", max_event_bytes=10)[0].data == "12345\n6789"
    assert events_of(b"data: 12345\ndata: 67890\n\n", max_event_bytes=10) == []


def test_id_of_an_oversized_event_still_counts() -> None:
    _, parser = parse(b"id: 7\ndata: " + b"x" * 200 + b"\n\n", max_line_bytes=100)
    assert parser.last_event_id == "7"


@pytest.mark.parametrize("options", [{"max_line_bytes": 0}, {"max_event_bytes": -1}])
def test_invalid_caps_are_refused_clearly(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        EventStreamParser(**options)


# -- captures of real servers


def test_sse_starlette_crlf_multiline_and_ping_comments() -> None:
    stream = (
        StarletteEvent(comment="ping - 2025-01-01 00:00:15.000001+00:00").encode()
        + StarletteEvent("line 1\nline 2", event="tick", id="1").encode()
        + StarletteEvent(comment="ping - 2025-01-01 00:00:30.000001+00:00").encode()
        + StarletteEvent({"n": 2}, id="2", retry=15000).encode()
    )
    assert b"\r\n" in stream
    events, parser = parse(*(stream[i : i + 7] for i in range(0, len(stream), 7)))
    assert events == [
        ServerSentEvent("tick", "line 1\nline 2", "1"),
        ServerSentEvent("message", "{'n': 2}", "2"),
    ]
    assert (parser.last_event_id, parser.retry) == ("2", 15000)


def test_sse_channel_ok_opener_and_retry_line_without_blank_line() -> None:
    stream = b":ok\n\nretry: 2000\nid: 1\ndata: first\n\n:\n\nid: 2\ndata: second\n\n"
    events, parser = parse(stream)
    assert events == [
        ServerSentEvent("message", "first", "1"),
        ServerSentEvent("message", "second", "2"),
    ]
    assert parser.retry == 2000


def test_nchan_colon_ids_and_dataless_pings() -> None:
    stream = (
        b"id: 1795264950:3\ndata: hello\n\n"
        b"event: ping\n\n"
        b"id: 1795264950:4\ndata: world\n\n"
        b"event: ping\n\n"
    )
    events, parser = parse(stream)
    assert events == [
        ServerSentEvent("message", "hello", "1795264950:3"),
        ServerSentEvent("message", "world", "1795264950:4"),
    ]
    assert parser.last_event_id == "1795264950:4"


def test_better_sse_no_space_fields_and_standalone_retry() -> None:
    stream = (
        b"retry:2000\n\n"
        b'id:3f0b3a4e-9a8e-4b8e-8f2c-6c1e0a9d2b71\nevent:message\ndata:"hello"\n\n'
        b'id:7d7c1b9e-2c4f-4a6b-9b1d-0e5f6a7b8c9d\nevent:update\ndata:{"a":1}\n\n'
    )
    events, parser = parse(stream)
    assert events == [
        ServerSentEvent("message", '"hello"', "3f0b3a4e-9a8e-4b8e-8f2c-6c1e0a9d2b71"),
        ServerSentEvent("update", '{"a":1}', "7d7c1b9e-2c4f-4a6b-9b1d-0e5f6a7b8c9d"),
    ]
    assert parser.retry == 2000


def test_openai_style_done_terminator() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert data_of(stream)[-1] == "[DONE]"
    assert len(data_of(stream)) == 3


def test_anthropic_style_named_events_with_ping() -> None:
    stream = (
        b'event: message_start\ndata: {"type": "message_start"}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: content_block_delta\ndata: {"type": "content_block_delta",'
        b' "delta": {"text": "Hi"}}\n\n'
        b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )
    names = [event.event for event in events_of(stream)]
    assert names == ["message_start", "ping", "content_block_delta", "message_stop"]


def test_recorded_stream_without_final_blank_line() -> None:
    stream = (
        b'event: message_start\ndata: {}\n\nevent: message_stop\ndata: {"type": "message_stop"}'
    )
    assert [event.event for event in events_of(stream)] == ["message_start"]


def test_wikimedia_ok_opener_and_json_array_ids_verbatim() -> None:
    event_id = (
        '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1700000000001},'
        '{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-1}]'
    )
    stream = f':ok\n\nevent: message\nid: {event_id}\ndata: {{"title": "Zürich"}}\n\n'.encode()
    events, parser = parse(stream)
    assert events == [ServerSentEvent("message", '{"title": "Zürich"}', event_id)]
    assert parser.last_event_id == event_id


# -- properties


def reference_parse(stream: bytes) -> tuple[list[ServerSentEvent], str, int | None]:
    """The spec's algorithm transcribed char by char, with no caps and no cleverness."""
    text = stream.decode("utf-8", "replace")  # the spec's "UTF-8 decode" ...
    if text.startswith("\ufeff"):  # ... which also removes one leading BOM
        text = text[1:]
    lines: list[str] = []
    current = ""
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\r":
            lines.append(current)
            current = ""
            if position + 1 < len(text) and text[position + 1] == "\n":
                position += 1
        elif char == "\n":
            lines.append(current)
            current = ""
        else:
            current += char
        position += 1
    # `current`, an unterminated line, is never processed.

    events: list[ServerSentEvent] = []
    data = event_type = id_buffer = last_event_id = ""
    retry: int | None = None
    for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data == "":
                event_type = ""
                continue
            if data[-1] == "\n":
                data = data[:-1]
            events.append(ServerSentEvent(event_type or "message", data, last_event_id))
            data = event_type = ""
            continue
        if line[0] == ":":
            continue
        if ":" in line:
            colon = line.index(":")
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and value and all("0" <= char <= "9" for char in value):
            retry = int(value)
    return events, last_event_id, retry


_names = st.sampled_from(["data", "event", "id", "retry", "Data", "ID", "foo", "", "data "])
_separators = st.sampled_from(["", ":", ": ", ":  ", "::"])
_values = st.text(
    st.sampled_from([*"ab 019:\0\x0c\x85\u2028\ufeff\uff11", "é", "€", "😀"]),
    max_size=6,
)
_lines = st.one_of(
    st.tuples(_names, _separators, _values).map("".join),
    st.just(""),
    st.sampled_from([": ping", ":ok", ":"]),
)
_line_ends = st.sampled_from(["\n", "\r", "\r\n"])
_junk = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f", BOM])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Event streams from a grammar of fields and line ends, with BOMs and invalid UTF-8."""
    body = "".join(draw(st.lists(st.tuples(_lines, _line_ends).map("".join), max_size=25)))
    body += draw(st.sampled_from(["", "data: unterminated", "\r"]))
    stream = bytearray(body.encode())
    for position, junk in draw(st.lists(st.tuples(st.integers(0, len(stream)), _junk), max_size=3)):
        stream[position:position] = junk
    return draw(st.sampled_from([b"", BOM])) + bytes(stream)


_arbitrary = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from([b"\r", b"\n", b":", b" ", b"data", b"id", b"retry", b"1", b"\0", b"x"])
        | _junk,
        max_size=80,
    ).map(b"".join),
)


def rechunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[start:end] for start, end in pairwise(bounds)]


def outcome(chunks: list[bytes], **options: Any) -> tuple[list[ServerSentEvent], str, int | None]:
    events, parser = parse(*chunks, **options)
    return events, parser.last_event_id, parser.retry


@settings(deadline=None)
@given(stream=streams(), data=st.data())
def test_any_chunking_gives_the_same_result(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert outcome(rechunked(stream, cuts)) == outcome([stream])


@settings(deadline=None)
@given(stream=streams(), data=st.data())
def test_grammar_streams_match_the_reference(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    assert outcome(rechunked(stream, cuts)) == reference_parse(stream)


@settings(deadline=None)
@given(stream=_arbitrary, data=st.data())
def test_arbitrary_bytes_match_the_reference(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    assert outcome(rechunked(stream, cuts)) == reference_parse(stream)


@settings(deadline=None)
@given(
    stream=_arbitrary,
    data=st.data(),
    max_line=st.integers(1, 16),
    max_event=st.integers(1, 16),
)
def test_arbitrary_bytes_never_raise_and_stay_bounded(
    stream: bytes, data: st.DataObject, max_line: int, max_event: int
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    parser = EventStreamParser(max_line_bytes=max_line, max_event_bytes=max_event)
    for chunk in rechunked(stream, cuts):
        for event in parser.feed(chunk):
            assert len(event.data.encode()) <= max_event
        assert buffered(parser) <= max_line + max(max_line, max_event)
    assert parser.close() == []
    assert buffered(parser) == 0
