"""A host's session on every transport the bridge serves (in process, stdio subprocess, streamable
HTTP subprocess) and in both protocol eras: list, call with progress, fail, time out, call
again; and initialize, ping, tools/list and tools/call in every protocol version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import mcp_types as types
import pytest
from jsonschema import Draft202012Validator
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from mcp_sse_bridge.manual import RESERVED_ARGUMENTS
from mcp_sse_bridge.server.subscription_tools import NAMES as SUBSCRIBING
from tests.acceptance.bridges import (
    TRANSPORTS,
    connect,
    http_bridge,
    post_jsonrpc,
    tool,
    write_manual,
)
from tests.acceptance.credentials import AUTH, ENV, SECRET
from tests.acceptance.results import check_error, checked_batch, text_of
from tests.acceptance.upstreams import script, ticks
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


MCP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Feed:
    """The upstream of the session tests: ticks that echo the API key (which must be redacted),
    a 404 that quotes it, and a stream that holds until the bridge hangs up."""

    def __init__(self) -> None:
        self.held = anyio.Event()
        self.hung_up = anyio.Event()

    async def __call__(self, request: Request, response: Response) -> None:
        key = request.headers.get("x-api-key", "")
        if request.path.startswith("/ticks/"):
            symbol = request.path.rsplit("/", 1)[1]
            for n in range(5):
                data = {"symbol": symbol, "n": n, "echo": key}
                await response.send(
                    sse_lines({"event": "tick", "id": f"{symbol}-{n}", "data": data})
                )
            await response.finish()
        elif request.path == "/missing":
            await response.simple(404, f"no such stream for key {key}")
        else:
            await response.send(sse_lines({"id": "h1", "data": "held"}))
            self.held.set()
            await wait_disconnect(response)
            self.hung_up.set()


def feed_tools(base: str) -> list[dict[str, Any]]:
    inputs = {
        "type": "object",
        "properties": {"symbol": {"type": "string"}},
        "required": ["symbol"],
    }
    return [
        tool("ticks", f"{base}/ticks/{{symbol}}", inputs, auth=AUTH, reconnect=False),
        tool("missing", f"{base}/missing", auth=AUTH),
        tool("hold", f"{base}/hold", auth=AUTH),
    ]


def check_listing(tools: list[types.Tool]) -> None:
    """What hosts rely on in tools/list: names they accept, a title, valid JSON Schemas whose
    defaults are valid, the control arguments, the output schema and the read-only hints; the
    subscription tools follow the manual's."""
    assert [t.name for t in tools] == ["ticks", "missing", "hold", *SUBSCRIBING]
    for listed in tools[:3]:
        assert MCP_NAME.fullmatch(listed.name), listed.name
        assert listed.title and "\n" not in listed.title
        assert listed.description
        schema = listed.input_schema
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert set(RESERVED_ARGUMENTS) <= set(schema["properties"])
        for prop in schema["properties"].values():
            if "default" in prop:  # hosts fill forms with these
                Draft202012Validator(prop).validate(prop["default"])
        assert listed.output_schema is not None
        Draft202012Validator.check_schema(listed.output_schema)
        assert listed.output_schema["type"] == "object"
        assert listed.annotations is not None
        assert listed.annotations.read_only_hint is True
        assert listed.annotations.open_world_hint is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_host_session_works_on_every_transport(transport: str, tmp_path: Path) -> None:
    """List, call with progress, fail, time out, call again: one session, as a host lives it.

    The client timeout must close the upstream connection within 1 s (the host gave up; the
    upstream would otherwise stream into the void until max_seconds).
    """
    feed = Feed()
    async with serve(feed) as upstream:
        manual = write_manual(tmp_path / "feed.json", *feed_tools(upstream.url))
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        with anyio.fail_after(60):
            async with connect(transport, manual, env=ENV) as client:
                listed = (await client.list_tools()).tools
                check_listing(listed)
                schema = next(t.output_schema for t in listed if t.name == "ticks")
                assert schema is not None

                arguments = {"symbol": "AAPL", "max_events": 4}
                result = await client.call_tool("ticks", arguments, progress_callback=on_progress)
                batch = checked_batch(result, schema)
                assert [e["id"] for e in batch["events"]] == [
                    "AAPL-0",
                    "AAPL-1",
                    "AAPL-2",
                    "AAPL-3",
                ]
                assert SECRET not in json.dumps(batch) and SECRET not in text_of(result)

                assert check_error(await client.call_tool("missing", {}), "404") == []

                with pytest.raises(mcp.MCPError, match=r"(?i)timed out"):
                    await client.call_tool("hold", {"max_seconds": 60}, read_timeout_seconds=1.0)
                gave_up = anyio.current_time()
                assert feed.held.is_set(), "the held stream never connected"
                with anyio.move_on_after(5):
                    await feed.hung_up.wait()
                waited = anyio.current_time() - gave_up
                assert waited <= 1.0, f"upstream still open {waited:.2f} s after the client gave up"

                again = await client.call_tool("ticks", {"symbol": "MSFT", "max_events": 1})
                assert checked_batch(again, schema)["events"][0]["data"]["symbol"] == "MSFT"
    assert [(progress, total) for progress, total, _ in seen] == [(n, 4) for n in (1, 2, 3, 4)]
    for *_, message in seen:
        assert message and "\n" not in message and SECRET not in message, message


async def test_initialize_and_ping_work_in_every_protocol_version(tmp_path: Path) -> None:
    """Over streamable HTTP, one session per protocol version the SDK can negotiate (and one a
    future client might ask for): initialize agrees on the version, then ping, tools/list and
    tools/call work in it. The modern era (no initialize) works through the SDK client, and a
    request with a foreign Host header (DNS rebinding) is refused."""
    async with serve(script(*ticks(3))) as upstream:
        manual = write_manual(tmp_path / "v.json", tool("t", f"{upstream.url}/s"))
        offers = [*HANDSHAKE_PROTOCOL_VERSIONS, "2099-01-01"]
        agreed: dict[str, Any] = {}
        with anyio.fail_after(60):
            async with http_bridge(manual) as url, httpx2.AsyncClient(timeout=20) as http:
                for offer in offers:
                    info = {"name": "raw", "version": "0"}
                    init = {"protocolVersion": offer, "capabilities": {}, "clientInfo": info}
                    response, [reply] = await post_jsonrpc(
                        http, url, {"id": 1, "method": "initialize", "params": init}, {}
                    )
                    version = reply["result"]["protocolVersion"]
                    assert reply["result"]["serverInfo"]["name"] == "mcp-sse-bridge"
                    assert "tools" in reply["result"]["capabilities"]
                    headers = {
                        "Mcp-Session-Id": response.headers["mcp-session-id"],
                        "Mcp-Protocol-Version": version,
                    }
                    done, _ = await post_jsonrpc(
                        http, url, {"method": "notifications/initialized"}, headers
                    )
                    assert done.status_code == 202
                    _, [pong] = await post_jsonrpc(http, url, {"id": 2, "method": "ping"}, headers)
                    _, [listing] = await post_jsonrpc(
                        http, url, {"id": 3, "method": "tools/list"}, headers
                    )
                    call = {"name": "t", "arguments": {"max_events": 2}}
                    _, [called] = await post_jsonrpc(
                        http, url, {"id": 4, "method": "tools/call", "params": call}, headers
                    )
                    agreed[offer] = version
                    assert pong["result"] == {}, (offer, pong)
                    assert [t["name"] for t in listing["result"]["tools"]] == ["t", *SUBSCRIBING], (
                        offer
                    )
                    assert json.loads(called["result"]["content"][0]["text"])["count"] == 2, offer
                evil = await http.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Host": "attacker.example", "Accept": "application/json"},
                )
                async with mcp.Client(url, mode="2026-07-28") as modern:
                    names = [t.name for t in (await modern.list_tools()).tools]
                    modern_batch = (
                        await modern.call_tool("t", {"max_events": 1})
                    ).structured_content
    expected = {v: v for v in HANDSHAKE_PROTOCOL_VERSIONS} | {
        "2099-01-01": LATEST_HANDSHAKE_VERSION
    }
    assert agreed == expected
    assert 400 <= evil.status_code < 500
    assert names == ["t", *SUBSCRIBING] and (modern_batch or {})["count"] == 1
