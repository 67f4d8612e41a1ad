"""Real SSE servers that nobody on this team wrote, started on loopback for the tests.

- sse-starlette: `tests/servers/starlette_app.py`, run with uvicorn in a subprocess.
- sse-channel (npm): the package's example channels, `tests/servers/sse_channel_server.js`.
- nginx with Debian's libnginx-mod-nchan: `tests/servers/nchan.conf.template`, temporary prefix.

Each is a context manager that yields once the server accepts connections and stops it after.
A server this machine cannot run skips its tests with the exact reason; under `CI=true` that is
a failure instead, unless `.ci/run` exported `MCP_SSE_BRIDGE_NO_NCHAN` saying why nchan could
not be installed. `flaky_proxy` is a TCP relay that cuts connections, to drop a real stream.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import anyio
import anyio.abc
import httpx2
import pytest

from .sse_server import serving

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "tests" / "servers"
START_TIMEOUT = 15.0  # seconds; the machine may be busy
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")


class ServerStartError(RuntimeError):
    """A third-party server was installed but did not come up; carries its log."""


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail under CI, where every server must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the third-party servers are required)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _process(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], IO[str]]]:
    """Run a server; stderr goes to a temporary log that start-up errors quote."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True
        )
        try:
            yield proc, log
        finally:
            stop(proc)
            assert proc.stdout is not None
            proc.stdout.close()


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a server: SIGTERM, and SIGKILL when it is still there after 5 s."""
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A loopback port nobody listens on right now, for a server to bind."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether a server accepts connections on the loopback `port` (servers that say nothing
    when they are ready)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _failed(name: str, proc: subprocess.Popen[str], log: IO[str], extra: str = "") -> NoReturn:
    log.seek(0)
    status = "still running" if proc.poll() is None else f"exit code {proc.returncode}"
    output = (log.read() + extra).strip()[-2000:]
    raise ServerStartError(
        f"{name} did not start within {START_TIMEOUT:.0f} s ({status}):\n{output}"
    )


def _first_line(name: str, proc: subprocess.Popen[str], log: IO[str]) -> str:
    """The server's readiness line on stdout, waited for without blocking past the timeout."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if not line:
        _failed(name, proc, log)
    return line.strip()


@contextlib.contextmanager
def starlette_server() -> Iterator[str]:
    """The sse-starlette app; yields its base URL (GET /ticks)."""
    with _process([sys.executable, str(SERVERS / "starlette_app.py")]) as (proc, log):
        line = _first_line("sse-starlette", proc, log)
        yield f"http://127.0.0.1:{line.split()[-1]}"


@contextlib.contextmanager
def sse_channel_server() -> Iterator[str]:
    """sse-channel's example server under node; yields its base URL (/channel/sysInfo)."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (Debian: apt-get install nodejs)")
    if not (ROOT / "node_modules" / "sse-channel" / "package.json").exists():
        unavailable(f"npm package sse-channel is not installed: run `npm ci` in {ROOT}")
    with _process([node, str(SERVERS / "sse_channel_server.js")]) as (proc, log):
        line = _first_line("sse-channel", proc, log)
        yield line.removeprefix("Listening on ").rstrip("/")


@dataclass
class NchanServer:
    """nginx + nchan: subscribe at `{url}/sub/<channel>`, publish with `publish()`."""

    url: str

    async def publish(self, channel: str, data: str, *, event: str | None = None) -> str:
        """POST one message to the channel; returns the id nchan gave it (e.g. "1795264950:3")."""
        headers = {"Accept": "application/json"}
        if event is not None:
            headers["X-EventSource-Event"] = event
        async with httpx2.AsyncClient() as client:
            response = await client.post(f"{self.url}/pub/{channel}", content=data, headers=headers)
        response.raise_for_status()
        return str(response.json()["last_message_id"])


@contextlib.contextmanager
def nchan_server() -> Iterator[NchanServer]:
    """nginx in the foreground with a temporary prefix; retried if its port was taken."""
    if reason := os.environ.get("MCP_SSE_BRIDGE_NO_NCHAN"):
        pytest.skip(f"nchan not installed by .ci/run: {reason}")
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None or not NCHAN_MODULE.exists():
        unavailable(
            "nginx with nchan is not installed (Debian: apt-get install nginx libnginx-mod-nchan)"
        )
    template = string.Template((SERVERS / "nchan.conf.template").read_text())
    with tempfile.TemporaryDirectory(prefix="nchan-") as prefix:
        os.chmod(prefix, 0o755)  # nginx workers run as an unprivileged user when we are root
        error_log = Path(prefix, "error.log")
        for _attempt in range(3):
            port = free_port()
            conf = Path(prefix, "nginx.conf")
            conf.write_text(template.substitute(prefix=prefix, port=port))
            argv = [nginx, "-p", prefix, "-c", str(conf), "-e", str(error_log), "-g", "daemon off;"]
            with _process(argv) as (proc, log):
                deadline = time.monotonic() + START_TIMEOUT
                while proc.poll() is None and time.monotonic() < deadline:
                    if accepts(port):
                        yield NchanServer(f"http://127.0.0.1:{port}")
                        return
                    time.sleep(0.05)  # nginx signals readiness only by accepting
                errors = error_log.read_text() if error_log.exists() else ""
                if "Address already in use" not in errors:
                    _failed("nginx", proc, log, errors)
        raise ServerStartError(f"nginx found no free port; last error log:\n{errors[-2000:]}")


@dataclass
class FlakyProxy:
    """Relays loopback TCP to a server and cuts connection `i` after `cuts[i]` body bytes.

    Body bytes are those after the blank line that ends the HTTP response head (chunk framing
    included), so cuts land inside events the way a failing network drops them; connections
    beyond `len(cuts)` pass everything. Request heads are recorded to check `Last-Event-ID`.
    """

    upstream_port: int
    cuts: Sequence[int] = ()
    port: int = 0
    request_heads: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last_event_ids(self) -> list[str | None]:
        """The Last-Event-ID header of each request, in order (None when absent)."""
        found = (re.search(r"(?im)^last-event-id:[ \t]*(.*?)\r?$", h) for h in self.request_heads)
        return [m.group(1) if m else None for m in found]

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        index = len(self.request_heads)
        self.request_heads.append("")
        budget = self.cuts[index] if index < len(self.cuts) else None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            async with (
                client,
                await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(self._requests, client, upstream, index, tg.cancel_scope)
                await self._responses(upstream, client, budget)
                tg.cancel_scope.cancel()

    async def _requests(
        self,
        client: anyio.abc.SocketStream,
        upstream: anyio.abc.SocketStream,
        index: int,
        scope: anyio.CancelScope,
    ) -> None:
        head = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                data = await client.receive()
                if b"\r\n\r\n" not in head:
                    head += data
                    self.request_heads[index] = head.split(b"\r\n\r\n")[0].decode("latin-1")
                await upstream.send(data)
        scope.cancel()  # the client hung up

    async def _responses(
        self, upstream: anyio.abc.SocketStream, client: anyio.abc.SocketStream, budget: int | None
    ) -> None:
        head = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                data = await upstream.receive()
                if budget is not None:
                    if b"\r\n\r\n" not in head:
                        head += data
                        body = head.partition(b"\r\n\r\n")[2]
                        start = len(data) - len(body)
                    else:
                        start = 0
                    if len(data) - start >= budget:
                        await client.send(data[: start + budget])
                        return
                    budget -= len(data) - start
                await client.send(data)


@contextlib.asynccontextmanager
async def flaky_proxy(url: str, cuts: Sequence[int] = ()) -> AsyncIterator[FlakyProxy]:
    """A FlakyProxy in front of `url` (http://127.0.0.1:PORT) for the duration of the block."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy = FlakyProxy(port, cuts)
    proxy.port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with serving(listener, proxy._relay):
        yield proxy
