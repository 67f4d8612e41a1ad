"""The command line's subscriptions: `serve`'s limit flags and `--subscribe`, and `call --follow`.

`--subscribe 'TOOL key=value ...'` words are the tool's arguments as for `call`, except
`event_types`, `match` and `buffer_events`, which are the subscription's own. They are split
like a shell's words, but a JSON list or object value (`event_types=["price"]`) is kept whole,
quotes included (`terminal.split_words`). Every pinned
subscription is checked (tool, arguments) before the server starts: a typo is a usage error,
not a log line nobody reads. `call --follow` subscribes through the same registry and prints
each event as one JSON line on stdout until Ctrl-C (or the feed ends).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio

from ..calls.bridge import Bridge
from ..errors import BridgeError
from ..subscriptions.registry import Pin, Registry, SubscriptionLimits
from ..subscriptions.store import SubscriptionStore
from ..urls import display_url
from .options import BoundFlag, add_bounds, positive
from .terminal import (
    UsageError,
    error_text,
    parse_arguments,
    printable,
    split_words,
    terminal_json,
)

DEFAULTS = SubscriptionLimits()
STORE_PREFIX = "mcp-sse-bridge:"
LEASE_SECONDS = 10.0
PASSWORD_ENV = "MCP_SSE_BRIDGE_REDIS_PASSWORD"
OWN = ("event_types", "match", "buffer_events")  # a --subscribe word that is not the tool's


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("subscriptions")
    group.add_argument(
        "--no-subscriptions",
        action="store_true",
        help="hide the subscribe/read_subscription/list_subscriptions/unsubscribe tools",
    )
    group.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="'TOOL key=value ...'",
        help="start a pinned subscription with the server (repeatable; never expires)",
    )
    add_bounds(group, _SUBSCRIPTION_BOUNDS)
    add_store_options(group)


_SUBSCRIPTION_BOUNDS: tuple[BoundFlag, ...] = (
    (
        "--max-subscriptions",
        int,
        DEFAULTS.max_subscriptions,
        "subscriptions at once (default: %(default)s)",
    ),
    (
        "--subscription-bytes-limit",
        int,
        DEFAULTS.max_bytes,
        "bytes buffered by all subscriptions together (default: %(default)s)",
    ),
    (
        "--subscription-ttl",
        float,
        DEFAULTS.ttl_seconds,
        "end an unpinned subscription unread this long (default: %(default)s)",
    ),
    (
        "--subscription-buffer-limit",
        int,
        DEFAULTS.max_buffer_events,
        "ceiling of a subscription's buffer_events (default: %(default)s)",
    ),
)


def add_store_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--store",
        default="memory",
        metavar="memory|redis://HOST:PORT/DB",
        help="where subscriptions live: this process (default), or a Redis that several "
        f"replicas share (rediss:// for TLS; a password in the URL or {PASSWORD_ENV})",
    )
    group.add_argument(
        "--store-prefix",
        default=STORE_PREFIX,
        metavar="TEXT",
        help="prefix of every Redis key, so deployments can share a Redis (default: %(default)s)",
    )
    group.add_argument(
        "--store-lease-seconds",
        type=positive(float),
        default=LEASE_SECONDS,
        metavar="S",
        help="how long a replica holds a feed unrenewed; a dead replica's feeds move to "
        "another after this (default: %(default)s)",
    )


TLS_FILES = {
    "ssl_ca_certs": "the CA that signed the Redis server's certificate",
    "ssl_certfile": "this client's certificate",
    "ssl_keyfile": "this client's private key",
}
"""The file-naming query parameters of a `rediss://` URL (redis-py's), checked at start-up."""


def store_from(
    args: argparse.Namespace, bridge: Bridge, limits: SubscriptionLimits
) -> SubscriptionStore | None:
    """The `--store` (None: in memory), after checking it answers: a Redis that does not is
    one line at start-up, not a surprise at the first subscribe."""
    url = args.store
    if url == "memory":
        return None
    query = _checked_store_url(url)
    try:
        from ..subscriptions.redis_store import RedisStore
    except ImportError:
        raise UsageError(
            "--store redis:// needs redis-py: pip install 'mcp-sse-bridge[redis]'"
        ) from None
    password = os.environ.get(PASSWORD_ENV) or None
    for secret in (password, urlsplit(url).password, *query.get("password", ())):
        if secret:
            bridge.secrets.add(secret)

    def store() -> RedisStore:
        return RedisStore.from_url(
            url,
            prefix=args.store_prefix,
            password=password,
            max_bytes=limits.max_bytes,
            lease_seconds=args.store_lease_seconds,
        )

    async def check() -> None:
        probe = store()
        try:
            await probe.open()
        finally:
            await probe.close()

    where = f"--store {display_url(url)}"
    try:
        anyio.run(check)
    except TypeError as err:  # redis-py passes URL options on as keyword arguments
        option = re.search(r"argument '(\w+)'", str(err))
        name = option.group(1) if option else "?"
        raise UsageError(f"{where}: redis-py takes no URL option {name!r}; remove it") from None
    except (BridgeError, ValueError) as err:
        text = bridge.secrets.redact(" ".join(getattr(err, "message", str(err)).split()))
        if "NOAUTH" in text or "authenticated" in text or "Authentication required" in text:
            text += f" (this Redis needs a password: in the URL or {PASSWORD_ENV})"
        raise UsageError(
            f"{where}: {text} The bridge needs the store to start: check its address, the "
            f"password (the URL's wins over {PASSWORD_ENV}) and, for rediss://, the TLS options."
        ) from None
    return store()


def _checked_store_url(url: str) -> dict[str, list[str]]:
    """The query of a Redis `--store` URL, after the checks redis-py would skip silently (a
    database that is no number becomes 0) or leave to a confusing error (a missing CA file)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not url.startswith(f"{parts.scheme}://"):
        raise UsageError(
            f"--store takes memory or redis://HOST:PORT/DB (rediss:// for TLS), "
            f"not {display_url(url)!r}"
        )
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdecimal():
        raise UsageError(
            f"--store {display_url(url)}: the database must be a number "
            f"(redis://HOST:PORT/0), not {database!r}"
        )
    query = parse_qs(parts.query)
    for name, values in query.items():
        missing = [v for v in values if name in TLS_FILES and not os.path.isfile(v)]
        if missing:
            raise UsageError(
                f"--store {display_url(url)}: {name}={missing[0]!r} is not a readable file; "
                f"give the path of the PEM file ({TLS_FILES[name]})"
            )
    return query


def limits_from(args: argparse.Namespace) -> SubscriptionLimits | None:
    if args.no_subscriptions:
        if args.subscribe:
            raise UsageError("--subscribe needs the subscription tools: drop --no-subscriptions")
        return None
    return SubscriptionLimits(
        max_subscriptions=args.max_subscriptions,
        max_bytes=args.subscription_bytes_limit,
        ttl_seconds=args.subscription_ttl,
        max_buffer_events=args.subscription_buffer_limit,
    )


def pins_from(args: argparse.Namespace, bridge: Bridge, limits: SubscriptionLimits) -> list[Pin]:
    """The `--subscribe` specs as checked pins."""
    if args.subscribe and len(args.subscribe) > limits.max_subscriptions:
        raise UsageError(
            f"{len(args.subscribe)} --subscribe flags but --max-subscriptions is "
            f"{limits.max_subscriptions}: raise it or pin fewer"
        )
    return [_pin(spec, bridge, limits) for spec in args.subscribe]


def _pin(spec: str, bridge: Bridge, limits: SubscriptionLimits) -> Pin:
    where = f"--subscribe {spec!r}"
    try:
        words = split_words(spec)
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None
    if not words:
        raise UsageError(f"{where}: name a tool, e.g. --subscribe 'ticks symbol=AAPL'")
    tool, pairs = words[0], words[1:]
    if tool not in bridge.tools:
        known = ", ".join(bridge.tools) or "none"
        raise UsageError(f"{where}: unknown tool {tool!r}; the manuals define: {known}")
    arguments = parse_arguments(pairs, bridge.input_schema(tool))
    own = {key: arguments.pop(key) for key in OWN if key in arguments}
    pin = Pin(tool, arguments, own.get("event_types"), own.get("match"), own.get("buffer_events"))
    try:
        Registry(bridge, limits=limits).validate(tool, arguments, pin.event_types, pin.match)
    except BridgeError as err:
        raise UsageError(f"{where}: {error_text(err)}") from None
    return pin


def follow(bridge: Bridge, tool: str, arguments: dict[str, Any]) -> int:
    """Print the tool's feed live, one JSON line per event, until Ctrl-C or its end."""
    blocked = ("max_events", "max_seconds", "until_event", "last_event_id")
    if given := [key for key in blocked if key in arguments]:
        raise UsageError(f"--follow runs until Ctrl-C: drop {', '.join(given)}")
    shaping = ("fields", "latest_per", "summary", "format")
    if given := [key for key in shaping if key in arguments]:
        raise UsageError(
            f"--follow prints every event as it comes: drop {', '.join(given)} "
            "(shaping applies to one call: leave out --follow)"
        )
    own = {key: arguments.pop(key) for key in ("event_types", "match") if key in arguments}
    return anyio.run(_follow, bridge, tool, arguments, own)


async def _follow(bridge: Bridge, tool: str, arguments: dict[str, Any], own: dict[str, Any]) -> int:
    async with bridge, Registry(bridge) as registry:
        subscribed = await registry.subscribe(tool, arguments, **own)
        sub_id, cursor = subscribed.record.id, subscribed.cursor
        while True:
            read = await registry.read(sub_id, cursor=cursor, max_events=1000, wait_seconds=30)
            for event in read.events:
                sys.stdout.write(terminal_json(event, indent=None) + "\n")
            sys.stdout.flush()
            if read.dropped:
                print(f"mcp-sse-bridge: {read.dropped} events dropped", file=sys.stderr)
            if read.state == "ended" and not read.has_more:
                reason = printable(read.reason or "ended")
                print(f"mcp-sse-bridge: the feed ended: {reason}", file=sys.stderr)
                return 1 if reason.startswith("error") else 0
            cursor = read.cursor
