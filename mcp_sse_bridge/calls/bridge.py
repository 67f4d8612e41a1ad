"""The library facade: manuals in, bounded batches of live events out.

`Bridge` owns what outlives a call (one HTTP client, the OAuth2 token cache, the tool table) and
runs each call: the arguments are validated into a plan (`arguments.py`), the call template's
variables are substituted, the request is built and checked, then the stream is collected into
a batch (`batch.py`). It never imports the MCP layer; `server/` and `cli/` are thin layers
over it.

Decisions worth knowing:
- Every error leaving `call()` is redacted with the call's secrets (message, hint and body
  excerpt, with the exception chain dropped), and so are the events and errors of a batch.
- The shared HTTP client keeps no cookies: one upstream's cookies never reach another call.
- Each request gets a connection of its own (`transport.StreamTransport`), closed with the
  response: an event stream is rarely left in a state to reuse, and a pool's bookkeeping cost
  as much as the connection. `Limits.max_connections` bounds them all together.
- The bridge-wide secret registry also learns the credentials calls compute (OAuth2 tokens,
  Basic), so the HTTP client's log lines mask them too (`redaction.py`).
"""

from __future__ import annotations

import contextlib
import copy
import http.cookiejar
import logging
import math
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from .. import __version__
from ..errors import ArgumentError, BridgeError
from ..manual import Manual, SseCallTemplate, ToolSpec, tool_names
from ..manual.variables import SecretRegistry, Variables, needs_substitution
from ..upstream.auth import TokenCache, apply_auth
from ..upstream.request import PreparedRequest, build_request
from ..upstream.stream import StreamObserver, StreamOptions, StreamState, open_chunks
from ..upstream.transport import (
    StreamClient,
    StreamTransport,
    environment_proxies,
    proxy_credentials,
    ssl_context,
)
from ..urls import check_url
from .arguments import CallPlan, Limits, argument_validator, control_schema, plan_call
from .batch import Accepted, Batch, OnEvent, OnFold
from .filters import Bounds, EventFilter
from .redaction import HTTP_LOGGERS, RedactingFilter, auth_secrets, known_secrets, redacted

MAX_RETRY_MS = 30000  # backoff cap, unless the manual's retry_timeout is longer
ENDLESS = Bounds(max_events=sys.maxsize, max_seconds=math.inf)  # a subscription's feed


@dataclass(frozen=True)
class BridgeTool:
    manual: Manual
    spec: ToolSpec
    name: str  # the MCP name


class Bridge:
    """Runs tool calls against upstream event streams; use it as an async context manager."""

    def __init__(
        self,
        manuals: list[Manual],
        *,
        variables: Variables,
        limits: Limits = Limits(),
        allow_insecure_http: bool = False,
    ) -> None:
        self.manuals = manuals
        self.variables = variables
        self.limits = limits
        self.allow_insecure_http = allow_insecure_http
        self.tools = {
            name: BridgeTool(manual, spec, name)
            for name, (manual, spec) in tool_names(manuals).items()
        }
        known = [*known_secrets(self.tools.values(), variables), *proxy_credentials()]
        self.secrets = SecretRegistry(known)
        # A template without variables is used as it is: no dump and re-validation per call.
        self._templated = {
            name for name, tool in self.tools.items() if needs_substitution(tool.spec.template)
        }
        self._validators = {
            name: argument_validator(tool.spec.inputs) for name, tool in self.tools.items()
        }
        self._tokens = TokenCache()
        self._ssl_context = ssl_context()
        self._client: httpx2.AsyncClient | None = None
        self._streams: StreamClient | None = None
        self._log_filter = RedactingFilter(self.secrets)

    async def __aenter__(self) -> Bridge:
        no_cookies = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
        limits = httpx2.Limits(
            max_connections=self.limits.max_connections, max_keepalive_connections=100
        )
        direct = StreamTransport(self.limits.max_connections, ssl_context=self._ssl_context)
        proxies = environment_proxies(limits, ssl_context=self._ssl_context)
        self._client = httpx2.AsyncClient(  # for OAuth2 tokens; streams go through `_streams`
            headers={"User-Agent": f"mcp-sse-bridge/{__version__}"},
            cookies=http.cookiejar.CookieJar(policy=no_cookies),
            timeout=httpx2.Timeout(self.limits.connect_timeout),
            transport=direct,
            mounts=proxies,
            follow_redirects=False,
        )
        # Only a proxy route needs `client.send`: NO_PROXY entries alone lead to `direct` anyway.
        routed = any(route is not None for route in proxies.values())
        self._streams = StreamClient(self._client, None if routed else direct)
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for name in HTTP_LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)
        if self._client is not None:
            await self._client.aclose()
            self._client = self._streams = None

    def input_schema(self, name: str) -> dict[str, Any]:
        """The tool's MCP input schema: the manual's inputs plus the control arguments."""
        tool = self._tool(name)
        schema = copy.deepcopy(tool.spec.inputs)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {}).update(
            control_schema(self.limits, tool.spec.template.event_type)
        )
        return schema

    def validate_arguments(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Raise `ArgumentError` naming the argument (path) and the problem, if any."""
        self._plan(self._tool(name), arguments)

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        on_event: OnEvent | None = None,
        on_fold: OnFold | None = None,
        observer: StreamObserver | None = None,
    ) -> Batch:
        """Collect one batch; `on_event(event, count)` is awaited for each accepted event, and
        with `latest_per` or `summary` (which yield none) `on_fold(count)` hears the events
        folded so far, after each chunk.

        An `observer` sees the raw stream as well (`mcp-sse-bridge probe` uses it); what it
        receives is not redacted, so it must keep nothing but what it redacts itself.
        """
        async with self._open(name, arguments, observer=observer) as run:
            return await run.collect(on_event, on_fold)

    async def events(
        self, name: str, arguments: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The accepted events of one call as they arrive, under the same bounds as `call`.

        Unlike `call`, an upstream error after some events is raised: they were delivered.
        `fields` projects each event; `latest_per` and `summary` reduce a whole batch, so they
        are refused here.
        """
        if self._plan(self._tool(name), arguments).shaping.reduces:
            raise ArgumentError(
                "latest_per and summary reduce a whole batch; they do not apply to a stream "
                "of events.",
                hint="Use call() for them, or leave them out.",
            )
        async with (
            self._open(name, arguments) as run,
            contextlib.aclosing(aiter(run)) as accepted,
        ):
            async for item in accepted:
                yield item

    @contextlib.asynccontextmanager
    async def feed(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        watch: Callable[[], None] | None = None,
        max_failures: int | None = None,
    ) -> AsyncIterator[Accepted]:
        """One endless pass for a subscription: the call's validation, filters, reconnects and
        redaction, but no bound at all, and a clean end of the body reconnected like a drop.

        `watch` hears each upstream connection open and close (`pass.state.connected`); after
        `max_failures` consecutive failed reconnects the last error is raised. Errors leaving the
        block are redacted, as `call`'s are.
        """
        options = {"endless": True, "watch": watch, "max_failures": max_failures}
        async with self._open(name, arguments, **options) as run:
            yield run

    @contextlib.asynccontextmanager
    async def _open(
        self, name: str, arguments: Mapping[str, Any], **options: Any
    ) -> AsyncIterator[Accepted]:
        """`_pass` with the call's own copy of the secrets, which redacts every `BridgeError`
        leaving the block (the caller's code in it included)."""
        secrets = self.secrets.copy()
        try:
            async with self._pass(name, arguments, secrets, **options) as run:
                yield run
        except BridgeError as exc:
            raise redacted(exc, secrets) from None

    @contextlib.asynccontextmanager
    async def _pass(
        self,
        name: str,
        arguments: Mapping[str, Any],
        secrets: SecretRegistry,
        *,
        observer: StreamObserver | None = None,
        endless: bool = False,
        watch: Callable[[], None] | None = None,
        max_failures: int | None = None,
    ) -> AsyncIterator[Accepted]:
        """Validate, substitute, build and check the request; open the stream and its pass."""
        if self._client is None or self._streams is None:
            raise RuntimeError("Bridge is not open: use `async with Bridge(...) as bridge:`")
        tool = self._tool(name)
        plan = self._plan(tool, arguments)
        template = tool.spec.template
        if tool.name in self._templated:
            template = self.variables.substitute(tool.manual, template, secrets, tool=tool.spec)
        for value in auth_secrets(template.auth):
            secrets.add(value)
        prepared = build_request(template, plan.arguments)
        check_url(prepared.url, allow_insecure_http=self.allow_insecure_http)
        auth = _Credentials(prepared, template, self._client, self._tokens, (secrets, self.secrets))
        state = StreamState(last_event_id=plan.last_event_id, watch=watch)
        chunks = open_chunks(
            self._streams,
            auth.connect,
            self._stream_options(template, endless, max_failures),
            state,
            refresh_auth=auth.refresh,
            observer=observer,
        )
        async with contextlib.aclosing(chunks):
            yield Accepted(
                chunks,
                state,
                filter=_event_filter(template, plan),
                bounds=ENDLESS if endless else plan.bounds,
                redact=secrets.redact if secrets else None,
                shaping=plan.shaping,
            )

    def _stream_options(
        self, template: SseCallTemplate, endless: bool, max_failures: int | None
    ) -> StreamOptions:
        return StreamOptions(
            reconnect=template.reconnect,
            retry_ms=template.retry_timeout,
            max_retry_ms=max(MAX_RETRY_MS, template.retry_timeout),
            connect_timeout=self.limits.connect_timeout,
            allow_insecure_http=self.allow_insecure_http,
            reconnect_after_end=endless,
            max_failures=max_failures,
        )

    def _tool(self, name: str) -> BridgeTool:
        try:
            return self.tools[name]
        except KeyError:
            known = ", ".join(self.tools) or "none"
            raise ArgumentError(
                f"Unknown tool {name!r}.", hint=f"Available tools: {known}."
            ) from None

    def _plan(self, tool: BridgeTool, arguments: Mapping[str, Any]) -> CallPlan:
        validator = self._validators[tool.name]
        return plan_call(tool.name, tool.spec, validator, self.limits, arguments)


def _event_filter(template: SseCallTemplate, plan: CallPlan) -> EventFilter:
    """The call's filter; a template's `event_type` replaces the call's `event_types`."""
    types = plan.event_types
    if template.event_type is not None:
        types = frozenset({template.event_type})
    return EventFilter(event_types=types, match=plan.match)


class _Credentials:
    """Each attempt's request with its auth applied, and the refresh an OAuth2 401 asks for.

    The credentials computed here (tokens, Basic) join the call's secrets and the bridge-wide
    ones (for the HTTP library's log lines), as no variable holds them.
    """

    def __init__(
        self,
        prepared: PreparedRequest,
        template: SseCallTemplate,
        client: httpx2.AsyncClient,
        tokens: TokenCache,
        registries: tuple[SecretRegistry, ...],
    ) -> None:
        self._prepared = prepared
        self._auth = template.auth
        self._client = client
        self._tokens = tokens
        self._registries = registries
        self._refresh = False

    async def connect(self, last_event_id: str) -> PreparedRequest:
        request = await apply_auth(
            self._prepared,
            self._auth,
            client=self._client,
            tokens=self._tokens,
            force_refresh=self._refresh,
        )
        self._refresh = False
        for header, value in request.headers.items():
            if self._prepared.headers.get(header) != value:
                for registry in self._registries:
                    registry.add(value)
                    registry.add(value.partition(" ")[2])
        return request

    async def refresh(self) -> bool:
        self._refresh = self._auth is not None and self._auth.auth_type == "oauth2"
        return self._refresh
