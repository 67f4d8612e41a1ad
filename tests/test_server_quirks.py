"""SSE servers with quirks through the whole MCP path (tests/acceptance/quirks.py writes the bytes
each original writes): better-sse, Wikimedia EventStreams, OpenAI, Anthropic, httpx-sse's
phantom events, recordings cut mid-event. (Real third-party servers: test_thirdparty.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acceptance import quirks
from tests.acceptance.bridges import connect, tool, write_manual
from tests.acceptance.results import checked_batch
from tests.sse_server import serve

pytestmark = pytest.mark.anyio


async def quirk_call(
    handler: Any,
    tmp_path: Path,
    arguments: dict[str, Any],
    *,
    mode: str = "legacy",
    **template: Any,
) -> dict[str, Any]:
    """One MCP call against `handler`: the batch, checked against the tool's outputSchema."""
    async with serve(handler) as upstream:
        manual = write_manual(tmp_path / "q.json", tool("t", f"{upstream.url}/s", **template))
        async with connect(f"inproc-{mode}", manual) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(15):
                result = await client.call_tool("t", {"max_seconds": 10, **arguments})
    return checked_batch(result, schema)


async def test_better_sse_resumes_with_its_uuid_after_the_retry_it_asked_for(
    tmp_path: Path,
) -> None:
    """better-sse: `field:value` without a space, a standalone `retry:2000` block, UUID ids.
    After the drop the bridge waits the 2 s the server asked for (jitter allowed), then resumes
    with the UUID of the last event; the batch has every event once, data decoded."""
    server = quirks.BetterSSE()
    batch = await quirk_call(server, tmp_path, {"max_events": 4})
    assert [e["id"] for e in batch["events"]] == quirks.BETTER_SSE_IDS
    assert [e["data"] for e in batch["events"]] == [{"n": n} for n in range(4)]
    assert {e["event"] for e in batch["events"]} == {"message"}
    assert server.resumed_from == [None, quirks.BETTER_SSE_IDS[1]]
    assert batch["reconnects"] == 1 and batch["last_event_id"] == quirks.BETTER_SSE_IDS[3]
    assert batch["elapsed_s"] >= 1.6, "reconnected before the server's retry:2000 (-20 %)"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_wikimedia_json_array_ids_go_back_verbatim(mode: str, tmp_path: Path) -> None:
    """Wikimedia EventStreams: `:ok` opener, JSON-array ids. They go back byte for byte as
    Last-Event-ID after a drop and, passed back by the caller, in the next call."""
    server = quirks.Wikimedia()
    ids = quirks.WIKIMEDIA_IDS
    async with serve(server) as upstream:
        manual = write_manual(
            tmp_path / "w.json",
            tool("t", f"{upstream.url}/s", event_type="message", retry_timeout=20),
        )
        async with connect(f"inproc-{mode}", manual) as client:
            schema = (await client.list_tools()).tools[0].output_schema
            assert schema is not None
            with anyio.fail_after(15):
                first = checked_batch(await client.call_tool("t", {"max_events": 4}), schema)
                arguments = {"max_events": 2, "last_event_id": first["last_event_id"]}
                second = checked_batch(await client.call_tool("t", arguments), schema)
    assert [e["id"] for e in first["events"]] == ids[:4]
    assert first["events"][0]["data"] == {"title": "Zürich 0", "type": "edit"}
    assert first["reconnects"] == 1 and first["last_event_id"] == ids[3]
    assert [e["id"] for e in second["events"]] == ids[4:6]
    assert server.resumed_from == [None, ids[1], ids[3]]


async def test_openai_done_terminator_is_text_and_never_matches(tmp_path: Path) -> None:
    """OpenAI streams end with `data: [DONE]`: it stays the text "[DONE]" (not an error, not
    dropped), and a `match` on the JSON chunks skips it as filtered."""
    everything = await quirk_call(quirks.openai, tmp_path, {})
    assert [e["data"] if isinstance(e["data"], str) else "chunk" for e in everything["events"]] == [
        "chunk",
        "chunk",
        "chunk",
        "[DONE]",
    ]
    assert everything["stop_reason"] == "closed" and everything["last_event_id"] == ""
    matched = await quirk_call(
        quirks.openai, tmp_path, {"match": {"choices.0.delta.content": "lo"}}
    )
    assert [e["data"]["choices"][0]["delta"]["content"] for e in matched["events"]] == ["lo"]
    assert matched["skipped"]["filtered"] == 3


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_anthropic_named_events_are_filtered_and_pings_skipped(
    mode: str, tmp_path: Path
) -> None:
    """Anthropic-style streams: keep only the text deltas, stop at `message_stop` (included),
    and count the pings and the other named events as filtered; the stream is still open, so
    only until_event can end the call before max_seconds."""
    arguments = {"event_types": ["content_block_delta"], "until_event": "message_stop"}
    batch = await quirk_call(quirks.anthropic, tmp_path, arguments, mode=mode)
    assert [e["event"] for e in batch["events"]] == [
        "content_block_delta",
        "content_block_delta",
        "message_stop",
    ]
    assert batch["events"][1]["data"]["delta"]["text"] == " there"
    assert batch["stop_reason"] == "until_event"
    assert batch["skipped"]["filtered"] == 6
    assert batch["elapsed_s"] < 5


@pytest.mark.parametrize(
    ("body", "last_id"),
    [
        pytest.param("id: 1\ndata: kept\n\nid: 2\ndata: cut", "1", id="no-final-newline"),
        pytest.param("id: 1\ndata: kept\n\nid: 2\ndata: cut\n", "1", id="no-final-blank-line"),
        pytest.param("id: 1\r\ndata: kept\r\n\r\nid: 2\r\ndata: cut\r\n", "1", id="crlf"),
    ],
)
async def test_a_recorded_stream_without_a_final_blank_line_drops_its_last_event(
    body: str, last_id: str, tmp_path: Path
) -> None:
    """A recording that stops inside its last event: that event and its id are discarded
    (WHATWG: an unfinished block is dropped at end of stream); the call ends "closed"."""
    batch = await quirk_call(quirks.recorded(body), tmp_path, {})
    assert [e["data"] for e in batch["events"]] == ["kept"]
    assert batch["stop_reason"] == "closed" and batch["last_event_id"] == last_id


async def test_httpx_sse_phantom_events_are_not_events(tmp_path: Path) -> None:
    """httpx-sse yields empty events for a retry-only block, a data-less ping and extra blank
    lines after an id; none of them is an event, but the id-only block moves the cursor."""
    body = (
        ":ok\n\nretry: 100\n\nevent: ping\n\ndata: real\nid: 1\n\n"
        "id: 2\n\n\n\nevent: ping\n\n: comment\n\n"
    )
    batch = await quirk_call(quirks.recorded(body), tmp_path, {})
    assert batch["events"] == [{"event": "message", "id": "1", "data": "real"}]
    assert batch["count"] == 1 and batch["skipped"] == {"filtered": 0, "oversized": 0}
    assert batch["last_event_id"] == "2"
