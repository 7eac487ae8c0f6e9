"""The Redis Cluster broker: the Redis broker's log, scripts and keys on a cluster.

Selected by ``redis+cluster://HOST:PORT[,HOST:PORT...]`` (any reachable nodes; the
rest are discovered). Everything but the transport is :class:`RedisBroker`'s: the
same scripts, key layout and event encoding. The ``{room}`` hash tag puts all of a
room's keys, and its channel, in one slot, so every script runs on one node.

What differs:

- Commands go through redis-py's cluster client, which follows ``MOVED``/``ASK`` and
  refreshes its slot map after an error. Scripts run by ``EVALSHA`` and fall back to
  ``EVAL`` on ``NOSCRIPT`` (a freshly promoted primary has an empty script cache).
- The commit script publishes with ``SPUBLISH`` (sharded pub/sub), so an event
  travels within its room's shard only, not to every node.
- Subscriptions: one :class:`~livehub.broker.shard.Shard` connection per node that
  owns a subscribed room's slot. A supervisor task places rooms on the node that
  owns their slot (``CLUSTER SLOTS``, re-read every ``topology_interval`` and after
  any error), and moves them when that changes: a failover, a slot migration, a
  node that dropped the channel (``sunsubscribe``) or a connection that died. After
  a move it calls ``on_resync`` so the hub fills the gap from the log; the hub's
  lost-tail check then renews the epoch if the new primary lost acknowledged events.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import random
from typing import Any, Final
from urllib.parse import unquote

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from livehub.broker.base import BrokerUnavailable, Listener
from livehub.broker.redis import RedisBroker
from livehub.broker.shard import Addr, Shard

log = logging.getLogger(__name__)

SCHEME: Final = "redis+cluster://"


def parse_cluster_url(url: str) -> tuple[list[Addr], str | None, str | None]:
    """``redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/]`` ->
    (seed nodes, username, password). Raises ValueError naming what is wrong."""
    if not url.startswith(SCHEME):
        raise ValueError(f"a Redis Cluster URL starts with {SCHEME}")
    rest = url[len(SCHEME):]
    if "?" in rest:
        raise ValueError("a Redis Cluster URL takes no ?options")
    rest = rest.rstrip("/")
    userinfo, _, hosts = rest.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    if "/" in hosts:
        raise ValueError("a Redis Cluster has one database: no /DB in the URL")
    nodes: list[Addr] = []
    for part in hosts.split(","):
        host, sep, port = part.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part.strip() or '(empty)'!r} is not HOST:PORT "
                             f"in the Redis Cluster URL")
        nodes.append((host, int(port)))
    return nodes, username, password


def sharded(script: str) -> str:
    """The script with its ``PUBLISH`` calls as ``SPUBLISH`` (sharded pub/sub)."""
    return script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")


class _ClusterScript:
    """``EVALSHA`` on the keys' node; ``EVAL`` when that node has not cached the script."""

    def __init__(self, client: RedisCluster, text: str) -> None:
        self.client = client
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.client.eval(self.text, len(keys), *keys, *args)


class ClusterBroker(RedisBroker):
    name = "redis-cluster"

    def __init__(self, url: str, *, topology_interval: float = 2.0, pool_size: int = 256,
                 **kwargs: Any) -> None:
        self.seeds, self._username, self._password = parse_cluster_url(url)
        super().__init__(url, pool_size=pool_size, **kwargs)
        self.topology_interval = topology_interval
        self.moves = 0  # rooms resubscribed on another node (metrics, tests)
        self._slots: list[tuple[int, int, Addr]] = []  # (first, last, primary), sorted
        self._map_stale = True
        self._shards: dict[Addr, Shard] = {}
        self._placed: dict[str, Shard] = {}  # room -> the shard its SSUBSCRIBE is on
        self._waiting: dict[str, asyncio.Future[None]] = {}  # first subscribe() calls
        # Ready while the slot map can be read (set by _reconcile): a cluster is "up" per
        # shard, so the single-Redis command probe (RedisBroker.ready) does not decide.
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready and not self._closed

    # --- the command client ---------------------------------------------------

    def _make_client(self) -> RedisCluster:
        opts = self._connection_options()
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self.seeds],
            username=self._username, password=self._password,
            # A shard whose primary is down still leaves the others' rooms working.
            require_full_coverage=False, max_connections=self.pool_size, **opts,
        )

    def _script(self, text: str) -> Any:
        assert isinstance(self._redis, RedisCluster)
        return _ClusterScript(self._redis, sharded(text))

    def _unavailable(self, exc: BaseException | None = None) -> BrokerUnavailable:
        if exc is not None:
            self._map_stale = True  # a failing command may mean a failover
        return super()._unavailable(exc)

    # --- subscriptions ----------------------------------------------------------

    async def subscribe(self, room: str, listener: Listener) -> None:
        """Deliver ``room``; returns once its node confirmed (or after ``command_timeout``:
        then the supervisor keeps trying and calls ``on_resync`` once it is placed)."""
        self._listeners[room] = listener
        if room in self._placed:
            return
        fut = self._waiting.get(room)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._waiting[room] = fut
        self._kick()
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.command_timeout)
        except TimeoutError:
            self.errors += 1
            if self._waiting.get(room) is fut:
                del self._waiting[room]  # placed later, it gets on_resync instead

    async def unsubscribe(self, room: str) -> None:
        if self._listeners.pop(room, None) is not None:
            self._kick()  # the supervisor sends SUNSUBSCRIBE

    def _kick(self) -> None:
        if self._probe is not None:
            self._probe.set()

    def _owner(self, room: str) -> Addr | None:
        slot = key_slot(self._channel(room))
        i = bisect.bisect_right(self._slots, (slot, 1 << 30)) - 1
        if i >= 0 and self._slots[i][0] <= slot <= self._slots[i][1]:
            return self._slots[i][2]
        return None

    def _on_message(self, channel: bytes, data: bytes) -> None:
        self._dispatch(channel, data)

    def _on_lost(self, shard: Shard, channel: bytes | None) -> None:
        """A shard connection died, or its node dropped a channel (slot moved away)."""
        self._map_stale = True
        if channel is not None:
            room = channel[len(self._ch_prefix):-4].decode()
            if self._placed.get(room) is shard:
                del self._placed[room]
        self._kick()

    # --- the supervisor -------------------------------------------------------------

    async def _supervise(self) -> None:
        assert self._probe is not None
        attempt = 0
        try:
            while not self._closed:
                self._probe.clear()
                try:
                    settled = await self._reconcile()
                except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                    settled = False
                    self.errors += 1
                    if attempt == 0:  # once per outage, not once per retry
                        log.warning("redis cluster: %s: %s", type(exc).__name__, exc)
                if settled:
                    attempt = 0
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._probe.wait(), self.topology_interval)
                    if not self._probe.is_set():
                        self._map_stale = True  # periodic: catch moves nobody reported
                    continue
                self._map_stale = True
                delay = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, 16))
                attempt += 1
                await asyncio.sleep(random.uniform(delay / 2, delay))
        finally:
            self._ready = False
            shards, self._shards, self._placed = list(self._shards.values()), {}, {}
            await asyncio.gather(*(s.close() for s in shards), return_exceptions=True)

    async def _read_map(self) -> None:
        """The slot map from the first node that answers ``CLUSTER SLOTS``."""
        client = self._redis
        assert isinstance(client, RedisCluster)
        await asyncio.wait_for(client.initialize(), self.connect_timeout + self.command_timeout)
        nodes = client.get_primaries()
        random.shuffle(nodes)
        nodes += client.get_replicas()
        last: BaseException | None = None
        for node in nodes:
            try:
                raw: Any = await asyncio.wait_for(client.cluster_slots(target_nodes=node),
                                                  self.command_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                last = exc
                continue
            self._slots = sorted(
                (int(first), int(end), (str(v["primary"][0]), int(v["primary"][1])))
                for (first, end), v in raw.items()
            )
            self._map_stale = False
            return
        raise ConnectionError(f"no cluster node answered CLUSTER SLOTS: {last}")

    async def _reconcile(self) -> bool:
        """One pass: every wanted room subscribed on its slot's owner. True when done."""
        if self._map_stale or not self._ready:
            try:
                await self._read_map()
            except BaseException:
                self._ready = False
                raise
            if not self._ready:
                self._ready = True
                assert self._first_ready is not None and self._beat_now is not None
                if self._connected_once:
                    self.reconnects += 1
                    log.info("redis cluster: reachable again")
                self._connected_once = True
                self._first_ready.set()
                self._beat_now.set()
        for addr, shard in list(self._shards.items()):
            if not shard.alive:
                del self._shards[addr]
                await shard.close()
        # Off: rooms nobody wants, and rooms whose shard died or no longer owns the slot.
        for room, shard in list(self._placed.items()):
            wanted = room in self._listeners
            if wanted and shard.alive and self._owner(room) == shard.addr:
                continue
            del self._placed[room]
            if shard.alive:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(shard.sunsubscribe(self._channel(room)),
                                           self.command_timeout)
        groups: dict[Addr, list[str]] = {}
        settled = True
        for room in list(self._listeners):
            if room not in self._placed:
                owner = self._owner(room)
                if owner is None:  # an uncovered slot: read the map again and retry
                    self._map_stale = True
                    settled = False
                    continue
                groups.setdefault(owner, []).append(room)
        resync: list[str] = []
        # Concurrently: a node that does not answer must not hold up the others' rooms.
        outcomes = await asyncio.gather(*(self._place(a, r) for a, r in groups.items()))
        for rooms, placed in zip(groups.values(), outcomes, strict=True):
            settled = settled and len(placed) == len(rooms)
            for room in placed:
                fut = self._waiting.pop(room, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)  # a first subscribe: nothing to fill in yet
                else:
                    resync.append(room)
        in_use = set(map(id, self._placed.values()))
        for addr, shard in list(self._shards.items()):
            if id(shard) not in in_use:
                del self._shards[addr]
                await shard.close()
        if resync:
            self.moves += len(resync)
            log.info("redis cluster: %d rooms resubscribed, filling gaps from the log",
                     len(resync))
        for room in resync:
            listener = self._listeners.get(room)
            if listener is None:
                continue
            try:
                listener.on_resync(room)
            except Exception:
                self.errors += 1
                log.exception("redis cluster: on_resync(%s) failed", room)
        return settled

    async def _place(self, addr: Addr, rooms: list[str]) -> list[str]:
        """SSUBSCRIBE ``rooms`` on ``addr``; the rooms confirmed there."""
        shard = self._shards.get(addr)
        try:
            if shard is None:
                shard = await Shard.open(
                    addr, connect_within=self.connect_timeout + self.command_timeout,
                    on_message=self._on_message, on_lost=self._on_lost,
                    health_interval=self.health_interval, health_timeout=self.health_timeout,
                    username=self._username, password=self._password,
                    client_name=self._subscriber_name(), health_check_interval=0,
                    **self._connection_options(),
                )
                self._shards[addr] = shard
            placed: list[str] = []
            for i in range(0, len(rooms), 1000):
                batch = rooms[i:i + 1000]
                outcomes = await asyncio.wait_for(
                    shard.ssubscribe([self._channel(r) for r in batch]), self.command_timeout,
                )
                for room, error in zip(batch, outcomes, strict=True):
                    if error is None:
                        self._placed[room] = shard
                        placed.append(room)
                    else:  # MOVED: our map is behind the cluster's
                        self._map_stale = True
            return placed
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            self._map_stale = True
            log.warning("redis cluster: cannot subscribe on %s:%d: %s: %s", *addr,
                        type(exc).__name__, exc)
            return [r for r in rooms if r in self._placed]
