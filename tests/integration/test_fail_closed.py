"""Fail closed: a server others can reach never signs with a weak or made-up secret."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.test_cli import livehub
from tests.support import REPO, free_port

STRONG = "x" * 32


@pytest.mark.parametrize("secret", ["abc123", "x" * 31, "é" * 15])
def test_production_refuses_a_short_secret(secret: str) -> None:
    out = livehub("serve", "--port", "1", env={"LIVEHUB_ENV": "production",
                                               "LIVEHUB_SECRET": secret})
    assert out.returncode != 0
    assert "LIVEHUB_SECRET" in out.stderr and "32" in out.stderr
    assert "Traceback" not in out.stderr and "token=" not in out.stdout


@pytest.mark.parametrize("env", ["development", "test", "production"])
def test_any_address_but_loopback_needs_a_secret(env: str) -> None:
    out = livehub("serve", "--host", "0.0.0.0", "--port", "1", env={"LIVEHUB_ENV": env})
    assert out.returncode != 0 and "LIVEHUB_SECRET" in out.stderr
    assert "token=" not in out.stdout and "Traceback" not in out.stderr


def test_the_procfile_runs_in_production_mode() -> None:
    procfile = (REPO / "Procfile").read_text()
    assert "LIVEHUB_ENV=production" in procfile


def test_a_strong_secret_is_one_command_away() -> None:
    out = livehub("secret")
    assert out.returncode == 0
    made = out.stdout.strip()
    assert len(made.encode()) >= 48 and made != livehub("secret").stdout.strip()
    # ...and production takes it.
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "livehub", "serve", "--port", str(port)],
                            env={"LIVEHUB_ENV": "production", "LIVEHUB_SECRET": made,
                                 "PATH": "/usr/bin:/bin"},
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("production server with a strong secret did not start")
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0].decode()
    # No moderator sign-in link in production's log.
    assert "token=" not in output


def test_development_on_loopback_prints_the_moderator_link() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "livehub", "serve", "--port", str(port)],
                            env={"PATH": "/usr/bin:/bin"}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode() for _ in range(4)]
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert any("moderator sign-in" in line and "#token=" in line for line in lines), lines
