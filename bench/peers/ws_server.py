"""Peer: a plain ``websockets`` server, the ceiling for fan-out in Python.

It speaks livehub's protocol subset in msgpack (subprotocol
``livehub.v1.msgpack``): ``hello`` -> ``welcome``; ``post`` -> one ``msg``
event encoded once and sent to the room with ``websockets.broadcast()``, then
``ok``. It keeps no log, no sequence across processes, no roles, no history.

With ``--redis URL`` each post is PUBLISHed (the encoded frame as is) to the
room's channel and every process, this one included, broadcasts what its one
pattern subscription receives: a plain relay through Redis pub/sub.

    python -m bench.peers.ws_server --port 8100 [--redis redis://127.0.0.1:6379/0 --workers 2]
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.peers.common import reuseport_socket, serve_main

CHANNEL = "bench:ws:"
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


class Relay:
    def __init__(self, redis_url: str | None) -> None:
        self.rooms: dict[str, set[ServerConnection]] = {}
        self.seq: dict[str, int] = {}
        self.redis_url = redis_url
        self.redis: Any = None

    async def start(self) -> None:
        if self.redis_url is None:
            return
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(self.redis_url)
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(CHANNEL + "*")
        asyncio.get_running_loop().create_task(self._listen(pubsub))

    async def _listen(self, pubsub: Any) -> None:
        skip = len(CHANNEL)
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None or msg["type"] != "pmessage":
                continue
            conns = self.rooms.get(msg["channel"][skip:].decode())
            if conns:
                broadcast(conns, msg["data"])

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        room = ws.request.path.rsplit("/", 1)[-1]
        try:
            hello = _dec.decode(await asyncio.wait_for(ws.recv(), 10))
        except (TimeoutError, msgspec.DecodeError):
            await ws.close(1008)
            return
        if not isinstance(hello, dict) or hello.get("t") != "hello":
            await ws.close(1008)
            return
        uid = secrets.token_hex(4)
        name = str(hello.get("name") or "guest")
        conns = self.rooms.setdefault(room, set())
        conns.add(ws)
        try:
            await ws.send(_enc.encode({
                "t": "welcome", "me": {"uid": uid, "name": name, "role": "participant"},
                "room": {"id": room}, "seq": self.seq.get(room, 0), "online": len(conns),
                "history": [], "pinned": [], "questions": []}))
            async for data in ws:
                req = _dec.decode(data)
                if not isinstance(req, dict) or req.get("t") != "post":
                    continue
                seq = self.seq[room] = self.seq.get(room, 0) + 1
                mid = secrets.token_hex(6)
                frame = _enc.encode({"t": "msg", "mid": mid, "uid": uid, "name": name,
                                     "role": "participant", "text": req.get("text", ""),
                                     "ts": int(time.time() * 1000), "seq": seq})
                if self.redis is not None:
                    await self.redis.publish(CHANNEL + room, frame)
                else:
                    broadcast(conns, frame)
                await ws.send(_enc.encode({"t": "ok", "id": req.get("id"), "mid": mid,
                                           "seq": seq}))
        except Exception:
            pass
        finally:
            conns.discard(ws)


async def _main(host: str, port: int, redis_url: str | None) -> None:
    relay = Relay(redis_url)
    await relay.start()
    sock = reuseport_socket(host, port)
    async with serve(relay.handler, sock=sock, compression=None,
                     subprotocols=["livehub.v1.msgpack"], max_size=65536) as server:  # type: ignore[list-item]
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        import signal

        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
        await stop
        server.close()


def _worker(host: str, port: int, redis_url: str | None) -> None:
    import uvloop

    uvloop.run(_main(host, port, redis_url))


def main() -> None:
    serve_main(__doc__, _worker, 8100)


if __name__ == "__main__":
    main()
