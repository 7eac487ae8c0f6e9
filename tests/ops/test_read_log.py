"""Reading a room's whole log in pages (livehub.api.read_room_log), on the memory broker."""

from __future__ import annotations

from livehub.api import fold, read_room_log
from livehub.broker.memory import MemoryBroker
from livehub.programme import Session

SESSION = Session(slug="r", title="R", starts=None, ends=None, speakers=(), slow_mode=3)


def msg(i: int) -> dict[str, object]:
    return {"t": "msg", "mid": f"m{i}", "uid": "u", "name": "U", "role": "participant",
            "text": f"post {i}", "ts": 1000 + i}


async def test_pages_add_up_to_the_whole_log() -> None:
    broker = MemoryBroker(max_log=1000)
    for i in range(10):
        await broker.commit("r", [msg(i)])
    history = await read_room_log(broker, "r", page=3)
    assert [ev["seq"] for ev in history.events] == list(range(1, 11))
    assert history.complete and history.head == 10 and history.epoch == broker.epoch
    state = fold(SESSION, history)
    assert state.seq == 10 and len(state.messages) == 10 and state.settings.slow_mode == 3


async def test_a_trimmed_log_is_incomplete_and_an_empty_one_complete() -> None:
    broker = MemoryBroker(max_log=100)
    assert (await read_room_log(broker, "r")).events == []
    assert (await read_room_log(broker, "r")).complete
    for i in range(150):
        await broker.commit("r", [msg(i)])
    history = await read_room_log(broker, "r", page=40)
    assert [ev["seq"] for ev in history.events] == list(range(51, 151))
    assert not history.complete
