"""The ``livehub`` command line: token, check, serve refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt

from tests.support import REPO, SECRET


def livehub(*args: str, env: dict[str, str] | None = None, timeout: float = 20
            ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    return subprocess.run([sys.executable, "-m", "livehub", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, cwd=REPO, timeout=timeout)


def test_token_mints_a_signed_token_with_the_claims() -> None:
    out = livehub("token", "--name", "Cllr Jo", "--role", "speaker", "--room", "lobby",
                  "--room", "slow", "--ttl", "2h", env={"LIVEHUB_SECRET": SECRET})
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["name"] == "Cllr Jo" and claims["role"] == "speaker"
    assert claims["rooms"] == ["lobby", "slow"]
    assert claims["sub"]  # made up when not given
    assert claims["exp"] - claims["iat"] == 7200


def test_token_defaults_to_eight_hours_and_keeps_a_given_sub() -> None:
    out = livehub("token", "--name", "Mo", "--role", "moderator", "--sub", "mo-7",
                  env={"LIVEHUB_SECRET": SECRET})
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "mo-7" and claims["exp"] - claims["iat"] == 8 * 3600
    assert "rooms" not in claims


def test_token_refuses_an_unknown_role() -> None:
    out = livehub("token", "--name", "X", "--role", "admin", env={"LIVEHUB_SECRET": SECRET})
    assert out.returncode != 0 and out.stdout == ""
    assert "admin" in out.stderr


def test_token_needs_a_secret_and_a_sane_ttl() -> None:
    out = livehub("token", "--name", "X", "--role", "participant")
    assert out.returncode != 0 and out.stdout == "" and "LIVEHUB_SECRET" in out.stderr
    out = livehub("token", "--name", "X", "--role", "participant", "--ttl", "soon",
                  env={"LIVEHUB_SECRET": SECRET})
    assert out.returncode != 0 and out.stdout == "" and "--ttl" in out.stderr


def test_check_accepts_the_sample_and_the_test_programme() -> None:
    for path in (REPO / "livehub" / "sample_programme.toml",
                 REPO / "tests" / "data" / "programme.toml"):
        out = livehub("check", str(path))
        assert out.returncode == 0, out.stderr
        assert "ok" in out.stdout


def test_check_names_file_session_and_field_of_each_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[conference]\ntitle = "T"\n\n[[session]]\nslug = "ok-room"\ntitle = "A"\n'
                   'slow_mode = -1\n\n[[session]]\nslug = "Bad Slug"\ntitle = "B"\n')
    out = livehub("check", str(bad))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert "bad.toml" in lines[0] and "ok-room" in lines[0] and "slow_mode" in lines[0]
    assert "bad.toml" in lines[1] and "#2" in lines[1] and "slug" in lines[1]
    assert "Traceback" not in out.stderr


def test_serve_refuses_a_bad_programme_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[conference]\ntitle = 5\n")
    out = livehub("serve", "--programme", str(bad), "--port", "1")
    assert out.returncode != 0
    assert "bad.toml" in out.stderr and "Traceback" not in out.stderr


def test_serve_in_production_needs_a_secret() -> None:
    out = livehub("serve", "--port", "1", env={"LIVEHUB_ENV": "production"})
    assert out.returncode != 0 and "LIVEHUB_SECRET" in out.stderr
    assert "Traceback" not in out.stderr


def test_workers_need_redis() -> None:
    out = livehub("serve", "--port", "1", "--workers", "2")
    assert out.returncode != 0 and "--redis" in out.stderr
