"""The engine through two real processes on Redis: a logged event that does not fit its
type (livehub.events) stops no room, and the one request path answers a retried
announcement through another process with the first answer."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from livehub.broker.redis import RedisBroker
from tests.cluster.conftest import Cluster
from tests.support import Client, token

ANNOUNCE = "/api/rooms/{room}/announce"


async def test_a_malformed_logged_event_takes_its_seq_and_the_room_goes_on(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    a, b = cluster.procs
    first = await Client.join(a.ws_url, room, token=token("participant", "Ann", sub="ann"))
    await first.send({"t": "post", "id": "1", "text": "before"})
    await first.recv_until(lambda ev: ev.get("t") == "ok")
    # Another writer (a newer or broken server) logs a `mute` without `uid` or `until`,
    # and an event of a type this server does not know.
    broker = RedisBroker(cluster.redis_url, namespace=cluster.namespace)
    await broker.start()
    try:
        await broker.commit(room, [{"t": "mute", "ts": 1}, {"t": "hologram", "ts": 2}])
    finally:
        await broker.close()
    # A process that loads the room from its log now, and one that had it live.
    late = await Client.join(b.ws_url, room, token=token("participant", "Bo", sub="bo"))
    assert late.welcome["seq"] == 3
    assert [m["text"] for m in late.welcome["history"]] == ["before"]
    await late.send({"t": "post", "id": "2", "text": "after"})
    got = [await late.recv(), await late.recv()]
    assert sorted((ev["t"], ev["seq"]) for ev in got) == [("msg", 4), ("ok", 4)]
    # The live process sent nothing of the malformed `mute` (the unknown type goes out
    # as it is: clients ignore types they do not know), then the post.
    seen = [await first.recv()]
    while seen[-1].get("text") != "after":
        seen.append(await first.recv())
    assert [(ev["t"], ev["seq"]) for ev in seen if "seq" in ev and ev["t"] != "ok"] == [
        ("hologram", 3), ("msg", 4)]
    # Nobody was muted by the broken event: Ann still posts.
    await first.send({"t": "post", "id": "3", "text": "still here"})
    assert (await first.recv_until(lambda ev: ev.get("t") in ("ok", "error")))["t"] == "ok"
    resumed = await Client.join(b.ws_url, room, token=token("participant", "Cy", sub="cy"),
                                since=1, epoch=late.welcome["epoch"])
    assert resumed.welcome["recovered"] is True
    # Operators are told, by each process that applied it.
    assert all("does not fit its type" in proc.log_text() for proc in (a, b)), cluster.logs()
    # The replay leaves the malformed `mute` (seq 2) out, as the live stream did.
    assert [ev["seq"] for ev in resumed.welcome["history"]] == [3, 4, 5]
    for client in (first, late, resumed):
        await client.ws.close()


async def test_an_announcement_retried_through_another_process_is_answered_once(
        cluster: Cluster, fresh_room: Callable[[], str]) -> None:
    room = fresh_room()
    a, b = cluster.procs
    headers = {"Authorization": f"Bearer {token('moderator', 'Chair', sub='chair')}",
               "Idempotency-Key": "agenda-item-4"}
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.post(a.url + ANNOUNCE.format(room=room), headers=headers,
                                json={"text": "We resume at 3"})
        again = await http.post(b.url + ANNOUNCE.format(room=room), headers=headers,
                                json={"text": "We resume at 3"})
        same = await http.post(a.url + ANNOUNCE.format(room=room), headers=headers,
                               json={"text": "We resume at 3"})
    assert first.status_code == 201, first.text
    assert again.status_code == 200 and same.status_code == 200
    body = first.json()
    for repeat in (again.json(), same.json()):
        assert repeat == {**body, "duplicate": True}
    watcher = await Client.join(b.ws_url, room, token=token("participant", "Di", sub="di"))
    announced = [m for m in watcher.welcome["history"] if m.get("announcement")]
    assert [m["mid"] for m in announced] == [body["mid"]]
    await watcher.ws.close()
