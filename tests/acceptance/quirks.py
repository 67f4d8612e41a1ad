"""Loopback upstreams that reproduce the wire quirks of real SSE servers (DESIGN.md, section 11).

Each one writes the bytes its original is known to write, so the bridge meets them through the
full path (HTTP, parser, reconnect, batch, MCP). Those that resume after a drop keep the
`Last-Event-ID` each connection carried in `resumed_from` (raw header bytes, decoded as UTF-8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.sse_server import Request, Response, wait_disconnect

BETTER_SSE_IDS = [
    "3f0b3a4e-9a8e-4b8e-8f2c-6c1e0a9d2b71",
    "7d7c1b9e-2c4f-4a6b-9b1d-0e5f6a7b8c9d",
    "c2a5e0f1-5b7d-4e3a-a1c9-8f6d2b4e0a13",
    "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b",
]

WIKIMEDIA_IDS = [
    json.dumps(
        [
            {
                "topic": "eqiad.mediawiki.recentchange",
                "partition": 0,
                "timestamp": 1700000000000 + n,
            },
            {"topic": "codfw.mediawiki.recentchange", "partition": 0, "offset": -1},
        ],
        separators=(",", ":"),
    )
    for n in range(6)
]


def header_text(request: Request, name: str) -> str | None:
    """A header as the client wrote it (the test server decodes headers as latin-1)."""
    value = request.headers.get(name)
    return None if value is None else value.encode("latin-1").decode("utf-8", "replace")


@dataclass
class Resumable:
    """Base of the servers that honour `Last-Event-ID`: records what each connection sent."""

    resumed_from: list[str | None] = field(default_factory=list)

    def resume(self, request: Request, ids: list[str]) -> int:
        """Index of the first event to send: the one after the id the client resumed from."""
        last = header_text(request, "last-event-id")
        self.resumed_from.append(last)
        return ids.index(last) + 1 if last in ids else 0


@dataclass
class BetterSSE(Resumable):
    """better-sse (npm): a standalone `retry:2000` block first, then `field:value` lines with no
    space and UUID ids. This app drops the first connection after two events."""

    async def __call__(self, request: Request, response: Response) -> None:
        start = self.resume(request, BETTER_SSE_IDS)
        await response.send("retry:2000\n\n")
        for n in range(start, len(BETTER_SSE_IDS)):
            payload = json.dumps({"n": n}, separators=(",", ":"))
            await response.send(f"id:{BETTER_SSE_IDS[n]}\nevent:message\ndata:{payload}\n\n")
            if n == 1 and start == 0:
                await response.abort()
                return
        await response.finish()


@dataclass
class Wikimedia(Resumable):
    """Wikimedia EventStreams: a `:ok` opener, `event: message`, and ids that are JSON arrays
    of Kafka positions, to be echoed back verbatim. Drops the first connection after two."""

    async def __call__(self, request: Request, response: Response) -> None:
        start = self.resume(request, WIKIMEDIA_IDS)
        await response.send(":ok\n\n")
        end = 2 if start == 0 else min(start + 2, len(WIKIMEDIA_IDS))
        for n in range(start, end):
            data = json.dumps({"title": f"Zürich {n}", "type": "edit"}, ensure_ascii=False)
            await response.send(f"event: message\nid: {WIKIMEDIA_IDS[n]}\ndata: {data}\n\n")
        if start == 0:
            await response.abort()
        else:
            await response.finish()


async def openai(request: Request, response: Response) -> None:
    """OpenAI-style chat completion chunks, unnamed and without ids, ended by `data: [DONE]`."""
    for piece in ("Hel", "lo", "!"):
        chunk = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": piece}}]}
        await response.send(f"data: {json.dumps(chunk)}\n\n")
    await response.send("data: [DONE]\n\n")
    await response.finish()


ANTHROPIC_EVENTS = [
    ("message_start", {"type": "message_start", "message": {"id": "msg_1", "role": "assistant"}}),
    ("content_block_start", {"type": "content_block_start", "index": 0}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "Hi"}}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"text": " there"}}),
    ("ping", {"type": "ping"}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
    ("message_stop", {"type": "message_stop"}),
]


async def anthropic(request: Request, response: Response) -> None:
    """Anthropic-style named events, `ping` events carrying data among them; the stream is
    held open after `message_stop` (only `until_event` can end the call early)."""
    for name, data in ANTHROPIC_EVENTS:
        await response.send(f"event: {name}\ndata: {json.dumps(data)}\n\n")
    await wait_disconnect(response)


def recorded(body: str):
    """A recorded stream replayed as it was saved, ending however the recording ended."""

    async def replay(request: Request, response: Response) -> None:
        await response.send(body)
        await response.finish()

    return replay
