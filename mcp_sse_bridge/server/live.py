"""Wires subscriptions into the MCP server: the four tools, the resources, the notifications.

`SubscriptionLayer` is what `build_server` adds when subscriptions are on: tool descriptions,
the lowlevel server's resource and `subscriptions/listen` handlers, and the lifespan that runs
the registry (feeds, expiry), the notifier and the pinned subscriptions (`--subscribe`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio
import anyio.abc
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, SubscriptionBus

from ..calls.bridge import Bridge
from ..errors import BridgeError
from ..subscriptions.registry import Pin, Registry, SubscriptionLimits
from ..subscriptions.store import SubscriptionStore
from .resources import Notifier, ResourceHandlers
from .subscription_tools import NAMES, Result, SubscriptionTools, check_names

logger = logging.getLogger(__name__)
PIN_RETRY_MAX = 60.0  # seconds between two tries of a pinned subscription that does not connect


class SubscriptionLayer:
    """Everything subscriptions add to one MCP server."""

    def __init__(
        self,
        bridge: Bridge,
        limits: SubscriptionLimits,
        *,
        pinned: Sequence[Pin] = (),
        bus: SubscriptionBus | None = None,
        store: SubscriptionStore | None = None,
    ) -> None:
        check_names(bridge)
        self.registry = Registry(bridge, limits=limits, store=store)
        self.names = frozenset(NAMES)
        self._tools = SubscriptionTools(self.registry)
        self.tools = self._tools.tools
        self.bus = bus or InMemorySubscriptionBus()
        self.notifier = Notifier(self.registry, self.bus)
        self.registry.watchers.append(self.notifier)
        self._resources = ResourceHandlers(self.registry, self.notifier)
        self._listen = ListenHandler(self.bus)
        self._pinned = list(pinned)

    def handlers(self) -> dict[str, Any]:
        """The lowlevel `Server`'s keyword arguments for resources and listen streams."""
        return {
            "on_list_resources": self._resources.list_resources,
            "on_list_resource_templates": self._resources.list_templates,
            "on_read_resource": self._resources.read,
            "on_subscribe_resource": self._resources.subscribe,
            "on_unsubscribe_resource": self._resources.unsubscribe,
            "on_subscriptions_listen": self._listen,
        }

    async def call(
        self, ctx: ServerRequestContext[Any], name: str, arguments: Mapping[str, Any]
    ) -> Result:
        self.notifier.seen(ctx)
        return await self._tools.call(name, arguments)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the registry and the notifier for the server's lifespan; pin at start."""
        async with self.registry, anyio.create_task_group() as tg:
            tg.start_soon(self.notifier.run)
            async with anyio.create_task_group() as pins:
                for pin in self._pinned:
                    pins.start_soon(self._pin, pin, tg)
            try:
                yield
            finally:
                self._listen.close()
                tg.cancel_scope.cancel()

    async def _pin(self, pin: Pin, background: anyio.abc.TaskGroup) -> None:
        """Start a pinned subscription before the server serves; one whose upstream fails is
        logged and tried again in the `background` (after 1 s, doubling up to `PIN_RETRY_MAX`
        s) until it connects, while the bridge serves on."""
        if not await self._try_pin(pin, 1.0):
            background.start_soon(self._keep_pinning, pin)

    async def _keep_pinning(self, pin: Pin) -> None:
        delay = 1.0
        while True:
            await anyio.sleep(delay)
            delay = min(delay * 2, PIN_RETRY_MAX)
            if await self._try_pin(pin, delay):
                return

    async def _try_pin(self, pin: Pin, next_try: float) -> bool:
        try:
            await self.registry.subscribe(
                pin.tool,
                pin.arguments,
                event_types=pin.event_types,
                match=pin.match,
                buffer_events=pin.buffer_events,
                pinned=True,
            )
            return True
        except BridgeError as err:
            text = self.registry.bridge.secrets.redact(" ".join(str(err).split()))
            logger.error(
                "pinned subscription to %s failed (next try in %g s): %s", pin.tool, next_try, text
            )
            return False


class NotifyingServer(Server[Bridge]):
    """A lowlevel server with subscriptions: its `layer`, and a handshake that says
    resources/list_changed is sent (the SDK derives it only from the options passed in, and the
    transports pass none)."""

    def __init__(self, *args: Any, layer: SubscriptionLayer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layer = layer

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(resources_changed=True)
        return super().create_initialization_options(options, experimental_capabilities, extensions)
