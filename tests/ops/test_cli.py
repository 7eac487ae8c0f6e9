"""The ``livehub`` commands as an organiser runs them: serve, token, check, export."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.conftest import TEST_PROGRAMME
from tests.ops.helpers import bearer, clean_env, cli, fetch
from tests.redis_server import RedisServer
from tests.support import SECRET, Client, LivehubProcess, free_port, token

BAD_PROGRAMME = """\
[conference]
title = "Broken"

[[session]]
slug = "ok-room"
title = "Fine"

[[session]]
slug = "bad-room"
title = "Broken"
slow_mode = -5
"""


@pytest.fixture
def bad_programme(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD_PROGRAMME)
    return path


# --- token ------------------------------------------------------------------------------


def test_token_prints_a_signed_token() -> None:
    done = cli("token", "--name", "Cllr Jo", "--role", "moderator", "--room", "lobby",
               "--ttl", "2h")
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["name"] == "Cllr Jo" and claims["role"] == "moderator"
    assert claims["rooms"] == ["lobby"] and claims["sub"]
    assert claims["exp"] - claims["iat"] == 7200


def test_token_refuses_a_bad_role_or_no_secret() -> None:
    done = cli("token", "--name", "X", "--role", "admin")
    assert done.returncode != 0 and done.stdout == "" and "admin" in done.stderr
    env = clean_env()
    del env["LIVEHUB_SECRET"]
    done = cli("token", "--name", "X", "--role", "participant", env=env)
    assert done.returncode != 0 and done.stdout == "" and "LIVEHUB_SECRET" in done.stderr


# --- check ------------------------------------------------------------------------------


def test_check_accepts_a_good_programme() -> None:
    done = cli("check", TEST_PROGRAMME)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout and "Test Conference" in done.stdout


def test_check_names_each_problem(bad_programme: Path) -> None:
    done = cli("check", str(bad_programme))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [f'{bad_programme}: session "bad-room": field "slow_mode": '
                     "must be an integer >= 0 (got -5)"]
    assert "Traceback" not in done.stderr


def test_check_a_missing_file(tmp_path: Path) -> None:
    done = cli("check", str(tmp_path / "nope.toml"))
    assert done.returncode != 0 and "cannot read file" in done.stderr


# --- serve ------------------------------------------------------------------------------


def test_serve_refuses_a_bad_programme(bad_programme: Path) -> None:
    done = cli("serve", "--port", str(free_port()), "--programme", str(bad_programme),
               timeout=20)
    assert done.returncode != 0
    assert '"bad-room"' in done.stderr and '"slow_mode"' in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_in_production_needs_a_secret() -> None:
    env = clean_env(LIVEHUB_ENV="production")
    del env["LIVEHUB_SECRET"]
    done = cli("serve", "--port", str(free_port()), env=env, timeout=20)
    assert done.returncode != 0 and "LIVEHUB_SECRET" in done.stderr


# --- export -----------------------------------------------------------------------------


def test_export_without_redis_points_to_the_http_endpoint() -> None:
    done = cli("export", "lobby", "--programme", TEST_PROGRAMME)
    assert done.returncode != 0 and done.stdout == ""
    assert "no Redis configured" in done.stderr
    assert "/api/rooms/lobby/transcript" in done.stderr


def test_export_an_unknown_room(bad_programme: Path) -> None:
    done = cli("export", "no-such-room", "--programme", TEST_PROGRAMME,
               "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode != 0 and done.stdout == ""
    assert "no-such-room" in done.stderr and "Traceback" not in done.stderr
    done = cli("export", "ok-room", "--programme", str(bad_programme))
    assert done.returncode != 0 and '"slow_mode"' in done.stderr


def test_export_with_redis_unreachable() -> None:
    done = cli("export", "lobby", "--programme", TEST_PROGRAMME,
               "--redis", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert done.returncode != 0 and done.stdout == ""
    assert "cannot read room 'lobby'" in done.stderr and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr  # no password in messages


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server.url


async def test_export_reads_what_a_redis_backed_server_logged(redis_url: str,
                                                              tmp_path: Path) -> None:
    server = LivehubProcess(env={"LIVEHUB_PROGRAMME": TEST_PROGRAMME,
                                 "LIVEHUB_REDIS_NAMESPACE": "ops-test"},
                            args=["--redis", redis_url], log_path=tmp_path / "log").start()
    try:
        mod = await Client.join(server.ws_url, "lobby-2", token=token("moderator", "Mo",
                                                                      sub="mod-x"))
        first = await mod.request({"t": "post", "text": "On the record"})
        await mod.request({"t": "post", "text": "A reply", "reply_to": first["mid"]})
        gone = await mod.request({"t": "post", "text": "TO BE REMOVED"})
        await mod.request({"t": "del", "mid": gone["mid"]})
        await mod.close()
        over_http = {fmt: (await fetch("GET", f"{server.url}/api/rooms/lobby-2/transcript",
                                       params={"format": fmt}, headers=bearer())).text
                     for fmt in ("md", "csv", "json")}
    finally:
        server.terminate()
    env = clean_env(LIVEHUB_REDIS_URL=redis_url, LIVEHUB_PROGRAMME=TEST_PROGRAMME,
                    LIVEHUB_REDIS_NAMESPACE="ops-test")
    for fmt in ("md", "csv", "json"):
        done = cli("export", "lobby-2", "--format", fmt, env=env)
        assert done.returncode == 0, done.stderr
        # The same transcript as the server gives (read as text: CRLF -> LF).
        assert done.stdout == over_http[fmt].replace("\r\n", "\n")
    md = cli("export", "lobby-2", env=env).stdout  # md is the default
    assert "On the record" in md and "A reply" in md and "TO BE REMOVED" not in md
    assert "## Moderation" in md and "Mo (mod-x) removed their own post" in md
    # Flags win over the environment.
    done = cli("export", "lobby-2", "--redis", f"redis://127.0.0.1:{free_port()}/0", env=env)
    assert done.returncode != 0
    # A room nobody used: an empty transcript, and a note on standard error. The same
    # for another namespace: export reads the keys `serve` writes with the same settings.
    done = cli("export", "premod", "--format", "json", env=env)
    assert done.returncode == 0 and "no events" in done.stderr
    done = cli("export", "lobby-2", env={**env, "LIVEHUB_REDIS_NAMESPACE": "elsewhere"})
    assert done.returncode == 0 and "no events" in done.stderr
