"""A burst of poll ballots against a fresh ``livehub serve``: how fast they are answered,
how many ``tally`` events a watcher gets for them, and whether the last is exact.

    python -m bench.poll_burst [VOTERS]     (default 200; the sample programme)
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.support import Client, LivehubProcess, token

ROOM = "day1-opening"


async def burst(voters: int) -> str:
    proc = LivehubProcess(env={"LIVEHUB_RATE_LIMIT": "0"}).start()
    clients: list[Client] = []
    try:
        speaker = await Client.join(proc.ws_url, ROOM, token=token("speaker", "S", sub="s"))
        watcher = await Client.join(proc.ws_url, ROOM, watch=True)
        clients += [speaker, watcher]
        pid = (await speaker.request({"t": "poll", "question": "Which?",
                                      "options": ["a", "b", "c"]}))["pid"]
        people = [await Client.join(proc.ws_url, ROOM,
                                    token=token("participant", f"V{i}", sub=f"v{i}"))
                  for i in range(voters)]
        clients += people
        watcher.drain()
        started = time.monotonic()
        answers = await asyncio.gather(*(p.request({"t": "ballot", "pid": pid,
                                                    "choices": [i % 3]})
                                         for i, p in enumerate(people)))
        answered = time.monotonic() - started
        tallies: list[dict[str, object]] = []
        while not tallies or sum(tallies[-1]["counts"]) < voters:  # type: ignore[arg-type]
            ev = await watcher.recv(10)
            if ev["t"] == "tally":
                tallies.append(ev)
        final = time.monotonic() - started
        expected = [len(range(i, voters, 3)) for i in range(3)]
        return (f"{voters} ballots: {sum(a['t'] == 'ok' for a in answers)} ok in "
                f"{answered * 1000:.0f} ms; the watcher got {len(tallies)} tally event(s), "
                f"the last {tallies[-1]['counts']} (exact: {tallies[-1]['counts'] == expected}) "
                f"{final * 1000:.0f} ms after the first ballot")
    finally:
        for c in clients:
            await c.close()
        proc.terminate()


if __name__ == "__main__":
    print(asyncio.run(burst(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
