"""Content-Encoding: gzip and deflate (zlib-wrapped and raw) event streams are decoded as they
arrive, resume after a cut mid-event, keep their whole events when truncated, and a corrupt
body or a compressed refusal is one clear error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.bridges import stdio_bridge, tool, write_manual
from tests.acceptance.network import Compressor, origin
from tests.acceptance.results import batch_of, error_of, ids
from tests.sse_server import Request, Response, serve, sse_lines

pytestmark = pytest.mark.anyio


class Compressed:
    """/<encoding>/<shape>: six events in `encoding` (gzip, deflate, raw-deflate), flushed one
    by one. Shapes: `whole`; `cut` drops the connection halfway through the fourth event's
    compressed bytes on the first connection and resumes after Last-Event-ID; `truncated` ends
    the chunked body cleanly in the middle of the compressed stream; `corrupt` sends bytes
    that are not the encoding; `refused` is a 503 whose compressed body explains."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []

    async def __call__(self, request: Request, response: Response) -> None:
        _, encoding, shape = request.path.split("/")
        header = {"Content-Encoding": "gzip" if encoding == "gzip" else "deflate"}
        last = request.headers.get("last-event-id")
        self.last_ids.append(last)
        packer = Compressor(encoding)
        if shape == "refused":
            body = packer.piece("maintenance until 12:00") + packer.end()
            await response.simple(503, body, headers=header)
            return
        await response.head(200, header)
        if shape == "corrupt":
            await response.send(b"\x1f\x8b\x08\x00garbage, not deflate" * 4)
            await response.finish()
            return
        start = int(last) + 1 if last else 1
        await response.send(packer.piece("retry: 100\n\n"))
        for n in range(start, 7):
            piece = packer.piece(sse_lines({"id": str(n), "data": {"n": n}}))
            if n == 4 and last is None and shape in ("cut", "truncated"):
                await response.send(piece[: len(piece) // 2])
                if shape == "cut":
                    await response.abort()
                else:
                    await response.finish()
                return
            await response.send(piece)
        await response.send(packer.end())
        await response.finish()


async def test_compressed_event_streams_are_decoded_as_they_arrive(tmp_path: Path) -> None:
    """gzip and deflate (zlib-wrapped and raw) are decoded as they arrive; a gzip stream cut
    mid-event reconnects with the last whole event's id and loses or repeats nothing; one that
    ends cleanly mid-stream keeps the whole events; garbage is a clear protocol error; and a
    refusal's compressed body is quoted decoded."""
    upstream = Compressed()
    async with serve(upstream) as up:
        shapes = [
            ("gzip", "whole"),
            ("deflate", "whole"),
            ("raw-deflate", "whole"),
            ("gzip", "cut"),
            ("deflate", "cut"),
            ("gzip", "truncated"),
            ("gzip", "corrupt"),
            ("gzip", "refused"),
        ]
        tools = [tool(f"{e}_{s}".replace("-", "_"), f"{origin(up)}/{e}/{s}") for e, s in shapes]
        manual = write_manual(tmp_path / "gz.json", *tools)
        async with stdio_bridge(manual) as client:
            results = {
                t["name"]: await client.call_tool(t["name"], {"max_seconds": 5}) for t in tools
            }
    every = ["1", "2", "3", "4", "5", "6"]
    for name in ("gzip_whole", "deflate_whole", "raw_deflate_whole"):
        batch = batch_of(results[name])
        assert ids(batch) == every and batch["stop_reason"] == "closed", name
        assert batch["events"][5]["data"] == {"n": 6}
    for name in ("gzip_cut", "deflate_cut"):
        batch = batch_of(results[name])
        assert ids(batch) == every and batch["reconnects"] == 1, name
    truncated = batch_of(results["gzip_truncated"])
    assert ids(truncated) == ["1", "2", "3"] and truncated["stop_reason"] == "closed"
    error_of(results["gzip_corrupt"], "could not be decoded", "Content-Encoding")
    error_of(results["gzip_refused"], "503", "maintenance until 12:00")
    assert upstream.last_ids.count("3") == 2  # each cut stream resumed after event 3
