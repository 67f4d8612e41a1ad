"""The event-stream format as browsers parse it: the web-platform-tests `eventsource/` corpus and
the HTML spec's examples, each body fed byte by byte, in 3-byte chunks and whole.

The parser's rule-by-rule and property tests are in test_sse.py.
"""

from __future__ import annotations

import pytest

from mcp_sse_bridge.upstream.sse import EventStreamParser


def php_message(message: str, newline: str = "\n\n") -> bytes:
    """The body `eventsource/resources/message.py` sends for `?message=...&newline=...`."""
    return (message + newline + "\n").encode()


LONG = "x" * 2048


# (body, events as (type, data, id), retry after the stream, last event ID after close)
CORPUS = [
    pytest.param(
        "\ufeffdata:1\n\n\ufeffdata:2\n\ndata:3\n\n\n".encode(),
        [("message", "1", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-bom",
    ),
    pytest.param(
        "\ufeff\ufeffdata:1\n\ndata:2\n\ndata:3\n\n\n".encode(),
        [("message", "2", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-bom-2",
    ),
    pytest.param(
        php_message(
            f"data:1\r:\0\n:\r\ndata:2\n:{LONG}\rdata:3\n:data:fail\r:{LONG}\ndata:4\n", ""
        ),
        [("message", "1\n2\n3\n4", "")],
        None,
        "",
        id="wpt-format-comments",
    ),
    pytest.param(
        php_message("retry:1000\ndata:test1\n\nid:test\ndata:test2", ""),
        [("message", "test1", "")],
        1000,
        "",
        id="wpt-format-data-before-final-empty-line",
    ),
    pytest.param(
        php_message("data:\n\ndata\ndata\n\ndata:test"),
        [("message", "", ""), ("message", "\n", ""), ("message", "test", "")],
        None,
        "",
        id="wpt-format-field-data",
    ),
    pytest.param(
        php_message("event:test\ndata:x\n\ndata:x"),
        [("test", "x", ""), ("message", "x", "")],
        None,
        "",
        id="wpt-format-field-event",
    ),
    pytest.param(
        php_message("event: \ndata:data"),
        [("message", "data", "")],
        None,
        "",
        id="wpt-format-field-event-empty",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\ndata:2\n\n",
        [("message", "1", "1"), ("message", "2", "1")],
        None,
        "1",
        id="wpt-format-field-id-3-persists",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", "2"), ("message", "3", "2")],
        None,
        "2",
        id="wpt-format-field-id-3-changes-and-persists",
    ),
    pytest.param(
        b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1"), ("message", "2", ""), ("message", "3", "")],
        None,
        "",
        id="wpt-format-field-id-3-resets",
    ),
    pytest.param(
        php_message(
            "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
            "data:\r\n data:32\ndata:4\n"
        ),
        [("message", "\0\n 2\n1\n3\n\n4", "")],
        None,
        "",
        id="wpt-format-field-parse",
    ),
    pytest.param(
        php_message("retry:03000\ndata:x"),
        [("message", "x", "")],
        3000,
        "",
        id="wpt-format-field-retry",
    ),
    pytest.param(
        php_message("retry:2000\nretry:1000x\ndata:x"),
        [("message", "x", "")],
        2000,
        "",
        id="wpt-format-field-retry-bogus",
    ),
    pytest.param(
        php_message("retry\ndata:test"),
        [("message", "test", "")],
        None,
        "",
        id="wpt-format-field-retry-empty",
    ),
    pytest.param(
        php_message(
            "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test"
        ),
        [("message", "test\n\ntest", "")],
        None,
        "",
        id="wpt-format-field-unknown",
    ),
    pytest.param(
        php_message("data:\ttest\rdata: \ndata:test"),
        [("message", "\ttest\n\ntest", "")],
        None,
        "",
        id="wpt-format-leading-space",
    ),
    pytest.param(
        php_message("data:test\r\ndata\ndata:test\r\n\r"),
        [("message", "test\n\ntest", "")],
        None,
        "",
        id="wpt-format-newlines",
    ),
    pytest.param(
        php_message("data:\0\n\n"),
        [("message", "\0", "")],
        None,
        "",
        id="wpt-format-null-character",
    ),
    pytest.param(
        php_message("data:ok\u2026"), [("message", "ok\u2026", "")], None, "", id="wpt-format-utf-8"
    ),
    pytest.param(
        b"data:msg\ndata:msg\n\n:\nfalsedata:msg\n\ndata:\n\ndata:end\n\n",
        [("message", "msg\nmsg", ""), ("message", "", ""), ("message", "end", "")],
        None,
        "",
        id="wpt-event-data",
    ),
    pytest.param(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [("message", "YHOO\n+2\n10", "")],
        None,
        "",
        id="html-spec-stock-example",
    ),
    pytest.param(
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n",
        [("message", "first event", "1"), ("message", "second event", "")],
        None,
        "",
        id="html-spec-ids-and-unterminated-block",
    ),
    pytest.param(
        b"data\n\ndata\ndata\n\ndata:",
        [("message", "", ""), ("message", "\n", "")],
        None,
        "",
        id="html-spec-empty-data-lines",
    ),
    pytest.param(
        b"data:test\n\ndata: test\n\n",
        [("message", "test", ""), ("message", "test", "")],
        None,
        "",
        id="html-spec-optional-space",
    ),
]


@pytest.mark.parametrize(("body", "expected", "retry", "last_id"), CORPUS)
@pytest.mark.parametrize("chunk", [1, 3, None], ids=["bytewise", "3-byte-chunks", "whole"])
def test_the_wpt_and_html_spec_corpus_parses_as_browsers_do(
    body: bytes,
    expected: list[tuple[str, str, str]],
    retry: int | None,
    last_id: str,
    chunk: int | None,
) -> None:
    """Each body, fed byte by byte, in 3-byte chunks and whole, gives what the corpus expects."""
    parser = EventStreamParser()
    size = chunk or len(body)
    events = [e for i in range(0, len(body), size) for e in parser.feed(body[i : i + size])]
    events += parser.close()
    assert [(e.event, e.data, e.id) for e in events] == expected
    assert parser.retry == retry
    assert parser.last_event_id == last_id
