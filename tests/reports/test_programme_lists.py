"""Watched-word lists in the programme: `livehub check`, serving, reloading, secrecy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, Client, LivehubProcess, token

pytestmark = pytest.mark.timeout(60)

GOOD = '''[conference]
title = "Lists"

[watched_words]
block = ["klonkwit", "grimbo*"]
hold = ["gumphery", "vile lies"]

[[session]]
slug = "day3-qa"
title = "QA"
watched_words = { block = ["parsnipgate"], hold = [] }
'''

BAD = '''[conference]
title = "Lists"

[watched_words]
block = ["ok", "a*b", ""]
hold = "gumphery"
flag = ["x"]

[[session]]
slug = "day3-qa"
title = "QA"
watched_words = { block = [7, "!!!"], hold = ["x" ]}
'''


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livehub", "check", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=30)


def test_check_accepts_good_lists_and_names_each_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert check(good).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    out = check(bad)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if str(bad) in ln]
    conference = [ln for ln in lines if "[watched_words]" in ln]
    session = [ln for ln in lines if 'session "day3-qa"' in ln]
    assert any('"watched_words.block"' in ln and "item 2" in ln for ln in conference), lines
    assert any('"watched_words.block"' in ln and "item 3" in ln for ln in conference), lines
    assert any('"watched_words.hold"' in ln for ln in conference), lines
    assert any('"watched_words.flag"' in ln for ln in conference), lines
    assert any('"watched_words.block"' in ln and "item 1" in ln for ln in session), lines
    assert any('"watched_words.block"' in ln and "item 2" in ln for ln in session), lines
    assert "Traceback" not in out.stderr


async def test_lists_are_picked_up_on_reload_and_never_sent(tmp_path: Path) -> None:
    programme = tmp_path / "programme.toml"
    programme.write_text(GOOD)
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(programme),
                               "LIVEHUB_RATE_LIMIT": "0"}).start()
    try:
        me = await Client.join(proc.ws_url, "day3-qa", token=token("participant", sub="p"))
        assert (await me.request({"t": "post", "text": "parsnipgate"}))["code"] == "blocked"
        assert (await me.request({"t": "post", "text": "turnipgate"}))["t"] == "ok"
        for word in ("klonkwit", "gumphery", "parsnipgate", "grimbo"):
            assert word not in str(me.welcome)
        async with httpx.AsyncClient(base_url=proc.url, timeout=5) as http:
            for path in ("/api/rooms", "/", "/room/day3-qa"):
                body = (await http.get(path)).text
                assert "klonkwit" not in body and "parsnipgate" not in body, path
            announce = await http.post("/api/rooms/day3-qa/announce", json={"text": "KLONKWIT"},
                                       headers={"Authorization":
                                                f"Bearer {token('moderator', sub='org')}"})
            assert announce.status_code == 422 and announce.json()["error"] == "blocked"
            assert "klonkwit" not in announce.text.lower()
            programme.write_text(GOOD.replace('hold = []', 'hold = ["turnipgate"]'))
            reload = await http.post("/api/programme/reload", headers={
                "Authorization": f"Bearer {token('moderator', sub='org')}"})
            assert reload.status_code == 200, reload.text
        held = await me.request({"t": "post", "text": "turnipgate again"})
        assert held["t"] == "ok" and held["held"] is True
        await me.close()
    finally:
        proc.terminate()
