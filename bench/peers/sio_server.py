"""Peer: python-socketio (ASGI) under uvicorn, with livehub's uvicorn settings.

Events: ``hello {room, name}`` joins the room and gets ``welcome``; ``post
{text, id}`` emits ``msg`` to the room and is acknowledged (Socket.IO ack). With
``--redis URL`` the server uses ``AsyncRedisManager``, so an emit goes through
Redis pub/sub to every process. Clients connect with the WebSocket transport
only (``/socket.io/?EIO=4&transport=websocket``), so several processes need
no sticky sessions.

    python -m bench.peers.sio_server --port 8200 [--redis redis://127.0.0.1:6379/0 --workers 2]
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import socketio
import uvicorn

from bench.peers.common import reuseport_socket, serve_main


def make_app(redis_url: str | None) -> Any:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager,
                               cors_allowed_origins="*", transports=["websocket"])
    members: dict[str, tuple[str, str, str]] = {}  # sid -> (room, uid, name)

    @sio.on("hello")  # type: ignore[untyped-decorator]
    async def hello(sid: str, data: dict[str, Any]) -> None:
        room, name = str(data["room"]), str(data.get("name") or "guest")
        uid = secrets.token_hex(4)
        members[sid] = (room, uid, name)
        await sio.enter_room(sid, room)
        await sio.emit("welcome", {"t": "welcome", "me": {"uid": uid, "name": name,
                                                          "role": "participant"},
                                   "room": {"id": room}, "history": []}, to=sid)

    @sio.on("post")  # type: ignore[untyped-decorator]
    async def post(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        room, uid, name = members[sid]
        mid = secrets.token_hex(6)
        await sio.emit("msg", {"t": "msg", "mid": mid, "uid": uid, "name": name,
                               "role": "participant", "text": data["text"],
                               "ts": int(time.time() * 1000)}, room=room)
        return {"t": "ok", "id": data.get("id"), "mid": mid}

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, *args: Any) -> None:
        members.pop(sid, None)

    return socketio.ASGIApp(sio)


def _worker(host: str, port: int, redis_url: str | None) -> None:
    config = uvicorn.Config(make_app(redis_url), loop="uvloop", http="httptools",
                            ws="websockets-sansio", ws_per_message_deflate=False,
                            lifespan="off", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[reuseport_socket(host, port)])


def main() -> None:
    serve_main(__doc__, _worker, 8200)


if __name__ == "__main__":
    main()
