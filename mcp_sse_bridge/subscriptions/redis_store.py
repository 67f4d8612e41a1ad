"""The shared store: subscriptions on Redis Streams, so any replica can read any subscription.

Per subscription, under one key prefix: a hash (`sub:{id}`, the record, every field as JSON) and
a stream (`events:{id}`) whose entry ids are `0-{seq}`, so a cursor's sequence number is the
stream's own position and a read is one `XRANGE`. Beside them: `keys` (dedupe key -> id),
`subs` (every id), `bytes` (buffered bytes of all subscriptions, the deployment-wide limit) and
`lease:{id}` (which replica holds the upstream connection).

Decisions worth knowing:
- Appends are one Lua script that first checks the caller still holds the lease (fencing: a
  replica that lost its lease can never append after the new owner started), then numbers,
  adds and trims. Trimming is exact (`XTRIM MAXLEN =`, counted into `dropped`; the bytes gone
  come from the running total `c` of the oldest entry kept), not `MAXLEN ~`, whose approximate
  trimming removes whole radix-tree nodes at once and would make `dropped` a guess.
- Over the deployment-wide byte limit, the appending subscription gives up its oldest events
  (the memory store picks the largest buffer; here that would mean a scan of every
  subscription inside the script).
- Readers wait on a pub/sub channel (`news`, one message per append or state change), one
  connection per replica, not a blocking `XREAD` per reader.
- Nothing secret reaches Redis: events are redacted before they are buffered, and a record's
  arguments are stored as the caller gave them (variables are resolved at connect time).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
import pydantic_core
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .store import (
    LeaseLost,
    OnNews,
    Page,
    StoredEvent,
    StoreUnavailable,
    SubscriptionRecord,
)

T = TypeVar("T")
COMMAND_TIMEOUT = 5.0  # seconds
NEWS_FALLBACK = 1.0  # a waiting reader re-checks this often, in case a news message was lost
_FIELDS = [field.name for field in dataclasses.fields(SubscriptionRecord)]
_COUNTERS = ("last_seq", "buffered", "dropped", "bytes")  # kept by the scripts, never by `update`

# KEYS: record, events, lease, total bytes, news channel.  ARGV: token, max total bytes, news
# message, count of record fields, field, value ..., then "size,length,size,length..." of the
# events and their payloads laid end to end (two arguments, however many events: packing one
# argument per event cost more than the script itself).
#
# Each entry keeps its size (`s`) and `c`, the bytes appended to the subscription up to and
# including it (the record's `appended`): the bytes the oldest kept entries hold are then
# `appended - (c - s)` of the first of them, one lookup whatever the trim removes. Entries with
# no `c` (written before it existed) are summed one by one instead.
_APPEND = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('FENCED')
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local fields = tonumber(ARGV[4])
local at = 5 + 2 * fields
if fields > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, at - 1)) end
local state = redis.call('HMGET', KEYS[1], 'buffer_events', 'last_seq', 'appended', 'bytes')
local limit = tonumber(state[1])
local seq = tonumber(state[2]) or 0
local appended = tonumber(state[3]) or 0
local bytes = tonumber(state[4]) or 0
local blob = ARGV[at + 1]
local offset = 1
local added = 0
for size, length in string.gmatch(ARGV[at], '(%d+),(%d+)') do
  seq = seq + 1
  added = added + tonumber(size)
  local stop = offset + tonumber(length)
  redis.call('XADD', KEYS[2], '0-' .. seq, 's', size, 'c', appended + added,
             'e', string.sub(blob, offset, stop - 1))
  offset = stop
end
appended = appended + added
bytes = bytes + added
redis.call('INCRBY', KEYS[4], added)
local dropped = 0
local over = redis.call('XLEN', KEYS[2]) - limit
if over > 0 then  -- past buffer_events: the oldest go, counted, in one exact trim
  local first = seq - limit + 1  -- entries are numbered without holes from the oldest kept on
  local kept = redis.call('XRANGE', KEYS[2], '0-' .. first, '0-' .. first)[1][2]
  local gone
  if kept[3] == 'c' then
    gone = bytes - (appended - (tonumber(kept[4]) - tonumber(kept[2])))
  else
    gone = 0
    for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', over)) do
      gone = gone + tonumber(entry[2][2])
    end
  end
  redis.call('XTRIM', KEYS[2], 'MAXLEN', '=', limit)
  dropped = over
  bytes = bytes - gone
  redis.call('DECRBY', KEYS[4], gone)
end
local cap = tonumber(ARGV[2])
while bytes > 0 and tonumber(redis.call('GET', KEYS[4]) or 0) > cap do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if not oldest then break end
  local size = tonumber(oldest[2][2])
  redis.call('XDEL', KEYS[2], oldest[1])
  dropped = dropped + 1
  bytes = bytes - size
  redis.call('DECRBY', KEYS[4], size)
end
redis.call('HSET', KEYS[1], 'last_seq', seq, 'appended', appended, 'bytes', bytes,
           'buffered', redis.call('XLEN', KEYS[2]))
if dropped > 0 then redis.call('HINCRBY', KEYS[1], 'dropped', dropped) end
redis.call('PUBLISH', KEYS[5], ARGV[3])
return seq
"""

# KEYS: keys, subs, record.  ARGV: dedupe key, id, limit ('' for none), then field, value ...
# Returns the id holding the key (a join needs no room), or '' when `limit` subscriptions exist.
_CREATE = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
if ARGV[3] ~= '' and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return '' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], unpack(ARGV, 4))
return ARGV[2]
"""

# KEYS: record, events, keys, subs, total bytes, lease.  ARGV: id
_DELETE = """
local key = redis.call('HGET', KEYS[1], 'key')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or 0)
if key and redis.call('HGET', KEYS[3], cjson.decode(key)) == ARGV[1] then
  redis.call('HDEL', KEYS[3], cjson.decode(key))
end
redis.call('DECRBY', KEYS[5], bytes)
redis.call('SREM', KEYS[4], ARGV[1])
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[6])
"""

# KEYS: record.  ARGV: field, value ...  (a deleted subscription stays deleted)
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], unpack(ARGV))
"""

# KEYS: lease.  ARGV: token, ms.  Renew (or release, ms = 0) only a lease this replica holds.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


class RedisStore:
    """`SubscriptionStore` on Redis Streams; see the module docstring for the layout."""

    shared = True

    def __init__(self, client: Redis, *, prefix: str, max_bytes: int, lease_ms: int) -> None:
        self._redis = client
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.lease_ms = lease_ms
        self.lease_seconds = lease_ms / 1000
        self.replica = secrets.token_hex(6)
        self._tokens: dict[str, str] = {}  # subscription id -> our lease token
        self._waiters: dict[str, anyio.Event] = {}
        self._append = client.register_script(_APPEND)
        self._create = client.register_script(_CREATE)
        self._delete = client.register_script(_DELETE)
        self._renew = client.register_script(_RENEW)
        self._update = client.register_script(_UPDATE)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, password: str | None, max_bytes: int, lease_seconds: float
    ) -> RedisStore:
        """A store on the Redis at `url` (`redis://`, `rediss://`; a password in the URL, or
        `password`); every command gives up after `COMMAND_TIMEOUT` s, so a Redis that stops
        answering is an error, not a hang."""
        client = Redis.from_url(
            url,
            password=password,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
        )
        return cls(client, prefix=prefix, max_bytes=max_bytes, lease_ms=int(lease_seconds * 1000))

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- records ---------------------------------------------------------------------------

    async def create(
        self, record: SubscriptionRecord, *, limit: int | None = None
    ) -> SubscriptionRecord | None:
        keys = [self._key("keys"), self._key("subs"), self._key("sub", record.id)]
        room = "" if limit is None else str(limit)
        winner = _text(
            await self._run(self._create(keys, [record.key, record.id, room, *_pairs(record)]))
        )
        if not winner:  # `limit` subscriptions exist
            return None
        if winner == record.id:
            await self._publish(record.id, "create")
            return record.copy()
        return await self.describe(winner) or record.copy()

    async def describe(self, sub_id: str) -> SubscriptionRecord | None:
        return _decode(await self._run(self._redis.hgetall(self._key("sub", sub_id))))

    async def find(self, key: str) -> SubscriptionRecord | None:
        sub_id = await self._run(self._redis.hget(self._key("keys"), key))
        return None if sub_id is None else await self.describe(_text(sub_id))

    async def update(self, sub_id: str, **changes: Any) -> None:
        fields = [x for k, v in changes.items() if k not in _COUNTERS for x in (k, json.dumps(v))]
        if fields:
            await self._run(self._update([self._key("sub", sub_id)], fields))
        if "state" in changes:
            await self._publish(sub_id)  # a reader waiting on a feed that ended answers at once

    async def delete(self, sub_id: str) -> None:
        keys = [
            self._key("sub", sub_id),
            self._key("events", sub_id),
            self._key("keys"),
            self._key("subs"),
            self._key("bytes"),
            self._key("lease", sub_id),
        ]
        await self._run(self._delete(keys, [sub_id]))
        self._tokens.pop(sub_id, None)
        await self._publish(sub_id, "delete")

    async def count(self) -> int:
        return int(await self._run(self._redis.scard(self._key("subs"))))

    async def list(self) -> list[SubscriptionRecord]:
        ids = sorted(_text(x) for x in await self._run(self._redis.smembers(self._key("subs"))))
        async with self._redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.hgetall(self._key("sub", sub_id))
            raws = await self._run(pipe.execute()) if ids else []
        return [record for raw in raws if (record := _decode(raw)) is not None]

    # -- events ----------------------------------------------------------------------------

    async def append(self, sub_id: str, events: list[StoredEvent], **changes: Any) -> int:
        """One script: fenced by our lease, numbered, trimmed, the record's `changes` set and
        the news published, so a batch costs one round trip."""
        fields = [x for k, v in changes.items() if k not in _COUNTERS for x in (k, json.dumps(v))]
        news = f"append {self.replica} {sub_id}"
        args: list[Any] = [self._tokens.get(sub_id, ""), self.max_bytes, news, len(fields) // 2]
        payloads = [_event_payload(event) for event in events]
        layout = b"".join(
            b"%d,%d," % (e.size, len(p)) for e, p in zip(events, payloads, strict=True)
        )
        args += [*fields, layout, b"".join(payloads)]
        keys = [
            self._key("sub", sub_id),
            self._key("events", sub_id),
            self._key("lease", sub_id),
            self._key("bytes"),
            self._key("news"),
        ]
        try:
            seq = int(await self._append(keys, args))
        except ResponseError as exc:
            if "FENCED" in str(exc):
                self._tokens.pop(sub_id, None)
                raise LeaseLost(
                    f"Subscription {sub_id} is fed by another replica now (this lease expired).",
                    hint="Nothing to do: the other replica carries on from the stored cursor.",
                ) from None
            raise _unavailable(exc) from None
        except RedisError as exc:
            raise _unavailable(exc) from None
        for i, event in enumerate(events):
            event.seq = seq - len(events) + 1 + i
        self._wake(sub_id)
        return seq

    async def read(self, sub_id: str, after_seq: int, limit: int) -> Page:
        name = self._key("events", sub_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._key("sub", sub_id), "last_seq")
            pipe.xrange(name, "-", "+", count=1)
            pipe.xrange(name, f"(0-{max(after_seq, 0)}", "+", count=limit + 1)
            last, first, entries = await self._run(pipe.execute())
        if last is None:
            return Page([], 0, False)
        last = int(last)
        first_seq = _seq(first[0][0]) if first else last + 1
        after = min(after_seq, last)  # a cursor from the future reads from the end
        if after < after_seq:
            entries = []
        events = [_stored(entry) for entry in entries[:limit]]
        return Page(events, max(0, first_seq - after - 1), len(entries) > limit)

    async def newest(self, sub_id: str, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        entries = await self._run(self._redis.xrevrange(self._key("events", sub_id), count=limit))
        return [_stored(entry) for entry in reversed(entries)]

    async def wait_for_new(self, sub_id: str, after_seq: int, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while True:
                changed = self._waiters.setdefault(sub_id, anyio.Event())  # before the check
                record = await self.describe(sub_id)
                if record is None or record.last_seq > after_seq or record.state == "ended":
                    break
                with anyio.move_on_after(NEWS_FALLBACK):
                    await changed.wait()
        record = await self.describe(sub_id)
        return record is not None and record.last_seq > after_seq

    # -- ownership: one replica holds each upstream connection ---------------------------------

    async def claim(self, sub_id: str) -> bool:
        """Take the lease on `sub_id` if nobody holds it; True if this replica now feeds it."""
        token = f"{self.replica}:{secrets.token_hex(4)}"
        won = await self._run(
            self._redis.set(self._key("lease", sub_id), token, nx=True, px=self.lease_ms)
        )
        if won:
            self._tokens[sub_id] = token
        return bool(won)

    async def renew(self, sub_id: str) -> bool:
        """Extend our lease; False (and forget it) when it expired or another replica holds it."""
        token = self._tokens.get(sub_id)
        if token is None:
            return False
        if await self._run(self._renew([self._key("lease", sub_id)], [token, self.lease_ms])):
            return True
        self._tokens.pop(sub_id, None)
        return False

    async def release(self, sub_id: str) -> None:
        token = self._tokens.pop(sub_id, None)
        if token is not None:
            await self._run(self._renew([self._key("lease", sub_id)], [token, 0]))

    async def unowned(self) -> list[str]:
        """Subscriptions whose feed nobody holds (its owner died or lost Redis)."""
        records = [record for record in await self.list() if record.state != "ended"]
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.exists(self._key("lease", record.id))
            held = await self._run(pipe.execute()) if records else []
        return [r.id for r, h in zip(records, held, strict=True) if not h]

    # -- news across replicas ----------------------------------------------------------------

    async def listen(self, on_news: OnNews) -> None:
        """Wake local readers on news from any replica and tell `on_news` what other replicas
        did (run as a task; it reconnects by itself when Redis comes back)."""
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._key("news"))
                    while True:
                        message = await pubsub.get_message(timeout=NEWS_FALLBACK)
                        if message is None:
                            continue
                        kind, replica, sub_id = _text(message["data"]).split(" ", 2)
                        self._wake(sub_id)
                        if replica != self.replica:
                            on_news(kind, sub_id)
            except RedisError:
                await anyio.sleep(0.5)

    def _wake(self, sub_id: str) -> None:
        changed = self._waiters.pop(sub_id, None)
        if changed is not None:
            changed.set()

    async def _publish(self, sub_id: str, kind: str = "append") -> None:
        self._wake(sub_id)
        await self._run(self._redis.publish(self._key("news"), f"{kind} {self.replica} {sub_id}"))

    async def open(self) -> None:
        await self._run(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except RedisError as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> StoreUnavailable:
    """The error of a Redis that did not answer; redis-py's words name the address, never the
    password."""
    words = " ".join(str(exc).split())[:200] or type(exc).__name__
    return StoreUnavailable(
        f"The subscription store (Redis) failed: {words.rstrip('.')}.",
        hint="Check that Redis is up and reachable at --store; plain tool calls keep working, "
        "and subscriptions recover by themselves when Redis is back.",
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(record: SubscriptionRecord) -> list[str]:
    return [x for name in _FIELDS for x in (name, json.dumps(getattr(record, name)))]


def _decode(raw: dict[bytes, bytes]) -> SubscriptionRecord | None:
    if not raw:
        return None
    values = {_text(k): json.loads(v) for k, v in raw.items() if _text(k) in _FIELDS}
    return SubscriptionRecord(**values)


def _event_payload(event: StoredEvent) -> bytes:
    return pydantic_core.to_json([event.event, event.id, event.data, event.received_at, event.gap])


def _seq(entry_id: bytes) -> int:
    return int(_text(entry_id).partition("-")[2])


def _stored(entry: tuple[bytes, dict[bytes, bytes]]) -> StoredEvent:
    entry_id, fields = entry
    event, id_, data, received_at, gap = json.loads(fields[b"e"])
    return StoredEvent(event, id_, data, received_at, int(fields[b"s"]), gap, _seq(entry_id))
