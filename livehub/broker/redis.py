"""The Redis broker: any number of processes and machines share rooms through one Redis.

Key layout, per room (the ``{room}`` hash tag keeps a room's keys in one Cluster slot,
so the scripts below stay single-slot)::

    {ns}:{room}:epoch        string  names this incarnation of the log
    {ns}:{room}:seq          string  last seq given (INCRBY)
    {ns}:{room}:log          stream  entry id "<seq>-0", field "p" = msgpack event without seq
    {ns}:{room}:idem:<key>   string  "<seq> <epoch> <ref>", EX idem_ttl
    {ns}:{room}:online       hash    process_id -> people this process has in the room
    {ns}:{room}:lim:<key>    zset/string/set  the budgets of livehub.broker.base.Check
    {ns}:{room}:summary      hash    the room's summary (livehub.summary), by the commit script
    {ns}:{room}:archive      hash    events trimmed from the log (livehub.broker.archive)
    {ns}:{room}:ch           pub/sub channel
    {ns}:proc:<process_id>   string  heartbeat, PX heartbeat_ttl

Pub/sub message: one msgpack document per commit, ``[epoch, first_seq, [event, ...]]``.
The script builds it by concatenating the payloads it was given (they are msgpack maps
already), so the server never re-encodes and a receiver decodes the whole batch once.

One dedicated pub/sub connection per process, owned by a supervisor task: it connects,
(re)subscribes, proves liveness with PINGs that need a real reply, and on any failure
reconnects with backoff and asks the listener to resync each room from the log.

Being ``ready`` (``/readyz``, commits accepted) depends only on commands being answered,
which a probe task checks with a PING every ``health_interval`` (and at once after a
failed call): losing the pub/sub connection alone does not refuse commits, since the
resync fills in from the log what was published meanwhile (PROTOCOL.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import secrets
import socket
from collections import deque
from typing import Any, Final

import msgspec
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from livehub import summary
from livehub.broker.archive import ArchiveMixin
from livehub.broker.base import (
    Broker,
    BrokerUnavailable,
    Check,
    Commit,
    Event,
    History,
    Listener,
)

log = logging.getLogger(__name__)

# ARGV: new_epoch, max_log (0 = keep all), idem_ttl, ref, channel, summary, payload...
# KEYS: seq, log, epoch, summary[, idem]
# summary: msgpack [{field: value to set}, {field: amount to add}] (livehub.summary.Delta)
_ENSURE_EPOCH: Final = """
local epoch = redis.call('GET', KEYS[3])
-- No epoch: the log was lost (flush, restart without persistence, eviction) or the room
-- is new. A log without its seq key can only be a half-evicted one. Either way a new
-- incarnation starts, so no old position can be mistaken for one in the new log.
if not epoch or (redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1) then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
  redis.call('DEL', KEYS[1], KEYS[2])
end
"""

# KEYS: seq, log, epoch, idem (a placeholder when has_idem is 0), one key per check, summary
# ARGV: new_epoch, max_log (0 = keep all), idem_ttl, ref, channel, has_idem, nchecks,
#       nchecks x (kind, limit, window_ms, member), summary, payload...
# summary: msgpack [{field: value to set}, {field: amount to add}] (livehub.summary.Delta)
# Returns {seq, epoch} on a commit, {seq, epoch, ref} for a repeated idempotency key,
# {-1, epoch, i, retry_ms} when check i refused (nothing was changed then).
COMMIT_LUA: Final = _ENSURE_EPOCH + """
local has_idem = ARGV[6] == '1'
if has_idem then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local s, e, r = string.match(seen, '^(%d+) (%S+) (.*)$')
    -- A key from a lost epoch points at an event that is gone: commit again.
    if e == epoch then return {tonumber(s), epoch, r} end
  end
end
local nchecks = tonumber(ARGV[7])
local at = 8 + 4 * nchecks
local summary_key, summary_spec = KEYS[#KEYS], ARGV[at]
at = at + 1
local now = 0
if nchecks > 0 then
  -- One clock for every process: the Redis server's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = 1, nchecks do
    local kind, limit = ARGV[4 + 4 * i], tonumber(ARGV[5 + 4 * i])
    local window, member, key = tonumber(ARGV[6 + 4 * i]), ARGV[7 + 4 * i], KEYS[4 + i]
    if kind == 'rate' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
      if redis.call('ZCARD', key) >= limit then return {-1, epoch, i, 0} end
    elseif kind == 'gap' then
      local last = tonumber(redis.call('GET', key) or '')
      if last and now - last < window then return {-1, epoch, i, window - (now - last)} end
    elseif kind == 'cap' then
      if redis.call('SISMEMBER', key, member) == 0 and redis.call('SCARD', key) >= limit then
        return {-1, epoch, i, 0}
      end
    end
  end
end
local n = #ARGV - at + 1
local last
if n > 0 then
  last = redis.call('INCRBY', KEYS[1], n)
  local first = last - n + 1
  for i = 1, n do
    redis.call('XADD', KEYS[2], (first + i - 1) .. '-0', 'p', ARGV[at + i - 1])
  end
  -- The summary describes this epoch's log only: a new log starts a new summary.
  if redis.call('HGET', summary_key, 'epoch') ~= epoch then
    redis.call('DEL', summary_key)
  end
  local spec = cmsgpack.unpack(summary_spec)
  for k, v in pairs(spec[1]) do redis.call('HSET', summary_key, k, v) end
  for k, v in pairs(spec[2]) do redis.call('HINCRBY', summary_key, k, v) end
  redis.call('HSET', summary_key, 'epoch', epoch, 'seq', last)
  local max_log = tonumber(ARGV[2])
  if max_log > 0 then redis.call('XTRIM', KEYS[2], 'MAXLEN', max_log) end
  local hdr
  if n < 16 then
    hdr = string.char(0x90 + n)
  elseif n < 65536 then
    hdr = string.char(0xdc, math.floor(n / 256), n % 256)
  else
    hdr = string.char(0xdd, math.floor(n / 16777216), math.floor(n / 65536) % 256,
                      math.floor(n / 256) % 256, n % 256)
  end
  -- msgpack [epoch, first, [payload...]]: 0x93 = fixarray(3); payloads are maps already.
  redis.call('PUBLISH', ARGV[5],
             '\\147' .. cmsgpack.pack(epoch, first) .. hdr .. table.concat(ARGV, '', at))
else
  last = tonumber(redis.call('GET', KEYS[1]) or '0')
end
for i = 1, nchecks do
  local kind, window, member, key = ARGV[4 + 4 * i], tonumber(ARGV[6 + 4 * i]),
                                    ARGV[7 + 4 * i], KEYS[4 + i]
  if kind == 'rate' then
    redis.call('ZADD', key, now, last .. '')
    redis.call('PEXPIRE', key, window)
  elseif kind == 'gap' then
    redis.call('SET', key, now, 'PX', window)
  elseif kind == 'cap' then
    redis.call('SADD', key, member)
    redis.call('EXPIRE', key, 604800)
  elseif kind == 'uncap' then
    redis.call('SREM', key, member)
  end
end
if has_idem then
  redis.call('SET', KEYS[4], last .. ' ' .. epoch .. ' ' .. ARGV[4], 'EX', ARGV[3])
end
return {last, epoch}
"""

# KEYS: one rate key   ARGV: limit, window_ms. 1 and counted when under the limit, else 0.
TAKE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now, now .. '-' .. redis.call('ZCARD', KEYS[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: seq, log, epoch   ARGV: new_epoch, first seq wanted, count
READ_LUA: Final = _ENSURE_EPOCH + """
local head = redis.call('GET', KEYS[1])
local evs = redis.call('XRANGE', KEYS[2], ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
if not head then return {epoch, -1, evs} end
return {epoch, tonumber(head), evs}
"""

# KEYS: seq, log, epoch, archive   ARGV: new_epoch, the epoch to replace
RENEW_EPOCH_LUA: Final = _ENSURE_EPOCH + """
if epoch == ARGV[2] then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
  -- The log keeps its events, so its archive (same snapshot) goes on with it.
  if redis.call('HGET', KEYS[4], 'epoch') == ARGV[2] then
    redis.call('HSET', KEYS[4], 'epoch', epoch)
  end
end
return epoch
"""

_Frame = tuple[str, int, list[dict[str, Any]]]


def _default_process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class _Deaf(Exception):
    """The pub/sub connection stopped answering."""


class RedisBroker(ArchiveMixin, Broker):
    name = "redis"
    read_page = 1000  # entries per read script call

    def __init__(
        self,
        url: str,
        *,
        max_log: int | None = None,
        process_id: str | None = None,
        namespace: str = "livehub",
        command_timeout: float = 1.5,
        connect_timeout: float = 1.0,
        health_interval: float = 1.0,
        health_timeout: float = 1.0,
        heartbeat_ttl: float = 10.0,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        pool_size: int = 64,
    ) -> None:
        self.url = url
        self.max_log = max_log
        self.process_id = process_id or _default_process_id()
        self.namespace = namespace
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.pool_size = pool_size
        # Metrics hooks, read by the metrics module.
        self.reconnects = 0
        self.errors = 0

        self._redis: Redis | RedisCluster | None = None
        self._sub_pool: ConnectionPool | None = None
        self._commit_script: Any = None
        self._take_script: Any = None
        self._read_script: Any = None
        self._renew_script: Any = None
        self._enc = msgspec.msgpack.Encoder()
        self._frame_dec = msgspec.msgpack.Decoder(_Frame)
        self._event_dec = msgspec.msgpack.Decoder(dict[str, Any])

        self._listeners: dict[str, Listener] = {}
        self._online: dict[str, int] = {}
        self._online_gone: set[str] = set()  # rooms left while Redis could not be told
        self._online_lock = asyncio.Lock()
        self._conn: AbstractConnection | None = None
        # One FIFO per channel: Redis confirms each SUBSCRIBE of a channel in order.
        self._sub_waiters: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._sub_ready = False  # the pub/sub connection is up and subscribed
        self._cmd_ok = False  # commands are answered (the last probe or call said so)
        self._cmd_probe: asyncio.Event | None = None  # set: probe commands now
        self._connected_once = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._first_ready: asyncio.Event | None = None
        self._probe: asyncio.Event | None = None  # set: check the connection now
        self._rx: asyncio.Event | None = None  # set by the reader on every reply
        self._beat_now: asyncio.Event | None = None
        self._last_rx = 0.0
        self._ch_prefix = f"{namespace}:{{".encode()
        self._proc_key = f"{namespace}:proc:{self.process_id}"

    # --- keys -------------------------------------------------------------

    def _key(self, room: str, part: str) -> str:
        return f"{self.namespace}:{{{room}}}:{part}"

    def _channel(self, room: str) -> bytes:
        return f"{self.namespace}:{{{room}}}:ch".encode()

    def _proc(self, process_id: str) -> str:
        return f"{self.namespace}:proc:{process_id}"

    # --- lifecycle --------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._cmd_ok and not self._closed

    @property
    def subscribed(self) -> bool:
        """True while the pub/sub connection is up (events arrive as published)."""
        return self._sub_ready and not self._closed

    async def start(self) -> None:
        """Connect, waiting up to ``connect_timeout`` for Redis; never fails if it is down.

        The broker then keeps retrying in the background and is not ``ready`` meanwhile.
        """
        if self._tasks:
            return
        self._redis = self._make_client()
        self._commit_script = self._script(COMMIT_LUA)
        self._read_script = self._script(READ_LUA)
        self._renew_script = self._script(RENEW_EPOCH_LUA)
        self._take_script = self._script(TAKE_LUA)
        self._register_archive_scripts(self._script)
        self._first_ready = asyncio.Event()
        self._probe = asyncio.Event()
        self._rx = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._cmd_probe = asyncio.Event()
        self._cmd_probe.set()  # first probe at once
        self._tasks = [
            asyncio.create_task(self._supervise(), name="livehub-redis-pubsub"),
            asyncio.create_task(self._heartbeat(), name="livehub-redis-heartbeat"),
            asyncio.create_task(self._probe_commands(), name="livehub-redis-probe"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._first_ready.wait(), self.connect_timeout + self.command_timeout,
            )

    def _connection_options(self) -> dict[str, Any]:
        # No client-side retries: a retried commit could commit twice, and the hub wants
        # a quick `unavailable` rather than a slow success. We bound every call instead.
        return {
            "socket_timeout": self.command_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
        }

    def _subscriber_name(self) -> str:
        return "livehub-sub-" + re.sub(r"[^!-~]", "_", self.process_id)

    def _make_client(self) -> Redis | RedisCluster:
        """The command client (the cluster broker makes a cluster client instead)."""
        common = self._connection_options()
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=self.pool_size, timeout=self.command_timeout, **common,
        )
        # RESP2 so pub/sub messages are plain replies; no redis-py health checks, which
        # would read from the socket behind our reader's back.
        self._sub_pool = ConnectionPool.from_url(
            self.url, health_check_interval=0, client_name=self._subscriber_name(), **common,
        )
        return Redis.from_pool(pool)  # owns the pool: aclose() closes it

    def _script(self, text: str) -> Any:
        """A script callable as ``script(keys=..., args=...)`` on the command client."""
        assert isinstance(self._redis, Redis)
        return self._redis.register_script(text)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        redis = self._redis
        if redis is not None and self._cmd_ok:
            # A clean exit takes our people out of the counts at once, not after the TTL.
            async def forget() -> None:
                pipe = redis.pipeline(transaction=False)
                pipe.delete(self._proc_key)
                for room in {*self._online, *self._online_gone}:
                    pipe.hdel(self._key(room, "online"), self.process_id)
                await pipe.execute()
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(forget(), self.command_timeout)
        self._cmd_ok = self._sub_ready = False
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            # Again until they end: asyncio.wait_for can swallow a cancellation that
            # lands as its inner call finishes (Python 3.11), and the task would go on.
            _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("redis broker: %s failed", task.get_name(),
                          exc_info=task.exception())
        self._tasks = []
        if redis is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await redis.aclose()

    # --- commit and read ----------------------------------------------------

    def _unavailable(self, exc: BaseException | None = None) -> BrokerUnavailable:
        if exc is not None:
            self.errors += 1
            log.warning("redis broker: %s: %s", type(exc).__name__, exc)
            if self._probe is not None:
                self._probe.set()  # a failed call may be the first sign: check now
            if self._cmd_probe is not None:
                self._cmd_probe.set()
        return BrokerUnavailable("redis unreachable" if exc is None else str(exc) or "timeout")

    def _check_ready(self) -> None:
        if not self.ready or self._redis is None:
            # Fail at once while we know Redis is down: never queue clients behind timeouts.
            raise self._unavailable()

    async def commit(
        self, room: str, events: list[Event], *, idem: tuple[str, str] | None = None,
        idem_ttl: int = 600, checks: tuple[Check, ...] = (),
    ) -> Commit:
        self._check_ready()
        enc = self._enc.encode
        # seq is not stored in the payload: the entry id and the message header carry it.
        payloads = [
            enc(ev) if "seq" not in ev else enc({k: v for k, v in ev.items() if k != "seq"})
            for ev in events
        ]
        keys = [self._key(room, "seq"), self._key(room, "log"), self._key(room, "epoch"),
                self._key(room, f"idem:{idem[0]}" if idem is not None else "idem:")]
        keys.extend(self._key(room, f"lim:{c.key}") for c in checks)
        keys.append(self._key(room, "summary"))
        args: list[Any] = [
            secrets.token_hex(8), self.max_log or 0, max(1, int(idem_ttl)),
            idem[1] if idem is not None else "", self._channel(room),
            1 if idem is not None else 0, len(checks),
        ]
        for c in checks:
            args.extend((c.kind, c.limit, c.window_ms, c.member))
        change = summary.delta(events)
        args.append(enc([change.set, change.add]))
        args.extend(payloads)
        try:
            res = await asyncio.wait_for(
                self._commit_script(keys=keys, args=args), self.command_timeout,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            # On a timeout the script may still have run; the client's retry with the
            # same id is answered from the idempotency key.
            raise self._unavailable(exc) from exc
        seq, epoch = int(res[0]), res[1].decode()
        if seq < 0:
            return Commit(seq=0, epoch=epoch, refused=checks[int(res[2]) - 1],
                          retry_ms=int(res[3]))
        if len(res) == 3:
            return Commit(seq=seq, epoch=epoch, ref=res[2].decode(), duplicate=True)
        first = seq - len(events) + 1
        for i, ev in enumerate(events):
            ev["seq"] = first + i
        return Commit(seq=seq, epoch=epoch, ref=idem[1] if idem is not None else None)

    async def take(self, room: str, key: str, limit: int, window_ms: int) -> bool:
        self._check_ready()
        try:
            res = await asyncio.wait_for(
                self._take_script(keys=[self._key(room, f"lim:{key}")],
                                  args=[limit, window_ms]),
                self.command_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return bool(int(res))

    async def recall(self, room: str, key: str) -> Commit | None:
        """The answer stored under an idempotency key, if it belongs to the current log."""
        self._check_ready()
        assert self._redis is not None
        try:
            stored, epoch = await asyncio.wait_for(
                self._redis.mget(self._key(room, f"idem:{key}"), self._key(room, "epoch")),
                self.command_timeout,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        if stored is None or epoch is None:
            return None
        seq, stored_epoch, ref = _text(stored).split(" ", 2)
        if stored_epoch != _text(epoch):
            return None  # a key from a lost log points at nothing
        return Commit(seq=int(seq), epoch=stored_epoch, ref=ref, duplicate=True)

    async def renew_epoch(self, room: str, epoch: str) -> str:
        self._check_ready()
        keys = [self._key(room, "seq"), self._key(room, "log"), self._key(room, "epoch"),
                self._key(room, "archive")]
        try:
            res = await asyncio.wait_for(
                self._renew_script(keys=keys, args=[secrets.token_hex(8), epoch]),
                self.command_timeout,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return _text(res)

    async def read(self, room: str, after: int = 0, limit: int | None = None) -> History:
        """The stream's events, preceded by the archived ones it no longer holds."""
        history = await self._read_stream(room, after, limit)
        if history.complete or limit == 0:
            return history
        before = history.events[0]["seq"] if history.events else history.head + 1
        older = await self.read_archived(room, history.epoch, after, before, limit)
        if older is None:
            return history
        events = (older + history.events)[:limit]
        # Complete when the archive reaches back to after + 1 and meets the stream.
        complete = older[0]["seq"] <= after + 1 and (
            len(events) <= len(older) or older[-1]["seq"] + 1 == before)
        return History(history.epoch, history.head, events, complete)

    async def _read_stream(self, room: str, after: int = 0,
                           limit: int | None = None) -> History:
        """Reads in pages of ``read_page`` entries, so no call blocks Redis for long.

        (All of a 100,000-event log in one script blocks Redis for ~110 ms; a page of
        1,000 for ~2 ms.)
        """
        self._check_ready()
        want = self.read_page if limit is None else min(limit, self.read_page)
        epoch, head, events = await self._read_page(room, after, want)
        if head < 0:  # no log at all: complete only if nothing was asked for
            return History(epoch, 0, events, complete=after == 0)
        # Ids are consecutive and trimming only cuts the front, so the log reaches back
        # to after + 1 exactly when the first entry returned is after + 1.
        complete = events[0]["seq"] <= after + 1 if events else after >= head
        events = events[:limit]
        got = len(events)
        while got == want and (limit is None or len(events) < limit):
            want = self.read_page if limit is None else min(limit - len(events), self.read_page)
            more_epoch, more_head, more = await self._read_page(room, events[-1]["seq"], want)
            if more_epoch != epoch:
                break  # the log was lost meanwhile; the listener hears of the new epoch
            events += more
            head, got = more_head, len(more)
        return History(epoch, head, events, complete)

    async def _read_page(self, room: str, after: int, count: int) -> tuple[str, int, list[Event]]:
        """(epoch, head or -1 when the room has no log, events with seq > after)."""
        keys = [self._key(room, "seq"), self._key(room, "log"), self._key(room, "epoch")]
        # At least one entry even for limit=0: `complete` needs to see where the log starts.
        args = [secrets.token_hex(8), max(0, after) + 1, max(1, count)]
        try:
            res = await asyncio.wait_for(
                self._read_script(keys=keys, args=args), self.command_timeout,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        decode = self._event_dec.decode
        events: list[Event] = []
        for entry_id, fields in res[2]:
            ev = decode(fields[1])
            ev["seq"] = int(entry_id.partition(b"-")[0])
            events.append(ev)
        return res[0].decode(), int(res[1]), events

    async def summaries(self, rooms: list[str]) -> dict[str, dict[str, str]]:
        """Every room's summary hash in one pipelined round trip."""
        self._check_ready()
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(self._key(room, "summary"))
        try:
            tables: list[dict[bytes, bytes]] = await asyncio.wait_for(
                pipe.execute(), self.command_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return {room: {k.decode(): v.decode() for k, v in table.items()}
                for room, table in zip(rooms, tables, strict=True)}

    # --- subscriptions ------------------------------------------------------

    def _check_conn(self, conn: AbstractConnection) -> None:
        if conn is not self._conn or not conn.is_connected:
            # redis-py would silently open a new socket here; that one would be deaf.
            raise ConnectionError("pub/sub connection is down")

    async def _send(self, conn: AbstractConnection, *args: Any) -> None:
        self._check_conn(conn)
        await conn.send_command(*args, check_health=False)

    async def _subscribe_on(self, conn: AbstractConnection, rooms: list[str]) -> None:
        """SUBSCRIBE and wait until Redis confirmed every channel."""
        self._check_conn(conn)
        waiters = self._sub_waiters  # this connection's (the check above makes sure)
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        channels = [self._channel(r) for r in rooms]
        for ch in channels:
            fut: asyncio.Future[None] = loop.create_future()
            waiters.setdefault(ch, deque()).append(fut)
            waits.append(fut)
        try:
            await self._send(conn, "SUBSCRIBE", *channels)
            await asyncio.gather(*waits)
        finally:
            # A cancelled waiter keeps its place in the FIFO: its reply still comes.
            for fut in waits:
                if not fut.done():
                    fut.cancel()

    async def subscribe(self, room: str, listener: Listener) -> None:
        """Deliver ``room`` to ``listener``; returns once Redis confirmed the subscription.

        While Redis is unreachable this only records the listener: the reconnect
        subscribes it and calls ``on_resync``, so nothing committed meanwhile is missed.
        """
        new = room not in self._listeners
        self._listeners[room] = listener
        conn = self._conn
        if not new or conn is None:
            return
        try:
            await asyncio.wait_for(self._subscribe_on(conn, [room]), self.command_timeout)
        except (RedisError, OSError, TimeoutError):
            # The connection is failing; its replacement subscribes and resyncs the room.
            self.errors += 1
            if self._probe is not None:
                self._probe.set()

    async def unsubscribe(self, room: str) -> None:
        if self._listeners.pop(room, None) is None:
            return
        conn = self._conn
        if conn is None:
            return
        # No need to await the confirmation: the reader drops rooms without a listener.
        try:
            await asyncio.wait_for(
                self._send(conn, "UNSUBSCRIBE", self._channel(room)), self.command_timeout,
            )
        except (RedisError, OSError, TimeoutError):
            self.errors += 1
            if self._probe is not None:
                self._probe.set()

    # --- the pub/sub connection ---------------------------------------------

    async def _supervise(self) -> None:
        assert self._sub_pool is not None and self._first_ready is not None
        attempt = 0
        while not self._closed:
            # redis-py leaves these two untyped.
            conn: AbstractConnection = self._sub_pool.make_connection()  # type: ignore[no-untyped-call]
            reader: asyncio.Task[None] | None = None
            try:
                connecting = conn.connect()  # type: ignore[no-untyped-call]
                await asyncio.wait_for(connecting, self.connect_timeout + self.command_timeout)
                loop = asyncio.get_running_loop()
                self._last_rx = loop.time()
                # No await between publishing the connection and the snapshot: a room
                # subscribed from here on is sent on this connection by subscribe().
                self._conn = conn
                self._sub_waiters = {}
                rooms = list(self._listeners)
                reader = asyncio.create_task(
                    self._read_loop(conn, self._sub_waiters), name="livehub-redis-reader",
                )
                for i in range(0, len(rooms), 1000):
                    await asyncio.wait_for(
                        self._subscribe_on(conn, rooms[i:i + 1000]), self.command_timeout,
                    )
                if self._connected_once:
                    self.reconnects += 1
                    log.info("redis broker: pub/sub reconnected, %d rooms", len(rooms))
                self._connected_once = True
                self._sub_ready = self._cmd_ok = True  # it answered: commands work too
                attempt = 0
                self._first_ready.set()
                assert self._beat_now is not None
                self._beat_now.set()
                # Rooms subscribed before this connection may have missed events.
                for room in rooms:
                    listener = self._listeners.get(room)
                    if listener is not None:
                        try:
                            listener.on_resync(room)
                        except Exception:
                            self.errors += 1
                            log.exception("redis broker: on_resync(%s) failed", room)
                await self._watch(conn, reader)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                if attempt == 0:  # once per outage, not once per retry
                    log.warning("redis broker: pub/sub down: %s: %s", type(exc).__name__, exc)
            finally:
                self._sub_ready = False
                if self._cmd_probe is not None:
                    self._cmd_probe.set()  # is it only pub/sub, or Redis? ask now
                if self._conn is conn:
                    self._conn = None
                if reader is not None:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                for waiters in self._sub_waiters.values():
                    for fut in waiters:
                        if not fut.done():
                            fut.set_exception(ConnectionError("pub/sub connection lost"))
                self._sub_waiters = {}
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            if self._closed:
                return
            # Exponential backoff with jitter, so a fleet does not reconnect in lockstep.
            delay = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, 16))
            attempt += 1
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _read_loop(
        self, conn: AbstractConnection, sub_waiters: dict[bytes, deque[asyncio.Future[None]]],
    ) -> None:
        assert self._rx is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await conn.read_response(timeout=math.inf)
            except ResponseError as exc:
                self.errors += 1
                log.warning("redis broker: pub/sub error reply: %s", exc)
                continue
            self._last_rx = loop.time()
            self._rx.set()
            if not isinstance(msg, list) or len(msg) < 3:
                continue  # PONG outside subscribed mode
            kind = msg[0]
            if kind == b"message":
                self._dispatch(msg[1], msg[2])
            elif kind == b"subscribe":
                waiters = sub_waiters.get(msg[1])
                if waiters:
                    fut = waiters.popleft()
                    if not fut.done():
                        fut.set_result(None)
                    if not waiters:
                        del sub_waiters[msg[1]]
            # "pong" and "unsubscribe" only prove the connection is alive.

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        room = channel[len(self._ch_prefix):-4].decode()
        listener = self._listeners.get(room)
        if listener is None:
            return  # unsubscribed while the message was on its way
        try:
            epoch, first, events = self._frame_dec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.errors += 1
            log.warning("redis broker: undecodable message on %r", channel)
            return
        for i, ev in enumerate(events):
            ev["seq"] = first + i
        try:
            listener.on_events(room, epoch, events)
        except Exception:
            self.errors += 1
            log.exception("redis broker: on_events(%s) failed", room)

    async def _watch(self, conn: AbstractConnection, reader: asyncio.Task[None]) -> None:
        """Return or raise when the connection is dead; silence counts as dead.

        A closed socket ends the reader at once. A half-open one (peer gone without a
        FIN, a paused or wedged server) sends nothing, so every ``health_interval``
        without traffic we PING and require some reply within ``health_timeout``.
        """
        assert self._probe is not None and self._rx is not None
        loop = asyncio.get_running_loop()
        while True:
            if await self._wait_any(reader, self._probe, self.health_interval):
                return reader.result()
            probed = self._probe.is_set()
            self._probe.clear()
            if not probed and loop.time() - self._last_rx < self.health_interval:
                continue  # traffic is proof enough
            self._rx.clear()
            await asyncio.wait_for(self._send(conn, "PING"), self.health_timeout)
            if await self._wait_any(reader, self._rx, self.health_timeout):
                return reader.result()
            if not self._rx.is_set():
                raise _Deaf(f"no reply to PING within {self.health_timeout}s")

    @staticmethod
    async def _wait_any(reader: asyncio.Task[None], event: asyncio.Event, within: float) -> bool:
        """Wait for ``event`` or the reader's end, up to ``within`` s; True if the reader ended."""
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({reader, waiter}, timeout=within,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return reader.done()

    # --- online counts ------------------------------------------------------

    def _online_writes(self, pipe: Any, rooms: list[str]) -> None:
        ttl_ms = max(1, int(self.heartbeat_ttl * 1000))
        pipe.set(self._proc_key, b"1", px=ttl_ms)
        for room in rooms:
            key = self._key(room, "online")
            count = self._online.get(room, 0)
            if count:
                pipe.hset(key, self.process_id, count)
                # The hash outlives its processes only briefly when all of them die.
                pipe.pexpire(key, 3 * ttl_ms)
            else:
                pipe.hdel(key, self.process_id)

    async def set_online(self, room: str, count: int) -> None:
        """Record the local count; write it now if Redis is there, else on reconnect."""
        if count:
            self._online[room] = count
            self._online_gone.discard(room)
        else:
            self._online.pop(room, None)
            self._online_gone.add(room)
        if not self.ready or self._redis is None:
            return
        redis = self._redis

        async def write() -> None:
            async with self._online_lock:  # keeps writes in call order
                pipe = redis.pipeline(transaction=False)
                self._online_writes(pipe, [room])
                await pipe.execute()
                if not count:
                    self._online_gone.discard(room)

        try:
            await asyncio.wait_for(write(), self.command_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unavailable(exc)  # the heartbeat writes it again later

    async def online(self, rooms: list[str]) -> dict[str, int]:
        """Sum over live processes; falls back to this process's counts if Redis is down."""
        local = {room: self._online.get(room, 0) for room in rooms}
        if not self.ready or self._redis is None or not rooms:
            return local
        try:
            return await asyncio.wait_for(self._online_sum(rooms, local), self.command_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unavailable(exc)
            return local

    async def _online_sum(self, rooms: list[str], local: dict[str, int]) -> dict[str, int]:
        assert self._redis is not None
        me = self.process_id.encode()
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(self._key(room, "online"))
        tables: list[dict[bytes, bytes]] = await pipe.execute()
        others = sorted({pid for t in tables for pid in t if pid != me})
        alive: set[bytes] = set()
        if others:
            beats = await self._redis.mget([self._proc(p.decode()) for p in others])
            alive = {p for p, b in zip(others, beats, strict=True) if b is not None}
        out = dict(local)  # our own count is known here, fresher than Redis's copy
        dead: dict[str, list[bytes]] = {}
        for room, table in zip(rooms, tables, strict=True):
            for pid, count in table.items():
                if pid == me:
                    continue
                if pid in alive:
                    out[room] += int(count)
                else:
                    dead.setdefault(room, []).append(pid)
        if dead:
            # Heartbeat expired: that process died without cleaning up. Heal lazily.
            pipe = self._redis.pipeline(transaction=False)
            for room, pids in dead.items():
                pipe.hdel(self._key(room, "online"), *pids)
            await pipe.execute()
        return out

    async def _probe_commands(self) -> None:
        """Keep ``ready`` true exactly while Redis answers commands (a PING)."""
        assert self._cmd_probe is not None and self._first_ready is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cmd_probe.wait(), self.health_interval)
            self._cmd_probe.clear()
            if self._redis is None:
                continue
            try:
                await asyncio.wait_for(self._redis.ping(), self.health_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                if self._cmd_ok:
                    log.warning("redis broker: commands unanswered: %s: %s",
                                type(exc).__name__, exc)
                    self.errors += 1
                self._cmd_ok = False
                continue
            if not self._cmd_ok:
                log.info("redis broker: commands answered%s",
                         "" if self._sub_ready else " (pub/sub still reconnecting)")
                assert self._beat_now is not None
                self._beat_now.set()
            self._cmd_ok = True
            if self.ready:  # (a subclass may need more than commands to be ready)
                self._first_ready.set()

    async def _heartbeat(self) -> None:
        """Refresh our heartbeat and rewrite every local count (heals lost or pruned fields)."""
        assert self._beat_now is not None
        period = self.heartbeat_ttl / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), period)
            self._beat_now.clear()
            if not self.ready:
                continue
            try:
                await asyncio.wait_for(self._beat(), self.command_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                self._unavailable(exc)

    async def _beat(self) -> None:
        assert self._redis is not None
        async with self._online_lock:
            gone = set(self._online_gone)
            pipe = self._redis.pipeline(transaction=False)
            self._online_writes(pipe, [*self._online, *gone])
            await pipe.execute()
            self._online_gone -= gone


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
