"""Process lifecycle: SIGTERM reaches every client, joined or not yet."""

from __future__ import annotations

import asyncio

from tests.support import Client, LivehubProcess


async def test_sigterm_closes_joined_and_greeting_clients_with_1013() -> None:
    proc = LivehubProcess(env={"LIVEHUB_HELLO_TIMEOUT": "30"}).start()
    try:
        joined = await Client.join(proc.ws_url, "day1-opening", name="Joined")
        greeting = await Client.connect(proc.ws_url, "day1-opening")  # no hello yet
        await asyncio.sleep(0.1)
        code = await asyncio.to_thread(proc.terminate)
        assert code == 0
        assert (await joined.expect_close()).code == 1013
        assert (await greeting.expect_close()).code == 1013
    finally:
        proc.kill()
