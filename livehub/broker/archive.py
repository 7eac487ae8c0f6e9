"""The Redis log's archive: old events moved out of the stream into compressed chunks.

Retention (docs/operations.md, "Retention") keeps the whole record of every session
for its transcript while bounding what Redis holds live: once a session has ended
long enough, its stream's older events are copied into one hash beside the log,
``{ns}:{room}:archive``, and the stream is trimmed to a short tail. Reading is
transparent: :meth:`ArchiveMixin.read_archived` supplies what the stream no longer
holds, so :meth:`RedisBroker.read <livehub.broker.redis.RedisBroker.read>`, and with
it every transcript, record page and replica, sees the same events as before.

Hash fields::

    epoch      the log incarnation the archive belongs to
    first      the first archived seq
    upto       every seq from ``first`` to ``upto`` is archived (0: none yet)
    c:<k>      chunk k: zlib(msgpack [first_seq, [payload, ...]]), seqs k*CHUNK+1 ..
               (k+1)*CHUNK; each payload is the stream's own bytes (an event without seq)

Safe when interrupted: chunks are written and read back first; only then one script
checks the epoch, advances ``upto`` and trims the stream to no further than ``upto``.
A run stopped before that script leaves extra chunks that nothing reads yet and that
the next run writes again; so a run is idempotent, and a second one finds nothing to do.
Only full chunks are archived, so a chunk is never rewritten from a stream that lost
part of it.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Final

import msgspec
from redis.exceptions import RedisError

from livehub.broker.base import Archived, BrokerUnavailable, Event

CHUNK: Final = 1000  # events per chunk: ~2 ms of Redis time to write or read one
READ_CHUNKS: Final = 8  # chunks per HMGET when reading, so no reply is huge

# KEYS: archive, log, epoch   ARGV: epoch, upto, minid
# Returns entries trimmed, or -1 when the log is no longer that epoch (nothing done).
TRIM_LUA: Final = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return -1
end
local upto = tonumber(ARGV[2])
if upto > tonumber(redis.call('HGET', KEYS[1], 'upto') or '0') then
  redis.call('HSET', KEYS[1], 'upto', upto)
end
-- Never past what is archived: the stream and the archive always meet.
local minid = math.min(tonumber(ARGV[3]), tonumber(redis.call('HGET', KEYS[1], 'upto')) + 1)
return redis.call('XTRIM', KEYS[2], 'MINID', minid .. '-0')
"""

# KEYS: lock   ARGV: owner, ttl_ms. 1 when owner holds the lock (taken or extended).
HOLD_LUA: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lock   ARGV: owner. Deletes the lock only if owner still holds it (one step, so
# a lock that expired and was taken by another process meanwhile is left alone).
RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: archive, epoch, archive:<old epoch>   ARGV: epoch, first seq of this run, old epoch
# Starts (or keeps) the archive of this epoch; an archive of a lost epoch is kept aside
# under archive:<its epoch>, for operators, since nothing reads it any more.
BEGIN_LUA: Final = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local had = redis.call('HGET', KEYS[1], 'epoch')
if had and had ~= ARGV[1] then
  if had ~= ARGV[3] then return -1 end
  redis.call('RENAME', KEYS[1], KEYS[3])
  had = false
end
if not had then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'first', ARGV[2], 'upto', 0)
end
return 1
"""


_encode = msgspec.msgpack.Encoder().encode
_chunk_dec = msgspec.msgpack.Decoder(tuple[int, list[msgspec.Raw]])
_event_dec = msgspec.msgpack.Decoder(dict[str, Any])


def _chunk_of(seq: int) -> int:
    return (seq - 1) // CHUNK


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class ArchiveMixin:
    """Archive and trim for :class:`~livehub.broker.redis.RedisBroker` (and the cluster
    broker, which inherits it: every key is under the room's hash tag)."""

    _redis: Any
    command_timeout: float
    namespace: str
    _trim_script: Any = None
    _begin_script: Any = None
    _release_script: Any = None
    _hold_script: Any = None

    def _key(self, room: str, part: str) -> str:
        raise NotImplementedError

    def _unavailable(self, exc: BaseException | None = None) -> BrokerUnavailable:
        raise NotImplementedError

    def _check_ready(self) -> None:
        raise NotImplementedError

    def _register_archive_scripts(self, script: Any) -> None:
        self._trim_script = script(TRIM_LUA)
        self._begin_script = script(BEGIN_LUA)
        self._release_script = script(RELEASE_LUA)
        self._hold_script = script(HOLD_LUA)

    async def _call(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self.command_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    # --- reading ------------------------------------------------------------------

    async def read_archived(self, room: str, epoch: str, after: int, before: int,
                            limit: int | None) -> list[Event] | None:
        """Archived events with ``after < seq < before`` (at most ``limit``), oldest
        first; None when the room has no archive of ``epoch`` reaching past ``after``."""
        key = self._key(room, "archive")
        meta = await self._call(self._redis.hmget(key, "epoch", "first", "upto"))
        if _text(meta[0]) != epoch or meta[2] is None:
            return None
        first, upto = int(meta[1]), int(meta[2])
        lo = max(after + 1, first)
        hi = min(before - 1, upto)
        if limit is not None:
            hi = min(hi, lo + limit - 1)
        if hi < lo:
            return None
        events: list[Event] = []
        chunks = list(range(_chunk_of(lo), _chunk_of(hi) + 1))
        for i in range(0, len(chunks), READ_CHUNKS):
            fields = [f"c:{k}" for k in chunks[i:i + READ_CHUNKS]]
            blobs = await self._call(self._redis.hmget(key, *fields))
            for field, blob in zip(fields, blobs, strict=True):
                if blob is None:  # cannot happen below upto; say so rather than guess
                    raise BrokerUnavailable(f"room {room!r}: archive chunk {field} is missing")
                start, payloads = _chunk_dec.decode(zlib.decompress(blob))
                for j, raw in enumerate(payloads):
                    seq = start + j
                    if lo <= seq <= hi:
                        ev = _event_dec.decode(raw)
                        ev["seq"] = seq
                        events.append(ev)
        return events

    # --- archiving ----------------------------------------------------------------

    async def archive(self, room: str, *, keep: int, dry_run: bool = False) -> Archived | None:
        """Archive ``room``'s full chunks and trim its stream to its last ``keep``
        events (never past what is archived). None: the room has no log."""
        self._check_ready()
        redis = self._redis
        akey, lkey = self._key(room, "archive"), self._key(room, "log")
        epoch_b, head_b = await self._call(redis.mget(self._key(room, "epoch"),
                                                      self._key(room, "seq")))
        oldest = await self._call(redis.xrange(lkey, "-", "+", count=1))
        epoch, head = _text(epoch_b), int(head_b or 0)
        if epoch is None or not oldest:
            return None
        stream_first = int(oldest[0][0].partition(b"-")[0])
        meta = await self._call(redis.hmget(akey, "epoch", "upto"))
        upto = int(meta[1] or 0) if _text(meta[0]) == epoch else 0
        start = max(upto + 1, stream_first)
        end = (head // CHUNK) * CHUNK  # the last seq of the last full chunk
        archived = max(0, end - start + 1)
        new_upto = max(upto, end) if archived else upto
        minid = min(head - keep + 1, new_upto + 1)
        length = await self._call(redis.xlen(lkey))
        trimmed = max(0, min(length, minid - stream_first)) if new_upto else 0
        result = Archived(room, archived, trimmed, length - trimmed, new_upto)
        if dry_run or (not archived and not trimmed):
            return result
        if archived:
            had = _text(meta[0]) or ""
            began = await self._call(self._begin_script(
                keys=[akey, self._key(room, "epoch"), f"{akey}:{had}"],
                args=[epoch, start, had]))
            if int(began) < 0:
                raise BrokerUnavailable(f"room {room!r}: the log was reset while archiving")
            seq = start
            while seq <= end:
                last = min(end, (_chunk_of(seq) + 1) * CHUNK)
                await self._write_chunk(room, seq, last)
                seq = last + 1
        done = await self._call(self._trim_script(
            keys=[akey, lkey, self._key(room, "epoch")], args=[epoch, new_upto, minid]))
        if int(done) < 0:
            raise BrokerUnavailable(f"room {room!r}: the log was reset while archiving")
        return Archived(room, archived, int(done), length - int(done), new_upto)

    async def _write_chunk(self, room: str, first: int, last: int) -> None:
        """Copy stream entries ``first..last`` into their chunk, and read it back."""
        redis = self._redis
        entries = await self._call(redis.xrange(self._key(room, "log"), f"{first}-0",
                                                f"{last}-0", count=last - first + 1))
        seqs = [int(eid.partition(b"-")[0]) for eid, _ in entries]
        if seqs != list(range(first, last + 1)):
            raise BrokerUnavailable(f"room {room!r}: the log lacks events {first}..{last} "
                                    "(trimmed by another setting?): not archived")
        payloads = [msgspec.Raw(fields[b"p"]) for _, fields in entries]
        blob = zlib.compress(_encode((first, payloads)), 6)
        field = f"c:{_chunk_of(first)}"
        akey = self._key(room, "archive")
        await self._call(redis.hset(akey, field, blob))
        if await self._call(redis.hget(akey, field)) != blob:
            raise BrokerUnavailable(f"room {room!r}: archive chunk {field} did not verify")

    # --- one archiver per deployment ----------------------------------------------

    async def hold_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or extend, when ``owner`` holds it) the deployment-wide lock ``name``."""
        got = await self._call(self._hold_script(keys=[f"{self.namespace}:lock:{name}"],
                                                 args=[owner, max(1, int(ttl * 1000))]))
        return bool(int(got))

    async def release_lock(self, name: str, owner: str) -> None:
        await self._call(self._release_script(keys=[f"{self.namespace}:lock:{name}"],
                                              args=[owner]))
