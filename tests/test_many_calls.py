"""Many calls on one bridge: a hundred concurrent calls on one session each get their own events
and progress, none of another's; two hundred sequential calls (clean ends, cut streams,
refusals, redirects) leak no socket and no memory.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import mcp
import mcp_types as types
import pytest

from tests.acceptance.bridges import connect, stdio_bridge, tool, write_manual
from tests.acceptance.network import child_pid, open_fds, origin, rss_kib, sockets
from tests.acceptance.results import text_of
from tests.acceptance.upstreams import events
from tests.sse_server import Request, Response, serve, sse_lines, wait_disconnect

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("transport", ["stdio-legacy", "stdio-auto", "http-legacy", "http-auto"])
async def test_a_hundred_concurrent_calls_on_one_session_stay_apart(
    transport: str, tmp_path: Path
) -> None:
    """Each call gets its own events and its own progress notifications, none of another's."""

    async def per_call(request: Request, response: Response) -> None:
        n = int(request.path.rsplit("/", 1)[1])
        for k in range(3):
            await response.send(sse_lines({"id": f"{n}.{k}", "data": {"call": n, "k": k}}))
        await response.finish()

    inputs = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with serve(per_call) as upstream:
        manual = write_manual(tmp_path / "c.json", tool("t", f"{upstream.url}/s/{{n}}", inputs))
        results: dict[int, types.CallToolResult] = {}
        progress: dict[int, list[tuple[float, str | None]]] = {}

        async def one(client: mcp.Client, n: int) -> None:
            progress[n] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress[n].append((value, message))

            arguments = {"n": n, "max_events": 3}
            results[n] = await client.call_tool("t", arguments, progress_callback=on_progress)

        with anyio.fail_after(60):
            async with connect(transport, manual) as client, anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(one, client, n)
    wrong = []
    for n in range(100):
        events = (results[n].structured_content or {}).get("events", [])
        if [e["data"]["call"] for e in events] != [n] * 3:
            wrong.append(f"call {n} got {text_of(results[n])[:200]}")
        if [v for v, _ in progress[n]] != [1, 2, 3] or any(
            f'"call":{n},' not in (m or "") for _, m in progress[n]
        ):
            wrong.append(f"call {n} progress {progress[n]}")
    assert not wrong, "\n".join(wrong[:10])


class Mixed:
    """What 200 calls meet: clean ends, streams the bridge cuts at max_events, refusals and
    redirects."""

    async def __call__(self, request: Request, response: Response) -> None:
        name = request.path.strip("/")
        if name == "clean":
            await events(response, 1, 2)
            await response.finish()
        elif name == "held":
            await events(response, 1, 2, 3)
            await wait_disconnect(response)
        elif name == "refused":
            # a wait longer than the call's max_seconds: refused at once, not retried
            await response.simple(503, "busy", headers={"Retry-After": "60"})
        else:
            await response.simple(302, "", headers={"Location": "/clean"})


async def test_two_hundred_calls_leak_no_socket_and_no_memory(tmp_path: Path) -> None:
    """200 sequential calls through one bridge process (clean ends, cut streams, refusals,
    redirects): afterwards its descriptors are as before (every connection closed, on both
    ends), and its resident memory grows by no more than noise."""
    async with serve(Mixed()) as up:
        names = ["clean", "held", "refused", "moved"]
        manual = write_manual(
            tmp_path / "many-calls.json", *(tool(n, f"{origin(up)}/{n}") for n in names)
        )
        async with stdio_bridge(manual) as client:
            pid = child_pid(str(manual))

            async def calls(count: int) -> list[bool]:
                results = []
                for i in range(count):
                    result = await client.call_tool(names[i % 4], {"max_events": 2})
                    results.append(result.is_error)
                return results

            await calls(40)  # warm up: imports, caches, the allocator's arenas
            fds, socks, rss = open_fds(pid), sockets(pid), rss_kib(pid)
            with anyio.fail_after(40):
                errors = await calls(200)
            fds_after, socks_after, rss_after = open_fds(pid), sockets(pid), rss_kib(pid)
            with anyio.fail_after(5):  # while the bridge still runs
                await up.wait_for_client_close()
    assert errors == [name == "refused" for name in names] * 50
    assert (fds_after, socks_after) == (fds, socks)
    assert up.open_connections == 0 and len(up.requests) == 240 + 60
    assert rss_after - rss <= 2048, f"RSS {rss} KiB -> {rss_after} KiB"
