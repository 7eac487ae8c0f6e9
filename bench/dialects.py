"""How the load generator speaks to each server: livehub's protocol, or Socket.IO.

livehub and the plain ``websockets`` peer speak livehub's protocol subset
(``hello`` -> ``welcome``, ``post`` -> ``ok`` + ``msg``), msgpack by default.
python-socketio speaks Engine.IO 4 / Socket.IO 5 over a WebSocket-only
transport: the harness adapts to it (``40`` connect, ``42["hello", ...]``,
``42<ack>["post", ...]`` answered by ``43<ack>[...]``, ``42["msg", ...]``).

Every message text carries ``~<nonce>~<n>~<send time ns>~``: the listener finds
these markers with one regex over the raw frame, whatever the codec and however
many events the server coalesced into the frame.
"""

from __future__ import annotations

import json
from typing import Final

import msgspec

_mp = msgspec.msgpack.Encoder()
_js = msgspec.json.Encoder()

OP_TEXT: Final = 1
OP_BINARY: Final = 2


class Dialect:
    name = "abstract"
    subprotocols: list[str] = []
    opcode = OP_BINARY

    def path(self, room: str) -> str:
        raise NotImplementedError

    def opening(self) -> list[bytes]:
        """Frames to send as soon as the socket is open, before ``hello``."""
        return []

    def hello(self, room: str, name: str) -> bytes:
        raise NotImplementedError

    def is_welcome(self, payload: bytes) -> bool:
        raise NotImplementedError

    def is_refusal(self, payload: bytes) -> bool:
        raise NotImplementedError

    def post(self, text: str, rid: str) -> bytes:
        raise NotImplementedError

    def count_acks(self, payload: bytes) -> tuple[int, int]:
        """(ok answers, error answers) in one frame."""
        raise NotImplementedError

    def keepalive(self, payload: bytes) -> bytes | None:
        """An application-level pong to send back, if ``payload`` is a ping."""
        return None


class LivehubMsgpack(Dialect):
    name = "livehub-msgpack"
    subprotocols = ["livehub.v1.msgpack"]
    opcode = OP_BINARY
    _welcome = b"\xa1t\xa7welcome"
    _ok = b"\xa1t\xa2ok"
    _error = b"\xa1t\xa5error"

    def path(self, room: str) -> str:
        return f"/ws/{room}"

    def hello(self, room: str, name: str) -> bytes:
        return _mp.encode({"t": "hello", "name": name})

    def is_welcome(self, payload: bytes) -> bool:
        return self._welcome in payload

    def is_refusal(self, payload: bytes) -> bool:
        return self._error in payload

    def post(self, text: str, rid: str) -> bytes:
        return _mp.encode({"t": "post", "text": text, "id": rid})

    def count_acks(self, payload: bytes) -> tuple[int, int]:
        return payload.count(self._ok), payload.count(self._error)


class LivehubJSON(LivehubMsgpack):
    name = "livehub-json"
    subprotocols = ["livehub.v1.json"]
    opcode = OP_TEXT
    _welcome = b'"t":"welcome"'
    _ok = b'"t":"ok"'
    _error = b'"t":"error"'

    def hello(self, room: str, name: str) -> bytes:
        return _js.encode({"t": "hello", "name": name})

    def post(self, text: str, rid: str) -> bytes:
        return _js.encode({"t": "post", "text": text, "id": rid})


class SocketIO(Dialect):
    """Engine.IO 4 over WebSocket only (no long-polling, so no sticky sessions needed)."""

    name = "socketio"
    subprotocols = []
    opcode = OP_TEXT

    def __init__(self) -> None:
        self._ack = 0

    def path(self, room: str) -> str:
        return "/socket.io/?EIO=4&transport=websocket"

    def opening(self) -> list[bytes]:
        return [b"40"]  # connect to the default namespace

    def hello(self, room: str, name: str) -> bytes:
        return b'42["hello",' + json.dumps({"room": room, "name": name}).encode() + b"]"

    def is_welcome(self, payload: bytes) -> bool:
        return payload.startswith(b'42["welcome"')

    def is_refusal(self, payload: bytes) -> bool:
        return payload.startswith(b"44")  # connect_error

    def post(self, text: str, rid: str) -> bytes:
        self._ack += 1
        return (b"42" + str(self._ack).encode() + b'["post",'
                + _js.encode({"text": text, "id": rid}) + b"]")

    def count_acks(self, payload: bytes) -> tuple[int, int]:
        return (1, 0) if payload.startswith(b"43") else (0, 0)

    def keepalive(self, payload: bytes) -> bytes | None:
        return b"3" if payload == b"2" else None


DIALECTS: Final[dict[str, type[Dialect]]] = {
    "livehub-msgpack": LivehubMsgpack,
    "livehub-json": LivehubJSON,
    "socketio": SocketIO,
}
