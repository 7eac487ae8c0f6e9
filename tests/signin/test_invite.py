"""``livehub invite``: personal links from a CSV, run as the real command."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.signin.conftest import PROGRAMME
from tests.signin.flow import claims_of
from tests.support import REPO, SECRET, Client, Closed, LivehubProcess

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    """A server with no sign-in settings: invitations need none."""
    log = tmp_path_factory.mktemp("invite") / "livehub.log"
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(PROGRAMME)}, log_path=log).start()
    yield proc
    proc.terminate()


def run_invite(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    base.update({"LIVEHUB_SECRET": SECRET, "LIVEHUB_PROGRAMME": str(PROGRAMME), **env})
    return subprocess.run([sys.executable, "-m", "livehub", "invite", str(path), *args],
                          env=base, cwd=REPO, capture_output=True, timeout=30)


async def join(base: str, room: str, token: str) -> dict[str, object] | Closed:
    client = await Client.connect(base, room)
    await client.send({"t": "hello", "token": token})
    try:
        first = await client.recv()
        if first.get("t") == "welcome":
            me: dict[str, object] = first["me"]
            return me
        return await client.expect_close()
    except Closed as closed:
        return closed
    finally:
        await client.close()


def test_good_file_every_link_joins_its_room_and_no_other(
        plain_server: LivehubProcess, tmp_path: Path) -> None:
    source = tmp_path / "invitees.csv"
    source.write_bytes(BOM + (
        "Email,name,room,role,affiliation,Notes\r\n"
        "ann@example.org,Cllr Ann Example,board,moderator,Eastmere District Council,chair\r\n"
        'bob@example.org,"Bob ""the builder"" Smith",panel,speaker,,"two\r\nlines"\r\n'
        "cy@example.org,Cy Résident,forum,participant,Westmere Parish,\r\n"
        "\r\n"
    ).encode())
    before = time.time()
    result = run_invite(source, "--base-url", "https://live.example/", "--ttl", "2d")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert result.stdout.startswith(BOM)
    rows = list(csv.reader(io.StringIO(result.stdout[len(BOM):].decode(), newline="")))
    assert rows[0] == ["Email", "name", "room", "role", "affiliation", "Notes", "link"]
    assert [r[:6] for r in rows[1:]] == [
        ["ann@example.org", "Cllr Ann Example", "board", "moderator",
         "Eastmere District Council", "chair"],
        ["bob@example.org", 'Bob "the builder" Smith', "panel", "speaker", "", "two\r\nlines"],
        ["cy@example.org", "Cy Résident", "forum", "participant", "Westmere Parish", ""],
    ]
    subs = set()
    for row in rows[1:]:
        room, role, link = row[2], row[3], row[6]
        prefix = f"https://live.example/room/{room}#token="
        assert link.startswith(prefix)
        token = link[len(prefix):]
        claims = claims_of(token)
        assert claims["rooms"] == [room] and claims["role"] == role
        assert claims["name"] == row[1]
        assert claims.get("affiliation") == (row[4] or None)
        assert before + 2 * 86400 - 5 <= claims["exp"] <= time.time() + 2 * 86400
        subs.add(claims["sub"])
        me = asyncio.run(join(plain_server.ws_url, room, token))
        assert isinstance(me, dict) and me["role"] == role, me
        other = next(r for r in ("board", "panel", "forum") if r != room)
        refused = asyncio.run(join(plain_server.ws_url, other, token))
        assert isinstance(refused, Closed) and refused.code == 4401, refused
    assert len(subs) == 3  # a new sub per row


def test_base_url_defaults(tmp_path: Path) -> None:
    source = tmp_path / "one.csv"
    source.write_text("name,role,room\nAnn,participant,forum\n")
    plain = run_invite(source)
    assert plain.returncode == 0, plain.stderr
    assert not plain.stdout.startswith(BOM)
    assert b",http://127.0.0.1:8000/room/forum#token=" in plain.stdout
    public = run_invite(source, LIVEHUB_PUBLIC_URL="https://live.eastmere.example/")
    assert b",https://live.eastmere.example/room/forum#token=" in public.stdout


def test_bad_file_names_each_problem_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        "name,role,room,affiliation,email\n"                  # line 1
        "Good Person,speaker,board,,good@example.org\n"       # line 2: fine
        "Ann,chair,board,,a@example.org\n"                    # line 3: role
        '"Multi\nline name",speaker,nowhere,,b@example.org\n'  # lines 4-5: name, room
        f"{'N' * 81},participant,forum,,c@example.org\n"      # line 6: name too long
        ",participant,forum,,d@example.org\n"                 # line 7: empty name
        f"Dee,participant,forum,{'A' * 81},e@example.org\n"   # line 8: affiliation
        'Eve,participant,forum,"two\nlines",f@example.org\n'  # line 9-10: affiliation
        "Fay,Moderator,Board,,g@example.org\n"                # line 11: room is a slug
        "Gil\u202eadmin,participant,forum,,h@example.org\n"  # line 12: bidi override
    )
    result = run_invite(source)
    assert result.returncode != 0
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    expected = [
        (3, "role"), (4, "name"), (4, "room"), (6, "name"), (7, "name"),
        (8, "affiliation"), (9, "affiliation"), (11, "room"), (12, "name"),
    ]
    assert len(lines) == len(expected), lines
    for line, (number, column) in zip(lines, expected, strict=True):
        assert line.startswith(f'{source}: line {number}: column "{column}": '), line
    assert "Traceback" not in result.stderr.decode()


def test_bad_header_and_bad_settings(tmp_path: Path) -> None:
    source = tmp_path / "header.csv"
    source.write_text("name,email\nAnn,a@example.org\n")
    result = run_invite(source)
    assert result.returncode != 0 and result.stdout == b""
    err = result.stderr.decode()
    assert 'line 1: column "role": missing' in err and 'line 1: column "room": missing' in err
    good = tmp_path / "good.csv"
    good.write_text("name,role,room\nAnn,participant,forum\n")
    no_secret = run_invite(good, LIVEHUB_SECRET="")
    assert no_secret.returncode != 0 and no_secret.stdout == b""
    assert b"LIVEHUB_SECRET" in no_secret.stderr
    bad_ttl = run_invite(good, "--ttl", "soon")
    assert bad_ttl.returncode != 0 and bad_ttl.stdout == b"" and b"--ttl" in bad_ttl.stderr
    other = tmp_path / "other.toml"
    other.write_text('[conference]\ntitle = "Other"\n[[session]]\nslug = "elsewhere"\n'
                     'title = "Elsewhere"\n')
    wrong_programme = run_invite(good, "--programme", str(other))
    assert wrong_programme.returncode != 0
    assert b'line 2: column "room"' in wrong_programme.stderr
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes("name,role,room\nRen\xe9e,participant,forum\n".encode("latin-1"))
    result = run_invite(not_utf8)
    assert result.returncode != 0 and b"line 2: not valid UTF-8" in result.stderr
