"""Parser throughput: our EventStreamParser against httpx-sse 0.4.3 and a naive floor.

All three parse the same deterministic stream of ~150-byte events (JSON data, event names,
ids) fed in 64 KiB chunks, in this process, one after the other; each figure is the best of
three runs. httpx-sse is driven exactly as its `EventSource.aiter_sse` does it (httpx's
TextDecoder, then httpx-sse's SSELineDecoder, `rstrip("\\n")`, SSEDecoder); the same with httpx's
own LineDecoder is measured too. The floor (split on blank lines, one `partition` per line,
no spec rules at all) shows what pure Python can do at best.

    python bench/bench_parser.py [SIZE_MB] [--quick]

Needs `pip install httpx-sse==0.4.3 httpx` (the `bench` extra).
"""

from __future__ import annotations

import codecs
import gc
import json
import sys
import time
from collections.abc import Callable, Iterable

from mcp_sse_bridge.upstream.sse import EventStreamParser

CHUNK_BYTES = 64 * 1024
RUNS = 3
_NAMES = ("price_update", "trade", "quote", "heartbeat_stats")
_SYMBOLS = ("AAPL", "MSFT", "GOOG", "NVDA", "AMZN", "META", "TSLA")
_VENUES = ("NASDAQ", "NYSE", "Börse Frankfurt", "東京")  # non-ASCII: decoding is part of the job


def build_stream(size_mb: float) -> tuple[list[bytes], int]:
    """Deterministic events of about 150 bytes, cut into 64 KiB chunks; returns (chunks, count)."""
    target = int(size_mb * 1024 * 1024)
    parts: list[bytes] = []
    size = count = 0
    while size < target:
        data = {
            "seq": count,
            "symbol": _SYMBOLS[count % len(_SYMBOLS)],
            "price": round(100 + (count * 37 % 10_000) / 100, 2),
            "bid": round(99.5 + (count * 37 % 10_000) / 100, 2),
            "ask": round(100.5 + (count * 37 % 10_000) / 100, 2),
            "size": count * 13 % 5_000,
            "venue": _VENUES[count % len(_VENUES)],
            "ts": 1_700_000_000_000 + count * 17,
        }
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        part = f"event: {_NAMES[count % len(_NAMES)]}\nid: {count}\ndata: {text}\n\n".encode()
        parts.append(part)
        size += len(part)
        count += 1
    stream = b"".join(parts)
    return [stream[i : i + CHUNK_BYTES] for i in range(0, len(stream), CHUNK_BYTES)], count


def parse_ours(chunks: Iterable[bytes]) -> int:
    parser = EventStreamParser()
    count = 0
    for chunk in chunks:
        count += len(parser.feed(chunk))
    return count + len(parser.close())


def _httpx_sse(line_decoder_class: type) -> Callable[[Iterable[bytes]], int]:
    from httpx._decoders import TextDecoder
    from httpx_sse._decoders import SSEDecoder

    def parse(chunks: Iterable[bytes]) -> int:
        text_decoder, lines, decoder = TextDecoder(), line_decoder_class(), SSEDecoder()
        count = 0
        for chunk in chunks:
            for line in lines.decode(text_decoder.decode(chunk)):
                if decoder.decode(line.rstrip("\n")) is not None:
                    count += 1
        for line in lines.decode(text_decoder.flush()) + lines.flush():
            if decoder.decode(line.rstrip("\n")) is not None:
                count += 1
        return count

    return parse


def parse_floor(chunks: Iterable[bytes]) -> int:
    """Split on blank lines and partition each line; not a parser, a speed reference."""
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    tail = ""
    count = 0
    for chunk in chunks:
        blocks = (tail + decode(chunk)).split("\n\n")
        tail = blocks.pop()
        for block in blocks:
            for line in block.split("\n"):
                line.partition(":")
            count += 1
    return count


def _best(parse: Callable[[list[bytes]], int], chunks: list[bytes], runs: int) -> tuple[int, float]:
    best = float("inf")
    count = 0
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        count = parse(chunks)
        best = min(best, time.perf_counter() - started)
    return count, best


def run(size_mb: float = 30, quick: bool = False) -> dict:
    """Measure events/s of each parser (best of 3) and the ratios of ours to the others."""
    try:
        from httpx._decoders import LineDecoder
        from httpx_sse._decoders import SSELineDecoder
    except ImportError as exc:
        raise RuntimeError(
            f"the parser benchmark needs httpx-sse 0.4.3 and httpx ({exc}); "
            "install them with: pip install 'httpx-sse==0.4.3' httpx"
        ) from exc
    if quick:
        size_mb = min(size_mb, 5)
    chunks, expected = build_stream(size_mb)
    parsers = {
        "ours": parse_ours,
        "httpx_sse": _httpx_sse(SSELineDecoder),
        "httpx_sse_linedecoder": _httpx_sse(LineDecoder),
        "floor": parse_floor,
    }
    rates: dict[str, float] = {}
    for name, parse in parsers.items():
        count, seconds = _best(parse, chunks, RUNS)
        if count != expected:
            raise RuntimeError(f"{name} parsed {count} events, expected {expected}")
        rates[name] = count / seconds
    return {
        "size_mb": round(sum(map(len, chunks)) / 2**20, 1),
        "events": expected,
        "chunk_bytes": CHUNK_BYTES,
        "runs": RUNS,
        "events_per_s": {name: round(rate) for name, rate in rates.items()},
        "ratio_httpx_sse": round(rates["ours"] / rates["httpx_sse"], 2),
        "ratio_httpx_sse_linedecoder": round(rates["ours"] / rates["httpx_sse_linedecoder"], 2),
        "ratio_floor": round(rates["ours"] / rates["floor"], 2),
    }


def main(argv: list[str]) -> None:
    sizes = [float(arg) for arg in argv if arg != "--quick"]
    result = run(*sizes[:1], quick="--quick" in argv)
    print(f"{result['size_mb']} MB, {result['events']} events, {CHUNK_BYTES // 1024} KiB chunks")
    print(f"{'parser':<24}{'events/s':>12}{'ours is':>10}")
    for name, rate in result["events_per_s"].items():
        ratio = result["events_per_s"]["ours"] / rate
        print(f"{name:<24}{rate:>12,}{ratio:>9.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
