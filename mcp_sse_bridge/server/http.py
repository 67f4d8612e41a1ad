"""Streamable HTTP: the MCP endpoint at `/mcp`, an optional bearer token, and `/healthz`."""

from __future__ import annotations

import hmac
import json
import socket
from typing import Any

import uvicorn
from mcp.server import Server
from starlette.types import ASGIApp, Receive, Scope, Send

from ..calls.bridge import Bridge
from .live import NotifyingServer, SubscriptionLayer


async def run_http(
    server: Server[Bridge],
    sock: socket.socket,
    *,
    auth_token: str | None,
    stateless: bool = False,
) -> None:
    """Serve streamable HTTP at `/mcp` on a bound socket, in SSE response mode, and
    `GET /healthz` (no auth) for load balancers.

    SSE mode, not `json_response`, because JSON responses drop progress notifications.
    `stateless` is the SDK's stateless mode: no session, so any replica answers any request.
    """
    host = sock.getsockname()[0]
    app: ASGIApp = server.streamable_http_app(host=host, stateless_http=stateless)
    if auth_token:
        app = BearerAuth(app, auth_token)
    layer = server.layer if isinstance(server, NotifyingServer) else None
    app = Health(app, layer)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2)
    await uvicorn.Server(config).serve(sockets=[sock])


class BearerAuth:
    """Refuses HTTP requests without `Authorization: Bearer <token>`.

    The scheme is case-insensitive and may be followed by several spaces (RFC 9110 11.4); the
    token is compared in constant time.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            await _unauthorized(send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.lstrip(b" "), self._token)


async def _unauthorized(send: Send) -> None:
    body = b'{"error": "missing or wrong bearer token: send Authorization: Bearer <token>"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Health:
    """`GET /healthz`: this replica's id, whether its subscription store answers, and how many
    feeds it holds, as JSON (200 when the store answers, else 503). No auth and no secrets,
    so that load balancers and orchestrators can probe it."""

    def __init__(self, app: ASGIApp, layer: SubscriptionLayer | None) -> None:
        self.app = app
        self._layer = layer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/healthz":
            await self.app(scope, receive, send)
            return
        report: dict[str, Any] = {"status": "ok", "subscriptions": self._layer is not None}
        if self._layer is not None:
            report |= await self._layer.registry.health()
            if not report["store_reachable"]:
                report["status"] = "store unreachable"
        body = json.dumps(report).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        status = 200 if report["status"] == "ok" else 503
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
