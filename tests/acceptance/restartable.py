"""An upstream that can be stopped and started again on the same port, like a restarted process.

`tests/sse_server.serve` picks a new port each time; a restart must keep the port, so that the
bridge's reconnects first meet a refusing port and then the new process.
"""

from __future__ import annotations

import anyio
import anyio.abc

from tests.sse_server import Handler, SSEServer


class Restartable:
    """`await task_group.start(upstream.run)` starts (or restarts) it; `await upstream.stop()`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0  # chosen by the first start, kept by the next ones
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: anyio.abc.TaskStatus[SSEServer]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        server = SSEServer(self.handler, port=self.port)
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as self._scope:
                async with listener, anyio.create_task_group() as tg:
                    task_status.started(server)
                    await listener.serve(server._serve_one, tg)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Close the port and drop every open connection, as a dying process does."""
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()
