"""The recipe's systemd units pass ``systemd-analyze verify`` (where systemd is installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNITS = REPO / "deploy" / "systemd"
# The console script next to this interpreter (verify checks that ExecStart exists).
LIVEHUB = Path(sys.executable).parent / "livehub"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@pytest.fixture(autouse=True)
def _installed() -> None:
    if not LIVEHUB.exists():
        pytest.skip(f"no livehub console script at {LIVEHUB} (pip install -e .)")


def _render(name: str, dest: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's livehub (verify checks it exists)
    and the environment file optional (it holds the secret: not in the repository)."""
    text = (UNITS / name).read_text()
    text = text.replace("/opt/livehub/venv/bin/livehub", str(LIVEHUB))
    text = text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/")
    dest.write_text(text)
    return dest


@pytest.mark.parametrize("unit", ["livehub.service", "livehub@.service"])
def test_units_verify(unit: str, tmp_path: Path) -> None:
    name = unit.replace("@.", "@8001.")  # a template is verified as one of its instances
    path = _render(unit, tmp_path / name)
    _render("livehub.target", tmp_path / "livehub.target")
    out = subprocess.run([str(ANALYZE), "verify", str(path)], capture_output=True, text=True,
                         timeout=60, check=False, cwd=tmp_path)
    complaints = [line for line in (out.stdout + out.stderr).splitlines()
                  if "livehub" in line]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr


def test_units_keep_the_hardening() -> None:
    for unit in ("livehub.service", "livehub@.service"):
        text = (UNITS / unit).read_text()
        for line in ("User=livehub", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "PrivateTmp=yes", "Restart=on-failure", "EnvironmentFile=/etc/livehub/",
                     "--forwarded-allow-ips 127.0.0.1", "--host 127.0.0.1"):
            assert line in text, f"{unit}: {line}"
